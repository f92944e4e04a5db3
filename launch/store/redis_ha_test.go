package store

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hooklaunch/caddy-valohai/launch"
	"github.com/hooklaunch/caddy-valohai/launch/store/redistest"
	"github.com/hooklaunch/caddy-valohai/launch/store/storetest"
)

// haConformance runs the conformance suite on stores opened with the
// options topology gives, each under a prefix of its own, so tests can
// share the run's topology.
func haConformance(t *testing.T, topology func(t *testing.T) RedisOptions) {
	var opened sync.Map // *Redis → the options it was opened with
	storetest.RunConformance(t, storetest.Factory{
		New: func(t *testing.T) launch.Store {
			o := topology(t)
			o.Prefix = redistest.UniquePrefix(t)
			s := openRedis(t, "", o)
			opened.Store(s, o)
			return s
		},
		// A restart of Caddy: a new client on the same deployment.
		Reopen: func(t *testing.T, old launch.Store) launch.Store {
			o, _ := opened.Load(old)
			if err := old.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			s := openRedis(t, "", o.(RedisOptions))
			opened.Store(s, o)
			return s
		},
	})
}

func sentinelTopology(t *testing.T) RedisOptions {
	sentinels, master := redistest.SharedSentinel(t)
	return RedisOptions{Sentinel: sentinels, Master: master}
}

func clusterTopology(t *testing.T) RedisOptions {
	return RedisOptions{Cluster: redistest.SharedCluster(t)}
}

func openCluster(t *testing.T, prefix string) *Redis {
	o := clusterTopology(t)
	o.Prefix = prefix
	return openRedis(t, "", o)
}

// The whole store contract holds on a Sentinel deployment, every write a
// 2xx rests on waiting for a replica.
func TestRedisSentinelConformance(t *testing.T) {
	haConformance(t, func(t *testing.T) RedisOptions {
		o := sentinelTopology(t)
		o.MinReplicasAck = 1
		return o
	})
}

// The whole store contract holds on Redis Cluster: no script is refused
// with CROSSSLOT.
func TestRedisClusterConformance(t *testing.T) {
	haConformance(t, clusterTopology)
}

