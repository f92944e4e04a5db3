// Package store holds the implementations of launch.Store: Bolt, an
// embedded bbolt file for a single Caddy instance (the default), and a redis
// store shared by several instances. Both pass the shared conformance suite
// in launch/store/storetest.
package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hooklaunch/caddy-valohai/launch"
)

// Defaults of BoltOptions and of listing.
const (
	// DefaultLockTimeout is how long OpenBolt waits for another process to
	// release the file: long enough to ride out a restart that overlaps
	// the old process's shutdown, short enough to fail a misconfiguration
	// (two Caddy instances on one file) visibly instead of hanging.
	DefaultLockTimeout = 5 * time.Second
	// DefaultMaxRejections caps the rejection log: it is a debugging aid,
	// and an attacker must not be able to grow the file without bound.
	DefaultMaxRejections = 10000
	// DefaultListLimit is the page size of ListRuns and ListRejections
	// when the filter sets none.
	DefaultListLimit = 100
)

// pruneBatch bounds the expired quota windows and dedupe keys one write
// removes, so housekeeping never makes a single request slow.
const pruneBatch = 64

// maxKeyLen is the longest quota or dedupe key stored verbatim; longer keys
// (they come from request headers) are hashed to stay within bbolt's key
// size limit and keep the B+tree pages small.
const maxKeyLen = 512

// Bucket names. Keys that start with an 8-byte big-endian Unix-nanosecond
// stamp sort by time, which is what every index here needs.
var (
	bucketRuns       = []byte("runs")         // run id → JSON launch.Run
	bucketRunsByTime = []byte("runs_by_time") // created(8)+id → nil, for newest-first listing of runs that are not self-ordered (selfordered.go)
	bucketPayloads   = []byte("payloads")     // run id → expires(8)+ctlen(4)+content type+body
	bucketPayloadExp = []byte("payload_exp")  // expires(8)+id → nil, to purge expired payloads whose run id is not a UUIDv7
	bucketQueue      = []byte("queue")        // due(8)+id → nil, first key = next run due
	bucketQueueByRun = []byte("queue_by_run") // id → due(8), to find a run's queue entry
	bucketQuota      = []byte("quota")        // window end(8)+period(8)+key → count(8)
	bucketDedupe     = []byte("dedupe")       // key → expires(8)+value
	bucketDedupeExp  = []byte("dedupe_exp")   // expires(8)+key → nil, to prune expired keys
	bucketRejections = []byte("rejections")   // sequence(8) → JSON launch.Rejected
	bucketSecrets    = []byte("secrets")      // name → bytes

	allBuckets = [][]byte{bucketRuns, bucketRunsByTime, bucketPayloads, bucketPayloadExp,
		bucketQueue, bucketQueueByRun, bucketQuota, bucketDedupe, bucketDedupeExp,
		bucketRejections, bucketSecrets}
)

// BoltOptions tunes OpenBolt. The zero value is the production setting.
type BoltOptions struct {
	// Timeout is how long to wait for the file lock held by another
	// process before failing (default DefaultLockTimeout).
	Timeout time.Duration
	// QuotaFlush is how often quota units taken by TakeQuota are written
	// to the file (default DefaultQuotaFlush).
	QuotaFlush time.Duration
	// MaxRejections is how many rejection-log entries are kept, oldest
	// dropped first (default DefaultMaxRejections).
	MaxRejections int
	// Now is the clock payload expiry is judged by (default time.Now).
	// Methods that take a now argument use that instead.
	Now func() time.Time
}

// boltWrite is a writer's part of a shared bbolt transaction.
type boltWrite = write[*bolt.Tx]

// Bolt is the embedded launch.Store: one bbolt file, locked by one process.
// Every mutating method but TakeQuota returns only after its transaction was
// committed and fsynced, and concurrent writers share commits (groupCommit:
// one fsync for everything queued while the previous commit ran, no timer).
// bbolt has a single writer, which is what makes CreateRun's claims,
// ClaimRun and RememberKey exact under concurrency. Quota counters live in
// memory while the store is open (quotaTable): CreateRun writes the units
// it claims in its own commit, TakeQuota's units are flushed every
// BoltOptions.QuotaFlush and at Close.
type Bolt struct {
	db            *bolt.DB
	gc            *groupCommit[*bolt.Tx]
	quota         *quotaTable
	now           func() time.Time
	maxRejections uint64

	stopFlush chan struct{}
	flushDone chan struct{}
	closeOnce sync.Once
	closeErr  error
}

