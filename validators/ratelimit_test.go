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

// memQuota is a fixed-window quota store with the semantics launch.Store
// promises (windows aligned to multiples of the period since the epoch).
// The real stores are exercised through Caddy in caddymodule's tests; this
// one lets validators be tested alone, without launch or Caddy.
type memQuota struct {
	mu     sync.Mutex
	counts map[string]int
	taken  []string // every key a unit was taken from, in order
	err    error
}

func newMemQuota() *memQuota { return &memQuota{counts: map[string]int{}} }

func (m *memQuota) TakeQuota(_ context.Context, key string, limit int, period time.Duration, now time.Time) (bool, time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return false, 0, m.err
	}
	at := now.UnixNano()
	end := at - at%int64(period) + int64(period)
	k := key + "@" + time.Unix(0, end).UTC().Format(time.RFC3339Nano) + "/" + period.String()
	if m.counts[k] >= limit {
		return false, time.Duration(end - at), nil
	}
	m.counts[k]++
	m.taken = append(m.taken, key)
	return true, 0, nil
}

var rlNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestRateLimitValidate(t *testing.T) {
	store := newMemQuota()
	tests := []struct {
		name string
		rl   RateLimit
		want string // substring of the error; "" = valid
	}{
		{"valid", RateLimit{Limits: []Limit{{10, time.Hour}}, Store: store}, ""},
		{"no limits", RateLimit{Store: store}, "no limit configured"},
		{"zero quota", RateLimit{Limits: []Limit{{0, time.Hour}}, Store: store}, "at least 1"},
		{"negative quota", RateLimit{Limits: []Limit{{-3, time.Hour}}, Store: store}, "at least 1"},
		{"sub-second period", RateLimit{Limits: []Limit{{1, 500 * time.Millisecond}}, Store: store}, "too short"},
		{"no store", RateLimit{Limits: []Limit{{1, time.Hour}}}, "no store"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.rl.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), DirectiveRateLimit+": ") {
				t.Fatalf("error %v, want one naming %s and containing %q", err, DirectiveRateLimit, tc.want)
			}
		})
	}
}

func TestRateLimitQuotaAndRetryAfter(t *testing.T) {
	store := newMemQuota()
	rl := RateLimit{Limits: []Limit{{3, time.Minute}}, Store: store}
	if err := rl.Validate(); err != nil {
		t.Fatal(err)
	}
	scope := ConfigScope("hooks.example.com", "/github")
	now := rlNow.Add(20 * time.Second) // 40s before the minute's window ends
	for i := 0; i < 3; i++ {
		if err := rl.Take(context.Background(), scope, "", now); err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
	}
	err := rl.Take(context.Background(), scope, "", now)
	q, ok := AsQuotaExceeded(err)
	if !ok {
		t.Fatalf("4th request: %v, want QuotaExceeded", err)
	}
	if err.Error() != "webhook_rate_limit: quota exceeded" {
		t.Fatalf("message %q", err.Error())
	}
	rej, ok := AsRejection(err)
	if !ok || rej.Directive != DirectiveRateLimit || rej.Reason != "quota exceeded" {
		t.Fatalf("rejection %+v %v", rej, ok)
	}
	if q.RetryAfter != 40*time.Second || q.RetryAfterSeconds() != 40 || q.Limit != (Limit{3, time.Minute}) {
		t.Fatalf("retry after %s (%d s), limit %v", q.RetryAfter, q.RetryAfterSeconds(), q.Limit)
	}
	// The next window has a fresh quota.
	if err := rl.Take(context.Background(), scope, "", rlNow.Add(time.Minute)); err != nil {
		t.Fatalf("next window: %v", err)
	}
}

func TestRateLimitKeysAndScopesAreSeparate(t *testing.T) {
	store := newMemQuota()
	rl := RateLimit{Limits: []Limit{{1, time.Hour}}, Store: store}
	if err := rl.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	github := ConfigScope("hooks.example.com", "/github")
	slack := ConfigScope("hooks.example.com", "/slack")
	for _, c := range []struct{ scope, key string }{{github, ""}, {github, "T1"}, {github, "T2"}, {slack, ""}, {slack, "T1"}} {
		if err := rl.Take(ctx, c.scope, c.key, rlNow); err != nil {
			t.Fatalf("%s key %q: first request rejected: %v", c.scope, c.key, err)
		}
		if _, ok := AsQuotaExceeded(rl.Take(ctx, c.scope, c.key, rlNow)); !ok {
			t.Fatalf("%s key %q: second request passed a quota of 1", c.scope, c.key)
		}
	}
}

func TestRateLimitSeveralLimits(t *testing.T) {
	store := newMemQuota()
	// Written long period first: Validate orders them shortest first.
	rl := RateLimit{Limits: []Limit{{3, 24 * time.Hour}, {2, time.Hour}}, Store: store}
	if err := rl.Validate(); err != nil {
		t.Fatal(err)
	}
	if rl.Limits[0].Period != time.Hour {
		t.Fatalf("limits not ordered shortest first: %v", rl.Limits)
	}
	ctx := context.Background()
	scope := ConfigScope("h", "/t")
	take := func(at time.Time) error { return rl.Take(ctx, scope, "", at) }

	if take(rlNow) != nil || take(rlNow) != nil {
		t.Fatal("the first two requests must pass")
	}
	// Third in the same hour: denied by the hourly limit, and the daily
	// limit is not charged for it.
	err := take(rlNow)
	q, ok := AsQuotaExceeded(err)
	if !ok || q.Limit.Period != time.Hour {
		t.Fatalf("third request: %v, want the hourly limit exceeded", err)
	}
	daily := 0
	for _, k := range store.taken {
		if strings.Contains(k, "#3/24h") {
			daily++
		}
	}
	if daily != 2 {
		t.Fatalf("daily limit charged %d units, want 2 (only passed requests)", daily)
	}
	// Next hour: one more passes (daily 3/3), then the daily limit denies.
	if err := take(rlNow.Add(time.Hour)); err != nil {
		t.Fatalf("next hour: %v", err)
	}
	q, ok = AsQuotaExceeded(take(rlNow.Add(time.Hour)))
	if !ok || q.Limit.Period != 24*time.Hour {
		t.Fatalf("want the daily limit exceeded, got %+v", q)
	}
	if want := 11 * time.Hour; q.RetryAfter != want {
		t.Fatalf("retry after %s, want %s (until midnight UTC)", q.RetryAfter, want)
	}
}