// On Cluster every key of a deployment carries its prefix as hash tag: all
// of them are in one slot, whatever the run ids and caller keys.
func TestRedisClusterKeysShareOneSlot(t *testing.T) {
	prefix := redistest.UniquePrefix(t)
	s := openCluster(t, prefix)
	ctx, now := context.Background(), time.Now()
	for _, id := range []string{"a", "b{x}", "{c}", "}d{"} {
		if err := s.CreateRun(ctx, &launch.Run{ID: id, CreatedAt: now, Status: launch.StatusPending},
			&launch.Payload{Body: []byte("x"), ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatalf("CreateRun %q: %v", id, err)
		}
	}
	for _, k := range []string{"k", "{k}", "}{"} {
		if _, _, err := s.TakeQuota(ctx, k, 5, time.Hour, now); err != nil {
			t.Fatalf("TakeQuota %q: %v", k, err)
		}
		if _, _, err := s.RememberKey(ctx, k, "run", time.Hour, now); err != nil {
			t.Fatalf("RememberKey %q: %v", k, err)
		}
	}
	if err := s.LogRejection(ctx, launch.Rejected{Path: "/x", Reason: "r", At: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Secret(ctx, "k", func() ([]byte, error) { return []byte("secret"), nil }); err != nil {
		t.Fatal(err)
	}
	slots := map[int64][]string{}
	err := s.cluster.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		keys, err := c.Keys(ctx, "{"+prefix+"}*").Result()
		if err != nil {
			return err
		}
		for _, k := range keys {
			slot, err := c.ClusterKeySlot(ctx, k).Result()
			if err != nil {
				return err
			}
			slots[slot] = append(slots[slot], k)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ks := range slots {
		n += len(ks)
	}
	if len(slots) != 1 || n < 15 {
		t.Fatalf("the store's %d keys are in %d slots, want 1: %v", n, len(slots), slots)
	}
}

// With min_replicas_ack a write that fewer replicas acknowledge fails with
// ErrNotAcknowledged, yet stays on the primary: the rule of docs/redis.md
// ("min_replicas_ack") is that such a run is queued and launched once, and
// a retry of the same delivery finds it.
func TestRedisMinReplicasAck(t *testing.T) {
	sentinels, master := redistest.SharedSentinel(t)
	prefix := redistest.UniquePrefix(t)
	ctx, now := context.Background(), time.Now()
	enough := openRedis(t, "", RedisOptions{Sentinel: sentinels, Master: master, Prefix: prefix, MinReplicasAck: 2})
	if err := enough.CreateRun(ctx, &launch.Run{ID: "acked", CreatedAt: now, Status: launch.StatusPending}, nil); err != nil {
		t.Fatalf("two replicas run, min_replicas_ack 2: %v", err)
	}
	tooMany := openRedis(t, "", RedisOptions{Sentinel: sentinels, Master: master, Prefix: prefix, MinReplicasAck: 3, AckTimeout: 200 * time.Millisecond})
	start := time.Now()
	err := tooMany.CreateRun(ctx, &launch.Run{ID: "unacked", CreatedAt: now, Status: launch.StatusPending}, nil)
	if !errors.Is(err, ErrNotAcknowledged) {
		t.Fatalf("min_replicas_ack 3 with two replicas: CreateRun = %v, want ErrNotAcknowledged", err)
	}
	if took := time.Since(start); took < 200*time.Millisecond || took > 3*time.Second {
		t.Fatalf("the unacknowledged write took %s, want about the 200ms ack timeout", took)
	}
	if !strings.Contains(err.Error(), "2 of 3 replica(s)") {
		t.Fatalf("error %q does not say how many replicas acknowledged", err)
	}
	// Written but not acknowledged: on the primary, queued.
	if _, err := enough.GetRun(ctx, "unacked"); err != nil {
		t.Fatalf("the unacknowledged run is not stored: %v", err)
	}
	if n, err := enough.QueueDepth(ctx); err != nil || n != 2 {
		t.Fatalf("queue depth %d, %v; want both runs queued", n, err)
	}
	if _, _, err := tooMany.TakeQuota(ctx, "q", 5, time.Hour, now); !errors.Is(err, ErrNotAcknowledged) {
		t.Fatalf("TakeQuota = %v, want ErrNotAcknowledged", err)
	}
	if _, _, err := tooMany.RememberKey(ctx, "d", "run", time.Hour, now); !errors.Is(err, ErrNotAcknowledged) {
		t.Fatalf("RememberKey = %v, want ErrNotAcknowledged", err)
	}
	// A claim's lease and a run's progress wait too: lost in a failover,
	// they would let a second worker send the run's actions again.
	if _, _, err := tooMany.ClaimRun(ctx, now, time.Minute); !errors.Is(err, ErrNotAcknowledged) {
		t.Fatalf("ClaimRun = %v, want ErrNotAcknowledged", err)
	}
	if err := tooMany.UpdateRun(ctx, &launch.Run{ID: "acked", CreatedAt: now, Status: launch.StatusCompleted}); !errors.Is(err, ErrNotAcknowledged) {
		t.Fatalf("UpdateRun = %v, want ErrNotAcknowledged", err)
	}
	// Reads, and a claim that finds nothing due, do not fail.
	if _, err := tooMany.GetRun(ctx, "acked"); err != nil {
		t.Fatal(err)
	}
	empty := openRedis(t, "", RedisOptions{Sentinel: sentinels, Master: master, Prefix: prefix + "empty:", MinReplicasAck: 2})
	if _, ok, err := empty.ClaimRun(ctx, now, time.Minute); ok || err != nil {
		t.Fatalf("ClaimRun with nothing due = %v, %v", ok, err)
	}
}

// A kill -9 of the master: the store follows the sentinels to the new
// master without being reopened, and a run claimed on the old master whose
// lease never reached a replica is simply claimed again.
func TestRedisSentinelFailoverKeepsWorking(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a failover")
	}
	dep := redistest.StartSentinel(t)
	s := openRedis(t, "", RedisOptions{Sentinel: dep.Sentinels, Master: dep.Master, MinReplicasAck: 1})
	ctx, now := context.Background(), time.Now()
	for _, id := range []string{"one", "two"} {
		if err := s.CreateRun(ctx, &launch.Run{ID: id, CreatedAt: now, Status: launch.StatusPending}, nil); err != nil {
			t.Fatal(err)
		}
	}
	id, ok, err := s.ClaimRun(ctx, now, time.Minute)
	if err != nil || !ok {
		t.Fatalf("ClaimRun: %q %v %v", id, ok, err)
	}
	old := dep.Servers[0]
	old.Kill()
	var errs int
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := s.CreateRun(ctx, &launch.Run{ID: "after", CreatedAt: now, Status: launch.StatusPending}, nil)
		if err == nil {
			break
		}
		errs++
		if time.Now().After(deadline) {
			t.Fatalf("no write succeeded within 60s of killing the master: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	addr, err := dep.MasterAddr(ctx)
	if err != nil || addr == old.Addr {
		t.Fatalf("master after the failover: %q, %v", addr, err)
	}
	t.Logf("failover to %s; %d writes failed meanwhile", addr, errs)
	for _, id := range []string{"one", "two"} {
		if _, err := s.GetRun(ctx, id); err != nil {
			t.Fatalf("acknowledged run %s lost in the failover: %v", id, err)
		}
	}
	// Both old runs and the new one are claimable once the lease (if it
	// survived) runs out: every run is handed out again, none lost.
	claimed := map[string]bool{}
	later := now.Add(2 * time.Minute)
	for range 3 {
		id, ok, err := s.ClaimRun(ctx, later, time.Minute)
		if err != nil || !ok {
			t.Fatalf("ClaimRun after the failover: %q %v %v", id, ok, err)
		}
		claimed[id] = true
	}
	if !claimed["one"] || !claimed["two"] || !claimed["after"] {
		t.Fatalf("claimed %v after the failover", claimed)
	}
}

// On Cluster the persistence check asks every master: the test nodes keep
// nothing (appendonly no), and the settings name each of them.
func TestRedisClusterPersistenceAsksEveryMaster(t *testing.T) {
	nodes := redistest.SharedCluster(t)
	s := openRedis(t, "", RedisOptions{Cluster: nodes, Prefix: redistest.UniquePrefix(t)})
	durable, settings, err := s.Persistence(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if durable {
		t.Fatalf("durable with appendonly no: %s", settings)
	}
	for _, n := range nodes {
		if !strings.Contains(settings, n+": appendonly no") {
			t.Fatalf("settings %q do not name master %s", settings, n)
		}
	}
}