var (
	_ launch.Store     = (*Bolt)(nil)
	_ CommitObservable = (*Bolt)(nil)
)

// OpenBolt opens (creating if needed) the bbolt store at path. The parent
// directory is created with mode 0700 and the file with 0600: the file holds
// webhook bodies and the payload-URL signing key. If another process holds
// the file, OpenBolt fails after opts.Timeout.
func OpenBolt(path string, opts BoltOptions) (*Bolt, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: creating directory for %s: %w", path, err)
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("store: %s is locked by another process (is another Caddy using the same store?); gave up after %s: %w", path, timeout, err)
	}
	if err != nil {
		return nil, fmt.Errorf("store: opening %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: initialising %s: %w", path, err)
	}
	update := func(apply func(*bolt.Tx) error) (func() error, error) {
		return nil, db.Update(func(tx *bolt.Tx) error {
			fillTimeOrdered(tx)
			return apply(tx)
		})
	}
	b := &Bolt{db: db, gc: &groupCommit[*bolt.Tx]{update: update}, quota: newQuotaTable(), now: opts.Now, maxRejections: DefaultMaxRejections,
		stopFlush: make(chan struct{}), flushDone: make(chan struct{})}
	if b.now == nil {
		b.now = time.Now
	}
	if opts.MaxRejections > 0 {
		b.maxRejections = uint64(opts.MaxRejections)
	}
	if err := b.loadQuotas(); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: reading the quota counters of %s: %w", path, err)
	}
	go flushEvery(opts.QuotaFlush, b.stopFlush, b.flushDone, b.FlushQuotas)
	return b, nil
}

// timeOrdered are the buckets whose new keys sort after the ones stored
// (run ids are UUIDv7, the other keys start with a time or a sequence
// number), so that nearly every insert is an append to the last page.
var timeOrdered = [][]byte{bucketRuns, bucketRunsByTime, bucketPayloads, bucketPayloadExp,
	bucketQueue, bucketQueueByRun, bucketDedupeExp, bucketRejections}

// timeOrderedFill is how full bbolt packs the pages of a time-ordered
// bucket when a commit splits them. bbolt's default (half full) suits keys
// that land anywhere; for appends it leaves every page half empty for
// inserts that never come, so a commit writes (and the file holds) twice
// the pages. The tenth left free takes a run record that grows when its
// results are stored. README.md, "The durable write path".
const timeOrderedFill = 0.9

// fillTimeOrdered sets timeOrderedFill on the time-ordered buckets of a
// write transaction (FillPercent belongs to the bucket handle, which the
// transaction keeps, not to the file).
func fillTimeOrdered(tx *bolt.Tx) {
	for _, name := range timeOrdered {
		if b := tx.Bucket(name); b != nil {
			b.FillPercent = timeOrderedFill
		}
	}
}

// Path returns the file the store lives in.
func (b *Bolt) Path() string { return b.db.Path() }

// ObserveCommits makes f hear of every later durable commit (nil: none).
// A store shared across config reloads reports to the newest app's f.
func (b *Bolt) ObserveCommits(f CommitObserver) { b.gc.setObserver(f) }

// Close writes the quota counters and releases the file lock. Calling it
// again is harmless.
func (b *Bolt) Close() error {
	b.closeOnce.Do(func() {
		close(b.stopFlush)
		<-b.flushDone
		err := b.FlushQuotas()
		b.closeErr = errors.Join(err, b.db.Close())
	})
	return b.closeErr
}

// loadQuotas reads the counters of windows not yet over into memory.
func (b *Bolt) loadQuotas() error {
	now := stamp(b.now())
	b.quota.latest = now
	return b.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketQuota).ForEach(func(k, v []byte) error {
			if len(k) >= 16 && len(v) == 8 && binary.BigEndian.Uint64(k) > now {
				b.quota.load(string(k), binary.BigEndian.Uint64(v))
			}
			return nil
		})
	})
}

