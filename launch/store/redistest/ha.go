package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hooklaunch/caddy-valohai/internal/freeport"
)

// The high-availability topologies of docs/redis.md, run from Debian's
// redis-server package: a Sentinel deployment (1 master, 2 replicas, 3
// sentinels) and a Redis Cluster of 3 masters.
//
// scripts/test.sh starts one of each for the whole run and names them in
// EnvSentinel and EnvCluster; tests that only read and write share those,
// each under a key prefix of its own (UniquePrefix). A test that kills a
// server starts private processes (StartSentinel, StartCluster).
const (
	// EnvSentinel holds "<master name>@<sentinel addr>,<sentinel addr>,...".
	EnvSentinel = "VALOHAI_TEST_REDIS_SENTINEL"
	// EnvCluster holds "<node addr>,<node addr>,...".
	EnvCluster = "VALOHAI_TEST_REDIS_CLUSTER"
)

// MasterName is the master name the test sentinels monitor.
const MasterName = "valohai-test"

// Node is one redis process.
type Node struct {
	Addr   string // 127.0.0.1:<port>
	cmd    *exec.Cmd
	exited chan struct{}
	out    *lockedBuffer
}

// Kill ends the process with SIGKILL (kill -9): no shutdown, no last
// replication, as when a host dies.
func (n *Node) Kill() {
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.exited
}

// Pause stops the process (SIGSTOP) until Resume: a replica that cannot
// acknowledge anything, without a failover.
func (n *Node) Pause() { n.cmd.Process.Signal(syscall.SIGSTOP) }

// Resume continues a paused process (SIGCONT).
func (n *Node) Resume() { n.cmd.Process.Signal(syscall.SIGCONT) }

// Client is a plain client of this one node.
func (n *Node) Client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: n.Addr, MaxRetries: -1, DialTimeout: time.Second})
}

// Sentinel is a running Sentinel deployment.
type Sentinel struct {
	Master    string   // the monitored master's name
	Sentinels []string // sentinel addresses
	Servers   []*Node  // [0] is the master at the start, then the replicas
	Watchers  []*Node  // the sentinel processes
}

// Cluster is a running Redis Cluster.
type Cluster struct {
	Addrs []string
	Nodes []*Node
}

// redisServer finds redis-server, or skips the test when it is absent and
// this is not CI (CI must run every test: there its absence fails).
func redisServer(tb testing.TB) string {
	tb.Helper()
	path, err := exec.LookPath("redis-server")
	if err == nil {
		return path
	}
	msg := "redis-server not found: run the tests through `make test`, which installs Debian's redis-server package and starts the Sentinel and Cluster topologies (or set " + EnvSentinel + " and " + EnvCluster + ")"
	if os.Getenv("CI") != "" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
	return ""
}

// SharedSentinel returns the sentinel addresses and master name of the
// run's Sentinel deployment (EnvSentinel), or of one started for tb.
func SharedSentinel(tb testing.TB) (sentinels []string, master string) {
	tb.Helper()
	if v := os.Getenv(EnvSentinel); v != "" {
		name, addrs, ok := strings.Cut(v, "@")
		if !ok || name == "" || addrs == "" {
			tb.Fatalf("%s=%q is not <master name>@<addr>,<addr>,...", EnvSentinel, v)
		}
		return strings.Split(addrs, ","), name
	}
	s := StartSentinel(tb)
	return s.Sentinels, s.Master
}

// SharedCluster returns the node addresses of the run's cluster
// (EnvCluster), or of one started for tb.
func SharedCluster(tb testing.TB) []string {
	tb.Helper()
	if v := os.Getenv(EnvCluster); v != "" {
		return strings.Split(v, ",")
	}
	return StartCluster(tb).Addrs
}

// UniquePrefix is a key prefix no other test uses: the shared topologies
// have one database, so tests keep apart by prefix.
func UniquePrefix(tb testing.TB) string {
	return fmt.Sprintf("t%d-%s:", time.Now().UnixNano(), strings.NewReplacer("/", "-", " ", "_").Replace(tb.Name()))
}

// startNode runs redis-server with args (after the config file, if any) in
// dir on a free port, and stops it when tb ends.
func startNode(tb testing.TB, bin, dir string, port int, conf string, args ...string) *Node {
	tb.Helper()
	out := &lockedBuffer{}
	var argv []string
	if conf != "" {
		argv = append(argv, conf)
	}
	argv = append(argv, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir, "--daemonize", "no", "--logfile", "")
	argv = append(argv, args...)
	cmd := exec.Command(bin, argv...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		tb.Fatalf("starting %s: %v", bin, err)
	}
	n := &Node{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd: cmd, exited: make(chan struct{}), out: out}
	go func() {
		cmd.Wait()
		close(n.exited)
	}()
	tb.Cleanup(func() {
		select {
		case <-n.exited:
		default:
			n.Resume()
			stop(cmd, n.exited)
		}
	})
	if !ready(n.Addr, n.exited) {
		tb.Fatalf("redis-server %v did not start:\n%s", argv, out.String())
	}
	return n
}

// StartServer starts a private redis-server with extra arguments args
// (e.g. TLS settings) on a free loopback port, stopped when tb ends.
func StartServer(tb testing.TB, args ...string) *Node {
	tb.Helper()
	return startNode(tb, redisServer(tb), tb.TempDir(), ports(tb, 1)[0], "", append([]string{"--save", "", "--appendonly", "no"}, args...)...)
}

