// Package redistest gives tests a real, empty redis database: the redis
// store is tested against redis-server itself, never a mock.
//
// With VALOHAI_TEST_REDIS_URL set (scripts/test.sh starts one redis-server
// for the whole run and sets it), each test reserves a database of that
// server of its own, so test packages running in parallel never see each
// other's keys. Without it, each test starts a private redis-server from
// PATH on a free loopback port.
package redistest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hooklaunch/caddy-valohai/internal/freeport"
)

// EnvURL names the environment variable holding the URL of a shared test
// redis-server (database 0 is used for reservations only).
const EnvURL = "VALOHAI_TEST_REDIS_URL"

// reservation is how long a database stays reserved should its test die
// without cleaning up: longer than scripts/test.sh's test timeout.
const reservation = 30 * time.Minute

// Start returns the URL of an empty redis database reserved for tb until it
// ends. It fails the test (never skips) when no redis is available.
func Start(tb testing.TB) string {
	tb.Helper()
	if base := os.Getenv(EnvURL); base != "" {
		return reserve(tb, base)
	}
	path, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatal("redis-server not found: run the tests through `make test`, which installs it (or set " + EnvURL + " to a redis URL)")
	}
	return startServer(tb, path)
}

// reserve takes a database of the shared server no other test holds: a
// SET NX lock per database in the URL's own database, so reservations work
// across the test binaries `go test ./...` runs in parallel.
func reserve(tb testing.TB, base string) string {
	tb.Helper()
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("%s is not a URL", EnvURL)
	}
	opts, err := redis.ParseURL(base)
	if err != nil {
		tb.Fatalf("%s is not a redis URL: %v", EnvURL, err)
	}
	ctx := context.Background()
	ctl := redis.NewClient(opts)
	defer ctl.Close()
	n := 16
	if cfg, err := ctl.ConfigGet(ctx, "databases").Result(); err == nil {
		if v, err := strconv.Atoi(cfg["databases"]); err == nil {
			n = v
		}
	}
	if n < 2 {
		tb.Fatalf("the redis at %s has %d database(s); start it with --databases 4096", EnvURL, n)
	}
	token := make([]byte, 16)
	rand.Read(token)
	tok := hex.EncodeToString(token)
	next, err := ctl.Incr(ctx, "redistest:next").Result()
	if err != nil {
		tb.Fatalf("redis at %s: %v", EnvURL, err)
	}
	for i := range n {
		db := int((next + int64(i)) % int64(n))
		if db == opts.DB {
			continue
		}
		lock := "redistest:lock:" + strconv.Itoa(db)
		ok, err := ctl.SetNX(ctx, lock, tok, reservation).Result()
		if err != nil {
			tb.Fatalf("redis at %s: %v", EnvURL, err)
		}
		if !ok {
			continue
		}
		dbOpts := *opts
		dbOpts.DB = db
		c := redis.NewClient(&dbOpts)
		err = c.FlushDB(ctx).Err()
		c.Close()
		if err != nil {
			tb.Fatalf("redis at %s: FLUSHDB %d: %v", EnvURL, db, err)
		}
		tb.Cleanup(func() {
			ctx := context.Background()
			c := redis.NewClient(&dbOpts)
			c.FlushDB(ctx) // free the memory; the next holder flushes anyway
			c.Close()
			ctl := redis.NewClient(opts)
			defer ctl.Close()
			if v, err := ctl.Get(ctx, lock).Result(); err == nil && v == tok {
				ctl.Del(ctx, lock)
			}
		})
		out := *u
		out.Path = "/" + strconv.Itoa(db)
		out.RawPath = ""
		q := out.Query()
		q.Del("db")
		out.RawQuery = q.Encode()
		return out.String()
	}
	tb.Fatalf("every database of the redis at %s is reserved by a running test; start it with --databases 4096", EnvURL)
	return ""
}

// lockedBuffer collects a server's output for failure messages.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startServer runs a private redis-server without persistence in a
// temporary directory and stops it when tb ends. A free port can be taken
// between choosing and binding it, so binding is retried on a new one.
func startServer(tb testing.TB, path string) string {
	tb.Helper()
	dir := tb.TempDir()
	var lastOut string
	for range 5 {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("finding a free port: %v", err)
		}
		out := &lockedBuffer{}
		cmd := exec.Command(path,
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no",
			"--dir", dir, "--daemonize", "no", "--logfile", "")
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			tb.Fatalf("starting %s: %v", path, err)
		}
		exited := make(chan struct{})
		go func() {
			cmd.Wait()
			close(exited)
		}()
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if ready(addr, exited) {
			tb.Cleanup(func() { stop(cmd, exited) })
			return fmt.Sprintf("redis://%s/0", addr)
		}
		stop(cmd, exited)
		lastOut = out.String()
	}
	tb.Fatalf("redis-server did not start:\n%s", lastOut)
	return ""
}

// ready waits until the server at addr answers PING, or it exited.
func ready(addr string, exited <-chan struct{}) bool {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// stop ends a server: SIGTERM (it saves nothing, so it exits at once),
// then SIGKILL if it lingers.
func stop(cmd *exec.Cmd, exited <-chan struct{}) {
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
}

// freePort is a loopback port outside the kernel's ephemeral range, so
// that a server restarted on it finds it free (internal/freeport).
func freePort() (int, error) {
	p, err := freeport.Pick(1)
	if err != nil {
		return 0, err
	}
	return p[0], nil
}
