package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hooklaunch/caddy-valohai/launch"
)

// DefaultQuotaFlush is how often the embedded store writes the quota units
// taken on routes that store no run (TakeQuota) to its file. Units taken in
// the last interval before a crash are lost: a restarted gateway may admit
// that many requests again (README.md, "webhook_rate_limit").
const DefaultQuotaFlush = time.Second

// quotaTable holds every live quota counter of a Bolt store in memory.
// Only one process can open a bbolt file, so the table is the truth while
// the store is open: counting is exact, and a counter needs no disk read.
// Units claimed with a run (CreateRun) are written in the run's commit;
// units taken alone (TakeQuota) are marked dirty and flushed in batches.
type quotaTable struct {
	mu sync.Mutex
	// counts maps a bbolt quota key to its counter. Counters are pointers
	// so that a unit taken of a live counter is a lookup by the key's
	// bytes, which allocates nothing, not an assignment that stores a new
	// copy of the key.
	counts map[string]*quotaCounter
	latest uint64 // latest clock seen: windows ending by then are over
}

// quotaCounter is one live counter.
type quotaCounter struct {
	n     uint64 // units taken
	dirty bool   // changed since the last flush
}

func newQuotaTable() *quotaTable {
	return &quotaTable{counts: map[string]*quotaCounter{}}
}

// windowEnd is the end stamp of the quota key k (see Bolt.quotaKey).
func windowEnd(k string) uint64 { return binary.BigEndian.Uint64([]byte(k[:8])) }

// take counts one unit of k unless limit units are taken; dirty marks the
// counter for the next flush. at advances the table's clock.
func (q *quotaTable) take(k []byte, limit, at uint64, dirty bool) (uint64, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.latest = max(q.latest, at)
	c := q.counts[string(k)]
	if c == nil {
		if limit == 0 {
			return 0, false
		}
		c = &quotaCounter{}
		q.counts[string(k)] = c
	}
	if c.n >= limit {
		return c.n, false
	}
	c.n++
	c.dirty = c.dirty || dirty
	return c.n, true
}

// count returns the units taken of k.
func (q *quotaTable) count(k []byte) (uint64, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if c := q.counts[string(k)]; c != nil {
		return c.n, true
	}
	return 0, false
}

// give returns a unit taken by take whose commit did not happen.
func (q *quotaTable) give(k string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if c := q.counts[k]; c != nil && c.n > 0 {
		c.n--
	}
}

// load sets a counter read from the file at open.
func (q *quotaTable) load(k string, n uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.counts[k] = &quotaCounter{n: n}
}

// drain returns the dirty counters with their values and forgets expired
// ones, which it returns too (their records are deleted from the file).
func (q *quotaTable) drain() (dirty map[string]uint64, expired []string, latest uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	dirty = map[string]uint64{}
	for k, c := range q.counts {
		if windowEnd(k) <= q.latest {
			expired = append(expired, k)
			delete(q.counts, k)
			continue
		}
		if c.dirty {
			dirty[k] = c.n
			c.dirty = false
		}
	}
	return dirty, expired, q.latest
}

// redirty marks counters dirty again after a flush that failed.
func (q *quotaTable) redirty(keys map[string]uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for k := range keys {
		if c := q.counts[k]; c != nil {
			c.dirty = true
		}
	}
}

// takeAlone is TakeQuota of the embedded stores: one unit of key's quota
// in the window of period containing now, counted in memory and flushed
// later (see BoltOptions.QuotaFlush).
func (q *quotaTable) takeAlone(ctx context.Context, key string, limit int, period time.Duration, now time.Time) (bool, time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return false, 0, err
	}
	if period <= 0 {
		return false, 0, errors.New("store: TakeQuota needs a positive period")
	}
	at := stamp(now)
	var buf [128]byte // a scope, a limit and a short key fit: no allocation
	k, end := appendQuotaKey(buf[:0], key, period, at)
	if _, ok := q.take(k, uint64(max(limit, 0)), at, true); !ok {
		return false, time.Duration(end - at), nil
	}
	return true, 0, nil
}

