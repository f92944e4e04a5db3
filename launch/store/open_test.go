package store

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hooklaunch/caddy-valohai/launch"
	"github.com/hooklaunch/caddy-valohai/launch/store/redistest"
)

// Open tells a store that does not answer (ErrUnreachable, checked with
// errors.Is) from a configuration mistake, and shows no password either way.
func TestOpenUnreachableIsTyped(t *testing.T) {
	const pw = "Hunter2-open-pw"
	closed := closedPort(t)
	sentinels, _ := redistest.SharedSentinel(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cases := []struct {
		name        string
		cfg         Config
		unreachable bool
		want        string
	}{
		{"url", Config{Type: "redis", URL: "redis://app:" + pw + "@" + closed + "/0"}, true, "does not answer"},
		{"sentinel", Config{Type: "redis", Sentinel: []string{closed}, Master: "m", Password: pw}, true, "connection refused"},
		{"unknown master", Config{Type: "redis", Sentinel: sentinels, Master: "no-such-master", Password: pw}, true, `monitors no master named "no-such-master"`},
		{"cluster", Config{Type: "redis", Cluster: []string{closed}, Username: "app", Password: pw}, true, "does not answer"},
		{"no master", Config{Type: "redis", Sentinel: sentinels, Password: pw}, false, "sentinel needs `master <name>`"},
		{"bad url", Config{Type: "redis", URL: "redis://app:" + pw + "@127.0.0.1:63x79/0"}, false, "bad redis URL"},
		{"unknown type", Config{Type: "etcd"}, false, `unknown store type "etcd"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Open(ctx, c.cfg)
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
			if errors.Is(err, ErrUnreachable) != c.unreachable {
				t.Fatalf("errors.Is(%v, ErrUnreachable) = %v, want %v", err, !c.unreachable, c.unreachable)
			}
			if strings.Contains(err.Error(), pw) {
				t.Fatalf("the error shows the password: %v", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not say %q", err, c.want)
			}
		})
	}
}

// Open of each kind returns a working store; the key that shares a store
// across config reloads shows no password but tells passwords apart.
func TestOpenKinds(t *testing.T) {
	ctx := context.Background()
	sentinels, master := redistest.SharedSentinel(t)
	for _, c := range []Config{
		{Type: "file", Dir: t.TempDir()},
		{Type: "redis", URL: redistest.Start(t)},
		{Type: "redis", Sentinel: sentinels, Master: master, Prefix: redistest.UniquePrefix(t), MinReplicasAck: 1},
		{Type: "redis", Cluster: redistest.SharedCluster(t), Prefix: redistest.UniquePrefix(t)},
	} {
		t.Run(c.Type+" "+c.Where(), func(t *testing.T) {
			s, err := Open(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.CreateRun(ctx, &launch.Run{ID: "r", CreatedAt: time.Now(), Status: launch.StatusPending}, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := s.GetRun(ctx, "r"); err != nil {
				t.Fatal(err)
			}
		})
	}
	a := Config{Type: "redis", Cluster: []string{"10.0.0.1:7000"}, Password: "pass-one-1"}
	b := a
	b.Password = "pass-two-2"
	if a.Key() == b.Key() || strings.Contains(a.Key()+b.Key(), "pass-") {
		t.Fatalf("keys %q and %q", a.Key(), b.Key())
	}
	if f := (Config{Type: "file", Dir: filepath.Join("x", "y")}); f.Key() != "file:x/y" {
		t.Fatalf("file key %q", f.Key())
	}
}