// FlushQuotas writes the quota counters changed since the last flush and
// deletes the records of windows that are over. The store calls it every
// BoltOptions.QuotaFlush and at Close.
func (b *Bolt) FlushQuotas() error {
	dirty, expired, latest := b.quota.drain()
	if len(dirty) == 0 && len(expired) == 0 {
		return nil
	}
	err := b.gc.do(func(tx *bolt.Tx, w *boltWrite) error {
		q := tx.Bucket(bucketQuota)
		for k, n := range dirty {
			if err := q.Put([]byte(k), binary.BigEndian.AppendUint64(nil, n)); err != nil {
				return err
			}
		}
		// Windows are keyed by their end, so the expired ones come first.
		for {
			k, _ := q.Cursor().First()
			if k == nil || binary.BigEndian.Uint64(k) > latest {
				return nil
			}
			if err := q.Delete(k); err != nil {
				return err
			}
		}
	})
	if err != nil {
		b.quota.redirty(dirty)
	}
	return err
}

// prepareCreate encodes what CreateRun stores, on either embedded engine,
// before its commit: the run's id and JSON, its payload (a copy of the body:
// the caller may reuse its buffer) and the claims' keys.
func prepareCreate(run *launch.Run, payload *launch.Payload, claims []launch.Claim) (id, data, pdata []byte, keys []claimKey, pruneAt uint64, err error) {
	if run == nil || run.ID == "" {
		return nil, nil, nil, nil, 0, errors.New("store: CreateRun needs a run with an id")
	}
	if data, err = launch.MarshalRun(run); err != nil {
		return nil, nil, nil, nil, 0, fmt.Errorf("store: encoding run %q: %w", run.ID, err)
	}
	if payload != nil {
		pdata = encodePayload(payload)
	}
	keys, pruneAt, err = prepareClaims(claims)
	return []byte(run.ID), data, pdata, keys, pruneAt, err
}

// CreateRun stores run and payload, takes its claims and queues the run,
// due at run.NextAttemptAt (a zero time is due at once), in one
// transaction: either all of it is committed, or, when a claim cannot be
// had, nothing is and the error is a *launch.ClaimDenied.
func (b *Bolt) CreateRun(ctx context.Context, run *launch.Run, payload *launch.Payload, claims ...launch.Claim) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	id, data, pdata, keys, pruneAt, err := prepareCreate(run, payload, claims)
	if err != nil {
		return err
	}
	self := selfOrdered(run.ID, run.CreatedAt) // listed without runs_by_time
	var denied *launch.ClaimDenied
	// The write function may run more than once (after a rollback caused
	// by another write of the batch), so it only uses what was computed
	// above and resets its outcome.
	err = b.gc.do(func(tx *bolt.Tx, w *boltWrite) error {
		denied = nil
		runs := tx.Bucket(bucketRuns)
		if runs.Get(id) != nil {
			return fmt.Errorf("store: run %q already exists", run.ID)
		}
		d, dexp := tx.Bucket(bucketDedupe), tx.Bucket(bucketDedupeExp)
		if pruneAt > 0 {
			if err := pruneExpired(dexp, d, pruneAt); err != nil {
				return err
			}
		}
		// Judge every claim, in order, before writing anything.
		var taken []string
		var err error
		denied, taken, err = b.quota.judge(keys, func(k []byte) ([]byte, error) { return d.Get(k), nil })
		if err != nil || denied != nil {
			return err
		}
		w.onRollback(func() { b.quota.giveAll(taken) })
		q := tx.Bucket(bucketQuota)
		for _, c := range keys {
			if c.quota {
				n, _ := b.quota.count(c.key)
				if err := q.Put(c.key, binary.BigEndian.AppendUint64(nil, n)); err != nil {
					return err
				}
				continue
			}
			if v := d.Get(c.key); v != nil {
				if err := dexp.Delete(stampKey(binary.BigEndian.Uint64(v), string(c.key))); err != nil {
					return err
				}
			}
			if err := d.Put(c.key, append(binary.BigEndian.AppendUint64(nil, c.expire), run.ID...)); err != nil {
				return err
			}
			if err := dexp.Put(stampKey(c.expire, string(c.key)), nil); err != nil {
				return err
			}
		}
		if err := runs.Put(id, data); err != nil {
			return err
		}
		if !self {
			if err := tx.Bucket(bucketRunsByTime).Put(stampKey(stamp(run.CreatedAt), run.ID), nil); err != nil {
				return err
			}
		}
		// A run that does not exist has no payload and no queue entry to
		// replace: both are written without looking for one (as pebble's
		// CreateRun does).
		if pdata != nil {
			if err := putPayload(tx, run.ID, pdata); err != nil {
				return err
			}
		}
		return queueAt(tx, run.ID, stamp(run.NextAttemptAt))
	})
	if err != nil {
		return err
	}
	if denied != nil {
		return denied
	}
	return nil
}