func TestRateLimitSamePeriodLimitsKeepOwnCounters(t *testing.T) {
	store := newMemQuota()
	rl := RateLimit{Limits: []Limit{{1, time.Hour}, {5, time.Hour}}, Store: store}
	if err := rl.Validate(); err != nil {
		t.Fatal(err)
	}
	scope := ConfigScope("h", "/t")
	if err := rl.Take(context.Background(), scope, "", rlNow); err != nil {
		t.Fatalf("first request: %v (two limits of one period must not share a counter)", err)
	}
	if _, ok := AsQuotaExceeded(rl.Take(context.Background(), scope, "", rlNow)); !ok {
		t.Fatal("the quota of 1 per hour let a second request through")
	}
}

func TestRateLimitStoreFailureIsNotARejection(t *testing.T) {
	store := newMemQuota()
	store.err = errors.New("connection refused")
	rl := RateLimit{Limits: []Limit{{1, time.Hour}}, Store: store}
	if err := rl.Validate(); err != nil {
		t.Fatal(err)
	}
	err := rl.Take(context.Background(), "s", "", rlNow)
	if err == nil {
		t.Fatal("a store failure let the request through")
	}
	if _, ok := AsRejection(err); ok {
		t.Fatalf("a store failure must not look like a quota rejection: %v", err)
	}
	if !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("store error lost: %v", err)
	}
}

func TestRateLimitUnvalidatedFailsClosed(t *testing.T) {
	var rl RateLimit
	if _, ok := AsRejection(rl.Take(context.Background(), "s", "", rlNow)); !ok {
		t.Fatal("a rate limit without limits or store must reject")
	}
}

func TestRateLimitConcurrentExact(t *testing.T) {
	store := newMemQuota()
	rl := RateLimit{Limits: []Limit{{25, time.Hour}}, Store: store}
	if err := rl.Validate(); err != nil {
		t.Fatal(err)
	}
	var passed, denied atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch err := rl.Take(context.Background(), "s", "k", rlNow); {
			case err == nil:
				passed.Add(1)
			case errors.As(err, new(*QuotaExceeded)):
				denied.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if passed.Load() != 25 || denied.Load() != 75 {
		t.Fatalf("passed %d denied %d, want 25 and 75", passed.Load(), denied.Load())
	}
}

func TestRetryAfterSecondsRoundsUp(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int64
	}{
		{0, 1}, {time.Millisecond, 1}, {time.Second, 1}, {1500 * time.Millisecond, 2},
		{2 * time.Second, 2}, {time.Hour - time.Nanosecond, 3600}, {-time.Second, 1},
	} {
		q := &QuotaExceeded{RetryAfter: tc.d}
		if got := q.RetryAfterSeconds(); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.d, got, tc.want)
		}
		if rej, ok := AsRejection(q); !ok || rej.Directive != DirectiveRateLimit || q.Error() != "webhook_rate_limit: quota exceeded" {
			t.Errorf("a QuotaExceeded made by hand is not a rate limit rejection: %v %v", rej, ok)
		}
	}
}

func TestConfigScope(t *testing.T) {
	if ConfigScope(`{"host":["a.example.com"]}`, `{"path":["/t"]}`) != ConfigScope(`{"host":["a.example.com"]}`, `{"path":["/t"]}`) {
		t.Error("the same configuration gives two scopes: instances would not share quotas")
	}
	different := [][2][]string{
		{{`{"path":["/github"]}`}, {`{"path":["/gitlab"]}`}},
		{{`{"host":["a.example.com"]}`}, {`{"host":["b.example.com"]}`}},
		{{"ab", "c"}, {"a", "bc"}},
		{{"a"}, {"a", ""}},
		{{}, {""}},
	}
	for _, c := range different {
		if a, b := ConfigScope(c[0]...), ConfigScope(c[1]...); a == b {
			t.Errorf("%q and %q share scope %q", c[0], c[1], a)
		}
	}
	if s := ConfigScope("h#x", "/p#q"); strings.Contains(s, "#") {
		t.Errorf("scope %q contains the key separator", s)
	}
}

func TestQuotaKeyCannotBeForgedByTheKeyValue(t *testing.T) {
	scope := ConfigScope("h", "/t")
	a := QuotaKey(scope, Limit{10, time.Hour}, "T1")
	// A sender choosing the key value cannot reach another limit's counter.
	for _, key := range []string{"T1#10/1h0m0s", "#10/1h0m0s#T1", "", "T1 "} {
		if QuotaKey(scope, Limit{10, time.Hour}, key) == a {
			t.Errorf("key %q collides with key T1", key)
		}
	}
	if QuotaKey(scope, Limit{10, time.Hour}, "T1") == QuotaKey(scope, Limit{100, time.Hour}, "T1") {
		t.Error("two limits of one period share a counter")
	}
}
