package validators

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// memKeys keeps delivery keys with the semantics launch.Store promises for
// RememberKey / ForgetKey; the real stores are exercised in caddymodule.
type memKeys struct {
	mu   sync.Mutex
	keys map[string]memKey
	err  error
}

type memKey struct {
	value   string
	expires time.Time
}

func newMemKeys() *memKeys { return &memKeys{keys: map[string]memKey{}} }

func (m *memKeys) RememberKey(_ context.Context, key, value string, window time.Duration, now time.Time) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return "", false, m.err
	}
	if k, ok := m.keys[key]; ok && k.expires.After(now) {
		return k.value, false, nil
	}
	m.keys[key] = memKey{value, now.Add(window)}
	return value, true, nil
}

func (m *memKeys) ForgetKey(_ context.Context, key, value string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	if k, ok := m.keys[key]; ok && k.value == value {
		delete(m.keys, key)
	}
	return nil
}

func TestDedupeValidate(t *testing.T) {
	d := Dedupe{Store: newMemKeys()}
	if err := d.Validate(); err != nil || d.Window != DefaultDedupeWindow {
		t.Fatalf("default window: %v, %s", err, d.Window)
	}
	for _, tc := range []struct {
		d    Dedupe
		want string
	}{
		{Dedupe{Window: time.Millisecond, Store: newMemKeys()}, "too short"},
		{Dedupe{Window: -time.Hour, Store: newMemKeys()}, "too short"},
		{Dedupe{Window: time.Hour}, "no store"},
	} {
		err := tc.d.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), DirectiveDedupe+": ") {
			t.Errorf("%+v: error %v, want %q", tc.d, err, tc.want)
		}
	}
}

func TestDedupeClaimRepeatAndExpiry(t *testing.T) {
	d := Dedupe{Window: time.Hour, Store: newMemKeys()}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	scope := ConfigScope("hooks.example.com", "/github")

	run, first, err := d.Claim(ctx, scope, "delivery-1", "run-a", rlNow)
	if err != nil || !first || run != "run-a" {
		t.Fatalf("first claim: %q %v %v", run, first, err)
	}
	run, first, err = d.Claim(ctx, scope, "delivery-1", "run-b", rlNow.Add(59*time.Minute))
	if err != nil || first || run != "run-a" {
		t.Fatalf("repeat within the window: %q %v %v, want run-a held", run, first, err)
	}
	// Another trigger, or another delivery, is not a repeat.
	if _, first, _ := d.Claim(ctx, ConfigScope("hooks.example.com", "/gitlab"), "delivery-1", "run-c", rlNow); !first {
		t.Fatal("the same delivery id at another trigger was taken for a repeat")
	}
	if _, first, _ := d.Claim(ctx, scope, "delivery-2", "run-d", rlNow); !first {
		t.Fatal("another delivery id was taken for a repeat")
	}
	// After the window the key is free again.
	run, first, _ = d.Claim(ctx, scope, "delivery-1", "run-e", rlNow.Add(time.Hour+time.Second))
	if !first || run != "run-e" {
		t.Fatalf("after the window: %q %v", run, first)
	}
}

func TestDedupeRelease(t *testing.T) {
	d := Dedupe{Window: time.Hour, Store: newMemKeys()}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, first, _ := d.Claim(ctx, "s", "k", "run-a", rlNow); !first {
		t.Fatal("first claim failed")
	}
	// Releasing with another run id leaves the claim alone.
	if err := d.Release(ctx, "s", "k", "run-x"); err != nil {
		t.Fatal(err)
	}
	if run, first, _ := d.Claim(ctx, "s", "k", "run-b", rlNow); first || run != "run-a" {
		t.Fatalf("a release by another run freed the key: %q %v", run, first)
	}
	if err := d.Release(ctx, "s", "k", "run-a"); err != nil {
		t.Fatal(err)
	}
	if run, first, _ := d.Claim(ctx, "s", "k", "run-b", rlNow); !first || run != "run-b" {
		t.Fatalf("the redelivery after a release is still a duplicate: %q %v", run, first)
	}
	// Releasing nothing is fine.
	if err := d.Release(ctx, "s", "", "run-a"); err != nil {
		t.Fatal(err)
	}
}

func TestDedupeEmptyKeyAndStoreErrors(t *testing.T) {
	keys := newMemKeys()
	d := Dedupe{Store: keys}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.Claim(context.Background(), "s", "", "run-a", rlNow); !errors.Is(err, ErrNoDedupeKey) {
		t.Fatalf("empty key: %v, want ErrNoDedupeKey", err)
	}
	keys.err = errors.New("store down")
	_, first, err := d.Claim(context.Background(), "s", "k", "run-a", rlNow)
	if err == nil || first || !strings.Contains(err.Error(), "store down") {
		t.Fatalf("store failure: first=%v err=%v", first, err)
	}
	if err := d.Release(context.Background(), "s", "k", "run-a"); err == nil {
		t.Fatal("a failed release was reported as done")
	}
	var unvalidated Dedupe
	if _, first, err := unvalidated.Claim(context.Background(), "s", "k", "r", rlNow); first || err == nil {
		t.Fatal("a dedupe without a store must fail closed")
	}
}

func TestDedupeConcurrentClaimsOneWinner(t *testing.T) {
	d := Dedupe{Store: newMemKeys()}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	var winners atomic.Int64
	held := make(chan string, 50)
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			run, first, err := d.Claim(context.Background(), "s", "same", "run-"+string(rune('A'+i)), rlNow)
			if err != nil {
				t.Error(err)
				return
			}
			if first {
				winners.Add(1)
			}
			held <- run
		}(i)
	}
	wg.Wait()
	close(held)
	if winners.Load() != 1 {
		t.Fatalf("%d claims won, want 1", winners.Load())
	}
	var want string
	for run := range held {
		if want == "" {
			want = run
		}
		if run != want {
			t.Fatalf("claims disagree on the run: %q and %q", want, run)
		}
	}
}

func TestDedupeKeySeparatesTriggerFromKey(t *testing.T) {
	a := DedupeKey(ConfigScope("h", "/a"), "b#c")
	b := DedupeKey(ConfigScope("h", "/a#b"), "c")
	if a == b {
		t.Fatalf("trigger /a key b#c and trigger /a#b key c share %q", a)
	}
}