// createdStamp is the creation time (stamp) of the stored run record old,
// which UpdateRun needs to move the run's listing key when it changes.
func createdStamp(id string, old []byte) (uint64, error) {
	r, err := decodeRunTimes([]byte(id), old)
	return stamp(r.CreatedAt), err
}

// UpdateRun replaces a stored run. It does not touch the queue: workers move
// a run there with RequeueRun and CompleteRun.
func (b *Bolt) UpdateRun(ctx context.Context, run *launch.Run) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if run == nil {
		return errors.New("store: UpdateRun needs a run")
	}
	data, err := launch.MarshalRun(run)
	if err != nil {
		return fmt.Errorf("store: encoding run %q: %w", run.ID, err)
	}
	id := []byte(run.ID)
	return b.gc.do(func(tx *bolt.Tx, _ *boltWrite) error {
		runs := tx.Bucket(bucketRuns)
		old := runs.Get(id)
		if old == nil {
			return fmt.Errorf("store: run %q: %w", run.ID, launch.ErrNotFound)
		}
		was, err := createdStamp(run.ID, old)
		if err != nil {
			return err
		}
		// Keep the listing index in step should the creation time change:
		// the run's entry moves, or goes when the run is now self-ordered,
		// or comes when it no longer is (there was none to delete then).
		if is := stamp(run.CreatedAt); was != is {
			idx := tx.Bucket(bucketRunsByTime)
			if err := idx.Delete(stampKey(was, run.ID)); err != nil {
				return err
			}
			if !selfOrdered(run.ID, run.CreatedAt) {
				if err := idx.Put(stampKey(is, run.ID), nil); err != nil {
					return err
				}
			}
		}
		return runs.Put(id, data)
	})
}

// GetRun returns a run or an error wrapping launch.ErrNotFound.
func (b *Bolt) GetRun(ctx context.Context, id string) (*launch.Run, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var run *launch.Run
	err := b.db.View(func(tx *bolt.Tx) error {
		data := tx.Bucket(bucketRuns).Get([]byte(id))
		if data == nil {
			return fmt.Errorf("store: run %q: %w", id, launch.ErrNotFound)
		}
		var err error
		run, err = decodeRun(id, data)
		return err
	})
	return run, err
}

// ListRuns returns the runs matching f, newest first, at most f.Limit
// (DefaultListLimit when unset).
func (b *Bolt) ListRuns(ctx context.Context, f launch.RunFilter) ([]*launch.Run, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	var out []*launch.Run
	err := b.db.View(func(tx *bolt.Tx) error {
		return runsNewestFirst(tx, func(id, data []byte) (bool, error) {
			run, err := decodeRun(string(id), data)
			if err != nil {
				return false, err
			}
			if (f.Trigger == "" || run.Trigger == f.Trigger) &&
				(f.Path == "" || run.Path == f.Path) &&
				(f.Status == "" || run.Status == f.Status) {
				out = append(out, run)
			}
			return len(out) < limit, nil
		})
	})
	return out, err
}

