package caddymodule

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/hooklaunch/caddy-valohai/launch/store/redistest"
)

// cuttableProxy forwards TCP to a backend until cut, after which every
// connection, open or new, fails: a store that stops answering.
type cuttableProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func startCuttableProxy(t *testing.T, backend string) *cuttableProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cuttableProxy{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", backend)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, b)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(b, c); b.Close() }()
			go func() { _, _ = io.Copy(c, b); c.Close() }()
		}
	}()
	t.Cleanup(p.cut)
	return p
}

func (p *cuttableProxy) cut() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// A delivery key store that stops answering fails closed with 503, the
// status every store failure has (webhook_dedupe takes no status: README.md,
// "Options every condition takes"), and launches nothing.
func TestDedupeStoreFailureIs503(t *testing.T) {
	redisURL := redistest.Start(t)
	u, err := url.Parse(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startCuttableProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	env := startRedisEnv(t, `route /hook {
		webhook_dedupe {http.request.header.X-Delivery}
		valohai_launch deliveries {
			project `+testProject+`
			execution train {
				commit main
			}
		}
	}`, u.String())

	if r := env.post("/hook", []byte(`{}`), map[string]string{"X-Delivery": "d-1", "Content-Type": "application/json"}); r.status != http.StatusOK {
		t.Fatalf("with the store up: status %d, body %q", r.status, r.body)
	}
	launched := len(env.executionCalls())
	proxy.cut()
	r := env.post("/hook", []byte(`{}`), map[string]string{"X-Delivery": "d-2", "Content-Type": "application/json"})
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("with the store down: status %d, body %q; want 503", r.status, r.body)
	}
	if n := len(env.executionCalls()); n != launched {
		t.Fatalf("%d executions after the store went down, want %d", n, launched)
	}
}