// quotaKey is the record key of key's window of period containing at:
// window end(8) + period(8) + key, and the window's end.
func quotaKey(key string, period time.Duration, at uint64) ([]byte, uint64) {
	return appendQuotaKey(make([]byte, 0, 16+len(key)), key, period, at)
}

// appendQuotaKey is quotaKey appended to k.
func appendQuotaKey(k []byte, key string, period time.Duration, at uint64) ([]byte, uint64) {
	p := uint64(period)
	end := at - at%p + p
	k = binary.BigEndian.AppendUint64(k, end)
	k = binary.BigEndian.AppendUint64(k, p) // two periods may share a window end
	return append(k, boundKey(key)...), end
}

// claimKey is a launch.Claim as the embedded stores keep it.
type claimKey struct {
	quota  bool
	key    []byte // quota record key, or bounded delivery key
	limit  uint64
	at     uint64 // the claim's clock
	expire uint64 // window end (quota) or key expiry
}

// prepareClaims checks claims and computes their record keys, outside any
// transaction; pruneAt is the latest clock of a key claim (0 for none).
func prepareClaims(claims []launch.Claim) (keys []claimKey, pruneAt uint64, err error) {
	keys = make([]claimKey, len(claims))
	for i, c := range claims {
		if err := c.Check(); err != nil {
			return nil, 0, err
		}
		at := stamp(c.At)
		if c.IsQuota() {
			k, end := quotaKey(c.Key, c.Period, at)
			keys[i] = claimKey{quota: true, key: k, limit: uint64(max(c.Limit, 0)), at: at, expire: end}
			continue
		}
		keys[i] = claimKey{key: []byte(boundKey(c.Key)), at: at, expire: stamp(c.At.Add(c.Window))}
		pruneAt = max(pruneAt, at)
	}
	return keys, pruneAt, nil
}

// judge decides claims in order, inside the commit: a quota unit is taken
// in memory, a delivery key is free unless held (the stored expiry(8) +
// holder, as heldBy reads it) past the claim's clock. On a denial every
// unit taken is given back; otherwise taken lists them, for the caller to
// give back if the commit fails.
func (q *quotaTable) judge(keys []claimKey, heldBy func(key []byte) ([]byte, error)) (denied *launch.ClaimDenied, taken []string, err error) {
	for i, c := range keys {
		if c.quota {
			if _, ok := q.take(c.key, c.limit, c.at, false); ok {
				taken = append(taken, string(c.key))
				continue
			}
			denied = &launch.ClaimDenied{Index: i, RetryAfter: time.Duration(c.expire - c.at)}
		} else {
			v, err := heldBy(c.key)
			if err != nil {
				q.giveAll(taken)
				return nil, nil, err
			}
			if v == nil || binary.BigEndian.Uint64(v) <= c.at {
				continue
			}
			denied = &launch.ClaimDenied{Index: i, Held: string(v[8:])}
		}
		q.giveAll(taken)
		return denied, nil, nil
	}
	return nil, taken, nil
}

// giveAll gives back the units of keys.
func (q *quotaTable) giveAll(keys []string) {
	for _, k := range keys {
		q.give(k)
	}
}

// flushEvery calls flush every interval until stop closes, then closes done.
func flushEvery(every time.Duration, stop <-chan struct{}, done chan<- struct{}, flush func() error) {
	defer close(done)
	if every <= 0 {
		every = DefaultQuotaFlush
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			_ = flush() // a failed flush is tried again on the next tick
		}
	}
}

// newSecret runs gen for the secret name and checks what it made.
func newSecret(name string, gen func() ([]byte, error)) ([]byte, error) {
	fresh, err := gen()
	if err != nil {
		return nil, fmt.Errorf("store: generating secret %q: %w", name, err)
	}
	if len(fresh) == 0 {
		return nil, fmt.Errorf("store: generating secret %q: empty secret", name)
	}
	return fresh, nil
}