// DeleteRunsBefore removes final runs created before t, with their payloads
// and queue entries, and returns how many it removed. It is the periodic
// retention sweep, so it also purges payloads that expired (by the store's
// clock) while their run is still kept: payloads live shorter than runs.
func (b *Bolt) DeleteRunsBefore(ctx context.Context, t time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	cut, now := stamp(t), stamp(b.now())
	// A self-ordered run of a millisecond at or after cutMs was created at
	// or after the cut.
	cutMs := (cut + uint64(time.Millisecond) - 1) / uint64(time.Millisecond)
	var n int
	err := b.db.Update(func(tx *bolt.Tx) error {
		n = 0
		runs, idx := tx.Bucket(bucketRuns), tx.Bucket(bucketRunsByTime)
		// Collect first: deleting under a moving bbolt cursor skips keys.
		doomed := map[string]uint64{} // id → creation stamp
		var dangling [][]byte
		c := idx.Cursor()
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) < cut; k, _ = c.Next() {
			data := runs.Get(k[8:])
			if data == nil {
				dangling = append(dangling, bytes.Clone(k))
				continue
			}
			r, err := decodeRunTimes(k[8:], data)
			if err != nil {
				return err
			}
			if r.Status.Final() {
				doomed[string(k[8:])] = binary.BigEndian.Uint64(k)
			}
		}
		// Self-ordered runs have no index entry: walk the runs bucket
		// oldest first, up to the cut's millisecond (README.md, "The
		// durable write path").
		c = runs.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			ms, ok := v7Millis(string(k))
			if !ok {
				continue // indexed, judged above
			}
			if ms >= cutMs {
				break
			}
			r, err := decodeRunTimes(k, v)
			if err != nil {
				return err
			}
			if selfOrdered(string(k), r.CreatedAt) && stamp(r.CreatedAt) < cut && r.Status.Final() {
				doomed[string(k)] = stamp(r.CreatedAt)
			}
		}
		for _, k := range dangling {
			if err := idx.Delete(k); err != nil {
				return err
			}
		}
		for id, created := range doomed {
			n++
			if err := runs.Delete([]byte(id)); err != nil {
				return err
			}
			if err := idx.Delete(stampKey(created, id)); err != nil {
				return err
			}
			if err := deletePayload(tx, id); err != nil {
				return err
			}
			if err := dequeue(tx, id); err != nil {
				return err
			}
		}
		var expired []string
		c = tx.Bucket(bucketPayloadExp).Cursor()
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= now; k, _ = c.Next() {
			expired = append(expired, string(k[8:]))
		}
		// Payloads keyed by a UUIDv7 have no payload_exp entry. Each
		// expires the app's payload_ttl after it was made, so they expire
		// in key order: walk them oldest first up to the first one still
		// valid.
		c = tx.Bucket(bucketPayloads).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if _, ok := v7Millis(string(k)); !ok || len(v) < 8 {
				continue
			}
			exp := binary.BigEndian.Uint64(v)
			if exp == 0 {
				continue // never expires
			}
			if exp > now {
				break
			}
			expired = append(expired, string(k))
		}
		for _, id := range expired {
			if err := deletePayload(tx, id); err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}

// GetPayload returns the stored payload of a run, or an error wrapping
// launch.ErrNotFound when there is none or it expired. A payload with a zero
// ExpiresAt never expires.
func (b *Bolt) GetPayload(ctx context.Context, runID string) (*launch.Payload, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var p *launch.Payload
	err := b.db.View(func(tx *bolt.Tx) error {
		data := tx.Bucket(bucketPayloads).Get([]byte(runID))
		if data == nil {
			return fmt.Errorf("store: payload %q: %w", runID, launch.ErrNotFound)
		}
		var err error
		if p, err = decodePayload(data); err != nil {
			return fmt.Errorf("store: payload %q: %w", runID, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !p.ExpiresAt.IsZero() && !b.now().Before(p.ExpiresAt) {
		return nil, fmt.Errorf("store: payload %q expired: %w", runID, launch.ErrNotFound)
	}
	return p, nil
}

// ClaimRun hands the first run due at now to one caller and leases it: the
// run's queue entry moves to now+lease, so if the worker dies the run simply
// becomes due again, and no other worker can take it before then.
func (b *Bolt) ClaimRun(ctx context.Context, now time.Time, lease time.Duration) (string, bool, error) {
	if err := ctx.Err(); err != nil {
		return "", false, err
	}
	if lease <= 0 {
		return "", false, errors.New("store: ClaimRun needs a positive lease")
	}
	at := stamp(now)
	// Idle workers poll: look first in a read transaction, so an empty
	// queue never costs a write and an fsync.
	var due bool
	err := b.db.View(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketQueue).Cursor().First()
		due = k != nil && binary.BigEndian.Uint64(k) <= at
		return nil
	})
	if err != nil || !due {
		return "", false, err
	}
	var id string
	err = b.gc.do(func(tx *bolt.Tx, _ *boltWrite) error {
		id = "" // Batch may rerun this function
		k, _ := tx.Bucket(bucketQueue).Cursor().First()
		if k == nil || binary.BigEndian.Uint64(k) > at {
			return nil // another worker took it between the two transactions
		}
		id = string(k[8:])
		return enqueue(tx, id, stamp(now.Add(lease)))
	})
	if err != nil {
		return "", false, err
	}
	return id, id != "", nil
}

// RequeueRun puts a run on the queue due at the given time, whether it was
// claimed or already completed (a manual retry), replacing any lease.
func (b *Bolt) RequeueRun(ctx context.Context, runID string, at time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.gc.do(func(tx *bolt.Tx, _ *boltWrite) error {
		if tx.Bucket(bucketRuns).Get([]byte(runID)) == nil {
			return fmt.Errorf("store: run %q: %w", runID, launch.ErrNotFound)
		}
		return enqueue(tx, runID, stamp(at))
	})
}

// ReleaseLeases makes every queued run due no later than now, and returns
// how many it moved. Only one process can hold a bbolt file, so at open every
// lease belongs to a process that is gone (crashed or killed): waiting for
// those leases to run out would only delay acknowledged runs. Runs waiting
// out a retry backoff are retried at once too, which a restart may do.
func (b *Bolt) ReleaseLeases(now time.Time) (int, error) {
	at := stamp(now)
	var moved int
	err := b.db.Update(func(tx *bolt.Tx) error {
		moved = 0
		var ids []string
		c := tx.Bucket(bucketQueueByRun).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if binary.BigEndian.Uint64(v) > at {
				ids = append(ids, string(k))
			}
		}
		for _, id := range ids {
			if err := enqueue(tx, id, at); err != nil {
				return err
			}
		}
		moved = len(ids)
		return nil
	})
	return moved, err
}

// CompleteRun removes a run from the queue. Completing a run that is not
// queued succeeds, so a worker may safely repeat it.
func (b *Bolt) CompleteRun(ctx context.Context, runID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.gc.do(func(tx *bolt.Tx, _ *boltWrite) error { return dequeue(tx, runID) })
}

// QueueDepth counts queued runs, including those leased to a worker: they
// stay queued until CompleteRun.
func (b *Bolt) QueueDepth(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var n int
	err := b.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketQueueByRun).Stats().KeyN
		return nil
	})
	return n, err
}

