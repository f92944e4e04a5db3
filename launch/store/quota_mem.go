package store

import (
	"encoding/binary"
	"sync"
	"time"
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
	mu     sync.Mutex
	counts map[string]uint64   // bbolt quota key → units taken
	dirty  map[string]struct{} // counters changed since the last flush
	latest uint64              // latest clock seen: windows ending by then are over
}

func newQuotaTable() *quotaTable {
	return &quotaTable{counts: map[string]uint64{}, dirty: map[string]struct{}{}}
}

// windowEnd is the end stamp of the quota key k (see Bolt.quotaKey).
func windowEnd(k string) uint64 { return binary.BigEndian.Uint64([]byte(k[:8])) }

// take counts one unit of k unless limit units are taken; dirty marks the
// counter for the next flush. at advances the table's clock.
func (q *quotaTable) take(k string, limit, at uint64, dirty bool) (uint64, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.latest = max(q.latest, at)
	n := q.counts[k]
	if n >= limit {
		return n, false
	}
	q.counts[k] = n + 1
	if dirty {
		q.dirty[k] = struct{}{}
	}
	return n + 1, true
}

// count returns the units taken of k.
func (q *quotaTable) count(k string) (uint64, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n, ok := q.counts[k]
	return n, ok
}

// give returns a unit taken by take whose commit did not happen.
func (q *quotaTable) give(k string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if n := q.counts[k]; n > 0 {
		q.counts[k] = n - 1
	}
}

// load sets a counter read from the file at open.
func (q *quotaTable) load(k string, n uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.counts[k] = n
}

// drain returns the dirty counters with their values and forgets expired
// ones, which it returns too (their records are deleted from the file).
func (q *quotaTable) drain() (dirty map[string]uint64, expired []string, latest uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	dirty = make(map[string]uint64, len(q.dirty))
	for k := range q.dirty {
		dirty[k] = q.counts[k]
	}
	clear(q.dirty)
	for k := range q.counts {
		if windowEnd(k) <= q.latest {
			expired = append(expired, k)
			delete(q.counts, k)
			delete(dirty, k)
		}
	}
	return dirty, expired, q.latest
}

// redirty marks counters dirty again after a flush that failed.
func (q *quotaTable) redirty(keys map[string]uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for k := range keys {
		if _, live := q.counts[k]; live {
			q.dirty[k] = struct{}{}
		}
	}
}