// FreePorts returns n distinct free loopback ports.
func FreePorts(tb testing.TB, n int) []int { return ports(tb, n) }

// ports returns n distinct free loopback ports, outside the kernel's
// ephemeral range: a master killed and restarted on its port finds it
// free (internal/freeport).
func ports(tb testing.TB, n int) []int {
	tb.Helper()
	out, err := freeport.Pick(n)
	if err != nil {
		tb.Fatalf("finding a free port: %v", err)
	}
	return out
}

// StartSentinel starts a private Sentinel deployment for tb: a master, two
// replicas and three sentinels (quorum 2) that declare the master down
// after one second, on free loopback ports, all stopped when tb ends.
func StartSentinel(tb testing.TB) *Sentinel {
	tb.Helper()
	bin := redisServer(tb)
	dir := tb.TempDir()
	p := ports(tb, 6)
	s := &Sentinel{Master: MasterName}
	data := []string{"--save", "", "--appendonly", "no", "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"}
	master := startNode(tb, bin, mkdir(tb, dir, "master"), p[0], "", data...)
	s.Servers = append(s.Servers, master)
	for i := 1; i <= 2; i++ {
		s.Servers = append(s.Servers, startNode(tb, bin, mkdir(tb, dir, "replica"+strconv.Itoa(i)), p[i], "",
			append(data, "--replicaof", "127.0.0.1", strconv.Itoa(p[0]))...))
	}
	for i := 3; i < 6; i++ {
		sdir := mkdir(tb, dir, "sentinel"+strconv.Itoa(i-2))
		conf := filepath.Join(sdir, "sentinel.conf")
		cfg := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]d 2\nsentinel down-after-milliseconds %[1]s 1000\nsentinel failover-timeout %[1]s 10000\nsentinel parallel-syncs %[1]s 2\n", MasterName, p[0])
		if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
			tb.Fatal(err)
		}
		w := startNode(tb, bin, sdir, p[i], conf, "--sentinel")
		s.Watchers = append(s.Watchers, w)
		s.Sentinels = append(s.Sentinels, w.Addr)
	}
	// Ready when both replicas are in sync and every sentinel knows both
	// replicas and the two other sentinels: a failover can then happen.
	waitUntil(tb, 30*time.Second, "the Sentinel deployment to form", func() (bool, string) {
		c := master.Client()
		defer c.Close()
		ctx := context.Background()
		info, err := c.Info(ctx, "replication").Result()
		if err != nil || !strings.Contains(info, "connected_slaves:2") || strings.Count(info, "state=online") != 2 {
			return false, "master: " + info
		}
		for _, w := range s.Watchers {
			wc := w.Client()
			reps, err1 := wc.Do(ctx, "SENTINEL", "REPLICAS", MasterName).Slice()
			sens, err2 := wc.Do(ctx, "SENTINEL", "SENTINELS", MasterName).Slice()
			wc.Close()
			if err1 != nil || err2 != nil || len(reps) != 2 || len(sens) != 2 {
				return false, fmt.Sprintf("sentinel %s: %d replicas, %d sentinels (%v %v)", w.Addr, len(reps), len(sens), err1, err2)
			}
		}
		return true, ""
	})
	return s
}

// MasterAddr asks the first live sentinel which server is the master now.
func (s *Sentinel) MasterAddr(ctx context.Context) (string, error) {
	var last error
	for _, a := range s.Sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: a, MaxRetries: -1, DialTimeout: time.Second})
		addr, err := c.GetMasterAddrByName(ctx, s.Master).Result()
		c.Close()
		if err == nil && len(addr) == 2 {
			return net.JoinHostPort(addr[0], addr[1]), nil
		}
		last = err
	}
	return "", fmt.Errorf("no sentinel names the master: %v", last)
}

// StartCluster starts a private Redis Cluster of three masters (no
// replicas) for tb on free loopback ports, slots spread over them by
// redis-cli --cluster create, all stopped when tb ends.
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	bin := redisServer(tb)
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatal("redis-cli not found (Debian's redis-tools package)")
		}
		tb.Skip("redis-cli not found (Debian's redis-tools package): run the tests through `make test`")
	}
	dir := tb.TempDir()
	p := ports(tb, 6)
	c := &Cluster{}
	for i := range 3 {
		n := startNode(tb, bin, mkdir(tb, dir, "node"+strconv.Itoa(i)), p[i], "",
			"--save", "", "--appendonly", "no",
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(p[3+i]), "--cluster-node-timeout", "2000")
		c.Nodes = append(c.Nodes, n)
		c.Addrs = append(c.Addrs, n.Addr)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		tb.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	waitUntil(tb, 30*time.Second, "the cluster to be ok", func() (bool, string) {
		for _, n := range c.Nodes {
			nc := n.Client()
			info, err := nc.ClusterInfo(context.Background()).Result()
			nc.Close()
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:3") {
				return false, n.Addr + ": " + info
			}
		}
		return true, ""
	})
	return c
}

func mkdir(tb testing.TB, dir, name string) string {
	d := filepath.Join(dir, name)
	if err := os.MkdirAll(d, 0o700); err != nil {
		tb.Fatal(err)
	}
	return d
}

// waitUntil polls cond until it holds or timeout, then fails with its
// last word.
func waitUntil(tb testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, why := cond()
		if ok {
			return
		}
		last = why
		time.Sleep(100 * time.Millisecond)
	}
	tb.Fatalf("timed out waiting for %s: %s", what, last)
}