// TakeQuota consumes one unit of key's quota in the fixed window of length
// period that contains now. Windows are aligned to multiples of period since
// the Unix epoch, so every instance and every restart agrees on them.
//
// The count is exact (the counters live in memory, and only this process
// can open the file), but the unit is written to the file by the next
// flush (BoltOptions.QuotaFlush), not before TakeQuota returns: units taken
// in the last interval before a crash are lost. Routes that store a run
// claim their units with CreateRun instead, in the run's own commit.
func (b *Bolt) TakeQuota(ctx context.Context, key string, limit int, period time.Duration, now time.Time) (bool, time.Duration, error) {
	return b.quota.takeAlone(ctx, key, limit, period, now)
}

// RememberKey records value under key until now+window unless an unexpired
// value is held; it returns the held value and whether this call stored it.
func (b *Bolt) RememberKey(ctx context.Context, key, value string, window time.Duration, now time.Time) (string, bool, error) {
	if err := ctx.Err(); err != nil {
		return "", false, err
	}
	if key == "" || window <= 0 {
		return "", false, errors.New("store: RememberKey needs a key and a positive window")
	}
	k := []byte(boundKey(key))
	at, exp := stamp(now), stamp(now.Add(window))
	var held string
	var first bool
	err := b.gc.do(func(tx *bolt.Tx, _ *boltWrite) error {
		held, first = "", false
		d, dexp := tx.Bucket(bucketDedupe), tx.Bucket(bucketDedupeExp)
		if err := pruneExpired(dexp, d, at); err != nil {
			return err
		}
		if v := d.Get(k); v != nil {
			was := binary.BigEndian.Uint64(v)
			if was > at {
				held = string(v[8:])
				return nil
			}
			if err := dexp.Delete(stampKey(was, string(k))); err != nil {
				return err
			}
		}
		held, first = value, true
		if err := d.Put(k, append(binary.BigEndian.AppendUint64(nil, exp), value...)); err != nil {
			return err
		}
		return dexp.Put(stampKey(exp, string(k)), nil)
	})
	return held, first, err
}

// ForgetKey deletes key when it still holds value.
func (b *Bolt) ForgetKey(ctx context.Context, key, value string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	k := []byte(boundKey(key))
	return b.gc.do(func(tx *bolt.Tx, _ *boltWrite) error {
		d, dexp := tx.Bucket(bucketDedupe), tx.Bucket(bucketDedupeExp)
		v := d.Get(k)
		if v == nil || string(v[8:]) != value {
			return nil
		}
		if err := dexp.Delete(stampKey(binary.BigEndian.Uint64(v), string(k))); err != nil {
			return err
		}
		return d.Delete(k)
	})
}

// LogRejection appends r to the rejection log, dropping the oldest entries
// beyond BoltOptions.MaxRejections.
func (b *Bolt) LogRejection(ctx context.Context, r launch.Rejected) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("store: encoding rejection: %w", err)
	}
	return b.gc.do(func(tx *bolt.Tx, _ *boltWrite) error {
		log := tx.Bucket(bucketRejections)
		seq, err := log.NextSequence()
		if err != nil {
			return err
		}
		if err := log.Put(binary.BigEndian.AppendUint64(nil, seq), data); err != nil {
			return err
		}
		if seq <= b.maxRejections {
			return nil
		}
		// Sequences are dense, so everything at or below seq-max is surplus:
		// usually exactly one entry.
		var old [][]byte
		c := log.Cursor()
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= seq-b.maxRejections; k, _ = c.Next() {
			old = append(old, bytes.Clone(k))
		}
		for _, k := range old {
			if err := log.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// ListRejections returns rejections newest first; f.Path and f.Limit apply.
func (b *Bolt) ListRejections(ctx context.Context, f launch.RunFilter) ([]launch.Rejected, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	var out []launch.Rejected
	err := b.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRejections).Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			var r launch.Rejected
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("store: decoding rejection: %w", err)
			}
			if f.Path == "" || r.Path == f.Path {
				out = append(out, r)
			}
		}
		return nil
	})
	return out, err
}

// Secret returns the named secret, generating and storing it the first time.
// gen runs outside any transaction (it may be slow); if two callers race, the
// first to commit wins and both return its bytes.
func (b *Bolt) Secret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if name == "" {
		return nil, errors.New("store: Secret needs a name")
	}
	key := []byte(name)
	var secret []byte
	err := b.db.View(func(tx *bolt.Tx) error {
		secret = bytes.Clone(tx.Bucket(bucketSecrets).Get(key))
		return nil
	})
	if err != nil || secret != nil {
		return secret, err
	}
	fresh, err := newSecret(name, gen)
	if err != nil {
		return nil, err
	}
	err = b.db.Update(func(tx *bolt.Tx) error {
		s := tx.Bucket(bucketSecrets)
		if held := s.Get(key); held != nil {
			secret = bytes.Clone(held)
			return nil
		}
		secret = bytes.Clone(fresh)
		return s.Put(key, secret)
	})
	if err != nil {
		return nil, err
	}
	return secret, nil
}

// maxStamp is the latest time a stamp can hold (year 2262).
var maxStamp = time.Unix(0, math.MaxInt64)

// stamp encodes t as Unix nanoseconds for big-endian, time-ordered keys.
// The zero time and anything before 1970 become 0 (the beginning).
func stamp(t time.Time) uint64 {
	switch {
	case t.IsZero() || t.Before(time.Unix(0, 0)):
		return 0
	case t.After(maxStamp):
		return math.MaxInt64
	}
	return uint64(t.UnixNano())
}

// stampKey is the 8-byte stamp followed by s.
func stampKey(ts uint64, s string) []byte {
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(s)), ts), s...)
}

// boundKey keeps caller-supplied keys short enough for bbolt.
func boundKey(k string) string {
	if len(k) <= maxKeyLen {
		return k
	}
	sum := sha256.Sum256([]byte(k))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// pruneExpired deletes up to pruneBatch entries of the stamp-keyed bucket
// idx whose stamp is at or before now, and, when data is given, the entry of
// data keyed by the rest of the index key.
func pruneExpired(idx, data *bolt.Bucket, now uint64) error {
	var old [][]byte
	c := idx.Cursor()
	for k, _ := c.First(); k != nil && len(old) < pruneBatch && binary.BigEndian.Uint64(k) <= now; k, _ = c.Next() {
		old = append(old, bytes.Clone(k))
	}
	for _, k := range old {
		if err := idx.Delete(k); err != nil {
			return err
		}
		if data != nil {
			if err := data.Delete(k[8:]); err != nil {
				return err
			}
		}
	}
	return nil
}

// enqueue puts a run on the queue due at due, replacing its previous entry.
func enqueue(tx *bolt.Tx, id string, due uint64) error {
	if err := dequeue(tx, id); err != nil {
		return err
	}
	return queueAt(tx, id, due)
}

// queueAt queues a run that has no queue entry, due at due.
func queueAt(tx *bolt.Tx, id string, due uint64) error {
	if err := tx.Bucket(bucketQueue).Put(stampKey(due, id), nil); err != nil {
		return err
	}
	return tx.Bucket(bucketQueueByRun).Put([]byte(id), binary.BigEndian.AppendUint64(nil, due))
}

// dequeue removes a run's queue entry, if any.
func dequeue(tx *bolt.Tx, id string) error {
	byRun := tx.Bucket(bucketQueueByRun)
	v := byRun.Get([]byte(id))
	if v == nil {
		return nil
	}
	if err := tx.Bucket(bucketQueue).Delete(stampKey(binary.BigEndian.Uint64(v), id)); err != nil {
		return err
	}
	return byRun.Delete([]byte(id))
}

// putPayload stores the encoded payload of a run that has none yet (the
// run is new) and indexes its expiry, unless the run id is a UUIDv7: the
// retention sweep finds those in the payloads bucket itself (selfordered.go).
func putPayload(tx *bolt.Tx, id string, data []byte) error {
	if err := tx.Bucket(bucketPayloads).Put([]byte(id), data); err != nil {
		return err
	}
	if _, v7 := v7Millis(id); v7 {
		return nil
	}
	if exp := binary.BigEndian.Uint64(data); exp != 0 {
		return tx.Bucket(bucketPayloadExp).Put(stampKey(exp, id), nil)
	}
	return nil
}

// deletePayload removes a run's payload and its expiry index entry, if any.
func deletePayload(tx *bolt.Tx, id string) error {
	payloads := tx.Bucket(bucketPayloads)
	data := payloads.Get([]byte(id))
	if data == nil {
		return nil
	}
	if exp := binary.BigEndian.Uint64(data); exp != 0 {
		if err := tx.Bucket(bucketPayloadExp).Delete(stampKey(exp, id)); err != nil {
			return err
		}
	}
	return payloads.Delete([]byte(id))
}

// encodePayload lays a payload out as expires(8) + content-type length(4) +
// content type + body: binary, because bodies reach 25 MiB and base64 in
// JSON would add a third.
//
// When p.Framed has room for the header right before p.Body, the record is
// laid out there, around the body where it was read, without copying it.
func encodePayload(p *launch.Payload) []byte {
	head := 12 + len(p.ContentType)
	if n := len(p.Body); n > 0 && len(p.Framed) >= head+n && &p.Framed[len(p.Framed)-n] == &p.Body[0] {
		rec := p.Framed[len(p.Framed)-n-head : len(p.Framed) : len(p.Framed)]
		binary.BigEndian.PutUint64(rec, stamp(p.ExpiresAt))
		binary.BigEndian.PutUint32(rec[8:], uint32(len(p.ContentType)))
		copy(rec[12:head], p.ContentType)
		return rec
	}
	buf := make([]byte, 0, head+len(p.Body))
	buf = binary.BigEndian.AppendUint64(buf, stamp(p.ExpiresAt))
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(p.ContentType)))
	buf = append(buf, p.ContentType...)
	return append(buf, p.Body...)
}

// decodePayload reverses encodePayload, copying out of bbolt's memory map.
func decodePayload(data []byte) (*launch.Payload, error) {
	if len(data) < 12 {
		return nil, errors.New("corrupt payload record")
	}
	ctLen := uint64(binary.BigEndian.Uint32(data[8:]))
	if uint64(len(data)-12) < ctLen {
		return nil, errors.New("corrupt payload record")
	}
	p := &launch.Payload{
		ContentType: string(data[12 : 12+ctLen]),
		Body:        bytes.Clone(data[12+ctLen:]),
	}
	if p.Body == nil {
		p.Body = []byte{}
	}
	if exp := binary.BigEndian.Uint64(data); exp != 0 {
		p.ExpiresAt = time.Unix(0, int64(exp)).UTC()
	}
	return p, nil
}

// decodeRun decodes a stored run.
func decodeRun(id string, data []byte) (*launch.Run, error) {
	var run launch.Run
	if err := json.Unmarshal(data, &run); err != nil {
		return nil, fmt.Errorf("store: decoding run %q: %w", id, err)
	}
	return &run, nil
}
