package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/hooklaunch/caddy-valohai/launch"
)

// Key prefixes of the pebble store: one keyspace, one byte per kind of
// record, laid out as the bbolt buckets of the same name.
const (
	pRuns       = 'r' // id → JSON run
	pRunsByTime = 't' // created(8)+id
	pPayloads   = 'p' // id → encoded payload
	pPayloadExp = 'e' // expires(8)+id
	pQueue      = 'q' // due(8)+id
	pQueueByRun = 'Q' // id → due(8)
	pQuota      = 'k' // window end(8)+period(8)+key → count(8)
	pDedupe     = 'd' // key → expires(8)+value
	pDedupeExp  = 'D' // expires(8)+key
	pRejections = 'j' // seq(8) → JSON rejection
	pRejectSeq  = 'J' // → last seq(8)
	pSecrets    = 's' // name → bytes
)

// Pebble is a launch.Store on a pebble LSM directory: the same records and
// guarantees as Bolt, with every write batch committed to pebble's WAL with
// Sync. Writers share batches through the same groupCommit, so that a
// batch's reads (claims, queue) see every earlier write of the batch.
type Pebble struct {
	db            *pebble.DB
	gc            *groupCommit[*pebble.Batch]
	quota         *quotaTable
	now           func() time.Time
	maxRejections uint64

	// life is held (read) by every operation and taken by Close, so that
	// an operation racing Close gets ErrClosed instead of pebble's panic.
	life      sync.RWMutex
	closed    bool
	stopFlush chan struct{}
	flushDone chan struct{}
	closeOnce sync.Once
	closeErr  error

	// free is a range of run ids known to hold no run: it makes the
	// existence check of CreateRun free for time-ordered ids. It is read
	// and changed only by write functions, which the group commit runs
	// one at a time.
	free idGap
}

// idGap is an open range (lo, hi) of run ids of which none is stored, hi
// empty meaning no upper end. Run ids are time-ordered (UUIDv7), so each new
// id sorts after every stored one and lands in the gap found by the first
// lookup: CreateRun then needs no read to know it is new, instead of one
// lookup in every level of the LSM (15% of the full trigger's CPU;
// bench/README.md, "Embedded engines and the durable write path"). Other
// ids (from earlier versions, or out of order) are looked up as before.
type idGap struct {
	known  bool
	lo, hi []byte
}

// holds reports whether id lies in the gap, hence is not stored.
func (g *idGap) holds(id []byte) bool {
	return g.known && bytes.Compare(id, g.lo) > 0 && (g.hi == nil || bytes.Compare(id, g.hi) < 0)
}

// ErrClosed is returned by a store used after Close.
var ErrClosed = errors.New("store: closed")

// enter begins an operation (when ctx is live); exit must follow when it
// returns nil.
func (p *Pebble) enter(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.life.RLock()
	if p.closed {
		p.life.RUnlock()
		return ErrClosed
	}
	return nil
}

func (p *Pebble) exit() { p.life.RUnlock() }

type pebbleWrite = write[*pebble.Batch]

var (
	_ launch.Store     = (*Pebble)(nil)
	_ CommitObservable = (*Pebble)(nil)
)

const (
	// pebbleMemTableSize is the size a memtable grows to.
	pebbleMemTableSize = 32 << 20
	// pebbleMemTables is how many memtables pebble keeps (the one written
	// and those waiting for their flush) before it stalls writes.
	pebbleMemTables = 2
	// pebbleBlockCache is what the block cache holds for blocks while
	// pebbleMemTables full memtables are charged to it.
	pebbleBlockCache = 16 << 20
	// pebbleCacheSize is the block cache's size: the memtables it is
	// charged for, plus pebbleBlockCache.
	pebbleCacheSize = pebbleMemTables*pebbleMemTableSize + pebbleBlockCache
	// pebbleSeparateValues is the size from which a stored webhook body
	// or run record goes to a blob file (pebble's own benchmark tool uses
	// the same).
	pebbleSeparateValues = 512
)

// pebbleOptions tunes pebble for this store's writes: every accepted
// request commits a new run, payload and queue entry and looks up keys that
// mostly do not exist yet (a new run id, a new delivery key).
//   - Bloom filters on every level answer such a lookup from memory instead
//     of reading an index and data block of each table (20% of the full
//     trigger's CPU without them; bench/README.md).
//   - A 32 MiB memtable (pebble's default is 4 MiB) holds about 15,000
//     accepted 1 KiB requests (with their 1 KiB run records) before a
//     flush, so a burst is not turned into a stream of small flushes and
//     compactions.
//   - The block cache is sized above the memtables: pebble charges every
//     live memtable to it (Cache.Reserve), and a cache no larger than them
//     keeps no block at all. With pebble's default 8 MiB beside two 32 MiB
//     memtables every lookup read its table's index and filter blocks
//     from the file again (README.md, "The durable write path").
//   - Webhook bodies (pPayloads) and run records (pRuns) of at least
//     pebbleSeparateValues bytes are written to blob files when a memtable
//     is flushed, and compactions carry references to them instead of
//     rewriting them: a value is written to the log and once more at its
//     flush, and copied again only when a table would point into more
//     than MaxBlobReferenceDepth blob files or its blob file is mostly
//     garbage (README.md, "The durable write path"). A run is read from a
//     blob file only when it is read after its memtable's flush (a launch
//     that waited out a Valohai outage, the trigger log, run-info), so the
//     second read costs little; the accept path's lookups (queue, delivery
//     keys, counters) stay in their tables, where a lookup finds them
//     without one. Pebble needs its columnar table format for this; a
//     store written at an older format is moved up to
//     FormatValueSeparation when it opens.
func pebbleOptions() *pebble.Options {
	o := pebbleInlineOptions()
	o.FormatMajorVersion = pebble.FormatValueSeparation
	o.Experimental.EnableColumnarBlocks = func() bool { return true }
	o.Experimental.SpanPolicyFunc = pebbleSpanPolicy
	o.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy {
		return pebble.ValueSeparationPolicy{
			Enabled:     true,
			MinimumSize: pebbleSeparateValues,
			// How many blob files one table may point into before a
			// compaction copies the values into a new one (pebble's own
			// benchmark tool uses 10).
			MaxBlobReferenceDepth: 10,
			// Bodies are deleted when their payload_ttl or their run's
			// retention ends, and a run's record is written anew at each
			// step of its launch; a blob file whose values are mostly
			// gone is rewritten, not kept whole for the few still
			// referenced.
			RewriteMinimumAge:  5 * time.Minute,
			TargetGarbageRatio: 0.2,
		}
	}
	return o
}

// pebbleSeparable are the key prefixes whose values may go to blob files,
// in ascending order: the bodies and the run records, each about as large
// as the webhook (pebbleOptions).
var pebbleSeparable = []byte{pPayloads, pRuns}

// pebbleSpanPolicy lets values be separated in the key ranges of
// pebbleSeparable only; every other range keeps its values in its tables.
var pebbleSpanPolicy = separateOnly(pebbleSeparable)

// separateOnly is a span policy that lets values be separated in the key
// ranges of prefixes (ascending) and keeps them inline everywhere else.
func separateOnly(prefixes []byte) func(start []byte) (pebble.SpanPolicy, []byte, error) {
	inline := pebble.SpanPolicy{ValueStoragePolicy: pebble.ValueStorageLowReadLatency}
	return func(start []byte) (pebble.SpanPolicy, []byte, error) {
		if len(start) == 0 {
			return inline, prefixes[:1], nil
		}
		for _, prefix := range prefixes {
			switch {
			case start[0] < prefix:
				return inline, []byte{prefix}, nil
			case start[0] == prefix:
				return pebble.SpanPolicy{}, []byte{prefix + 1}, nil
			}
		}
		return inline, nil, nil
	}
}

// pebbleInlineOptions are pebbleOptions with every value kept in its table
// (pebble's default), as stores were written before value separation: the
// baseline of BenchmarkPebbleValueSeparation and the store an upgrade
// opens in TestPebbleOpensStoreWithValuesInline.
func pebbleInlineOptions() *pebble.Options {
	o := &pebble.Options{
		Logger:                      pebbleLogger{},
		FS:                          privateFS{vfs.Default},
		MemTableSize:                pebbleMemTableSize,
		MemTableStopWritesThreshold: pebbleMemTables,
		CacheSize:                   pebbleCacheSize,
	}
	for i := range o.Levels {
		o.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	return o
}

// OpenPebble opens (creating if needed) the pebble store in dir.
func OpenPebble(dir string, opts BoltOptions) (*Pebble, error) {
	return openPebble(dir, opts, pebbleOptions)
}

// openPebble is OpenPebble with pebble's options from options.
func openPebble(dir string, opts BoltOptions, options func() *pebble.Options) (*Pebble, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: creating %s: %w", dir, err)
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	var db *pebble.DB
	var err error
	for deadline := time.Now().Add(timeout); ; {
		db, err = pebble.Open(dir, options())
		if err == nil {
			break
		}
		// Another process holds the directory (an overlapping restart):
		// wait for it as OpenBolt waits for bbolt's file lock.
		if !isLocked(err) {
			return nil, fmt.Errorf("store: opening %s: %w", dir, err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("store: %s is locked by another process (is another Caddy using the same store?); gave up after %s: %w", dir, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p := &Pebble{db: db, quota: newQuotaTable(), now: opts.Now, maxRejections: DefaultMaxRejections,
		stopFlush: make(chan struct{}), flushDone: make(chan struct{})}
	p.gc = &groupCommit[*pebble.Batch]{update: func(apply func(*pebble.Batch) error) (func() error, error) {
		b := db.NewIndexedBatch()
		if err := apply(b); err != nil {
			return nil, errors.Join(err, b.Close())
		}
		if b.Empty() {
			return nil, b.Close()
		}
		// Applied to the memtable and visible when ApplyNoSyncWait
		// returns, as with Commit, which also makes a batch visible
		// before its log record is synced; durable after SyncWait.
		if err := db.ApplyNoSyncWait(b, pebble.Sync); err != nil {
			return nil, errors.Join(err, b.Close())
		}
		return func() error { return errors.Join(b.SyncWait(), b.Close()) }, nil
	}}
	if p.now == nil {
		p.now = time.Now
	}
	if opts.MaxRejections > 0 {
		p.maxRejections = uint64(opts.MaxRejections)
	}
	now := stamp(p.now())
	p.quota.latest = now
	err = p.scan(p.db, pQuota, nil, func(k, v []byte) bool {
		if len(k) >= 16 && len(v) == 8 && binary.BigEndian.Uint64(k) > now {
			p.quota.load(string(k), binary.BigEndian.Uint64(v))
		}
		return true
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	go flushEvery(opts.QuotaFlush, p.stopFlush, p.flushDone, p.FlushQuotas)
	return p, nil
}

// privateFS creates pebble's files readable by their owner only, as the
// bbolt file is: they hold webhook bodies and the payload-URL signing key.
type privateFS struct{ vfs.FS }

// Create creates name with mode 0600. The tables a flush or compaction
// writes get a file that yields the processor as it writes (yieldingFile).
func (f privateFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	file, err := f.FS.Create(name, category)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(name, 0o600); err != nil {
		_ = file.Close()
		return nil, err
	}
	if background(category) {
		return &yieldingFile{File: file, since: time.Now()}, nil
	}
	return file, nil
}

// background reports whether pebble writes files of category from its
// background work (memtable flushes, compactions), not from a commit.
func background(category vfs.DiskWriteCategory) bool {
	switch category {
	case "pebble-memtable-flush", "pebble-compaction", "pebble-blob-file-rewrite":
		return true
	}
	return false
}

// yieldTimeSlice is the longest a flush or compaction runs between
// yields of the processor (yieldingFile).
const yieldTimeSlice = 500 * time.Microsecond

// yieldProcessor is runtime.Gosched (a variable for the tests).
var yieldProcessor = runtime.Gosched

// yieldingFile is a table written by a flush or a compaction. Its Write
// (every 4 KiB of table, through pebble's buffered writer) yields the
// processor to runnable goroutines once yieldTimeSlice has passed since
// the last yield. A flush or compaction is CPU work of up to seconds on
// one goroutine; left alone, Go's scheduler lets it run for a 10 ms time
// slice before preempting it, and with GOMAXPROCS 1 every request waits
// out those slices: the pinned p99 of the full trigger was ~50 ms
// (bench/README.md, "Embedded engines and the durable write path"). The
// work still gets its turn after every round of runnable goroutines, so
// compactions keep pace.
type yieldingFile struct {
	vfs.File
	since time.Time
}

// Write writes p, then yields the processor if the time slice is spent.
func (f *yieldingFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	if now := time.Now(); now.Sub(f.since) >= yieldTimeSlice {
		yieldProcessor()
		f.since = time.Now()
	}
	return n, err
}

// OpenReadWrite opens (creating if needed) name with mode 0600.
func (f privateFS) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	file, err := f.FS.OpenReadWrite(name, category, opts...)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(name, 0o600); err != nil {
		_ = file.Close()
		return nil, err
	}
	return file, nil
}

// Lock locks name, created with mode 0600 (it holds nothing, but nothing
// in the store directory is left readable by others).
func (f privateFS) Lock(name string) (io.Closer, error) {
	l, err := f.FS.Lock(name)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(name, 0o600); err != nil {
		_ = l.Close()
		return nil, err
	}
	return l, nil
}

// isLocked reports whether pebble could not lock its directory.
func isLocked(err error) bool {
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK) || strings.Contains(err.Error(), "resource temporarily unavailable") || strings.Contains(err.Error(), "lock held by")
}

// ObserveCommits makes f hear of every later durable commit (nil: none).
// A store shared across config reloads reports to the newest app's f.
func (p *Pebble) ObserveCommits(f CommitObserver) { p.gc.setObserver(f) }

// Close writes the quota counters and closes the directory.
func (p *Pebble) Close() error {
	p.closeOnce.Do(func() {
		close(p.stopFlush)
		<-p.flushDone
		err := p.FlushQuotas()
		p.life.Lock()
		defer p.life.Unlock()
		p.closed = true
		p.closeErr = errors.Join(err, p.db.Close())
	})
	return p.closeErr
}

func pk(prefix byte, parts ...[]byte) []byte {
	n := 1
	for _, b := range parts {
		n += len(b)
	}
	k := make([]byte, 1, n)
	k[0] = prefix
	for _, b := range parts {
		k = append(k, b...)
	}
	return k
}

// get returns a copy of the value of k, nil when absent.
func pget(r pebble.Reader, k []byte) ([]byte, error) {
	v, c, err := r.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := bytes.Clone(v)
	if out == nil {
		out = []byte{}
	}
	return out, c.Close()
}

// scan calls fn for the keys of prefix (without it) from start on, in
// order (reverse: from the end), until fn returns false.
func (p *Pebble) scanDir(r pebble.Reader, prefix byte, start []byte, reverse bool, fn func(k, v []byte) bool) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte{prefix}, UpperBound: []byte{prefix + 1}})
	if err != nil {
		return err
	}
	var ok bool
	switch {
	case reverse:
		ok = it.Last()
	case start != nil:
		ok = it.SeekGE(pk(prefix, start))
	default:
		ok = it.First()
	}
	for ; ok; ok = step(it, reverse) {
		if !fn(it.Key()[1:], it.Value()) {
			break
		}
	}
	return errors.Join(it.Error(), it.Close())
}

func step(it *pebble.Iterator, reverse bool) bool {
	if reverse {
		return it.Prev()
	}
	return it.Next()
}

func (p *Pebble) scan(r pebble.Reader, prefix byte, start []byte, fn func(k, v []byte) bool) error {
	return p.scanDir(r, prefix, start, false, fn)
}

// CreateRun is Bolt.CreateRun on pebble.
func (p *Pebble) CreateRun(ctx context.Context, run *launch.Run, payload *launch.Payload, claims ...launch.Claim) error {
	if err := p.enter(ctx); err != nil {
		return err
	}
	defer p.exit()
	id, data, pdata, keys, _, err := prepareCreate(run, payload, claims)
	if err != nil {
		return err
	}
	var denied *launch.ClaimDenied
	err = p.gc.do(func(b *pebble.Batch, w *pebbleWrite) error {
		denied = nil
		if exists, err := p.runExists(b, id); err != nil || exists {
			if err != nil {
				return err
			}
			return fmt.Errorf("store: run %q already exists", run.ID)
		}
		var taken []string
		var err error
		// The delivery keys' records as judge read them, so that writing
		// a key does not look it up a second time (each lookup of a new
		// key is a probe of every level).
		var read []heldRecord
		denied, taken, err = p.quota.judge(keys, func(k []byte) ([]byte, error) {
			v, err := pget(b, pk(pDedupe, k))
			read = append(read, heldRecord{key: k, value: v})
			return v, err
		})
		if err != nil || denied != nil {
			return err
		}
		w.onRollback(func() { p.quota.giveAll(taken) })
		for _, c := range keys {
			if c.quota {
				n, _ := p.quota.count(c.key)
				if err := b.Set(pk(pQuota, c.key), binary.BigEndian.AppendUint64(nil, n), nil); err != nil {
					return err
				}
				continue
			}
			old, ok := takeHeld(&read, c.key)
			if !ok {
				if old, err = pget(b, pk(pDedupe, c.key)); err != nil {
					return err
				}
			}
			if err := p.putKey(b, c.key, old, c.expire, run.ID); err != nil {
				return err
			}
		}
		if err := b.Set(pk(pRuns, id), data, nil); err != nil {
			return err
		}
		if p.free.holds(id) {
			// The gap now ends at id (kept so if the batch is rolled
			// back: a smaller gap is still true).
			p.free.lo = id
		}
		if err := b.Set(pk(pRunsByTime, stampKey(stamp(run.CreatedAt), run.ID)), nil, nil); err != nil {
			return err
		}
		// A run that does not exist has no payload and no queue entry to
		// replace: written without reading (a read through an indexed
		// batch costs more than the write).
		if pdata != nil {
			if err := b.Set(pk(pPayloads, id), pdata, nil); err != nil {
				return err
			}
			if exp := binary.BigEndian.Uint64(pdata); exp != 0 {
				if err := b.Set(pk(pPayloadExp, stampKey(exp, run.ID)), nil, nil); err != nil {
					return err
				}
			}
		}
		due := stamp(run.NextAttemptAt)
		if err := b.Set(pk(pQueue, stampKey(due, run.ID)), nil, nil); err != nil {
			return err
		}
		return b.Set(pk(pQueueByRun, id), binary.BigEndian.AppendUint64(nil, due), nil)
	})
	if err != nil {
		return err
	}
	if denied != nil {
		return denied
	}
	return nil
}

// runExists reports whether a run with id is stored (or written earlier in
// batch b). An id in the known gap is not; an id at or past the gap's end
// is looked up with one seek, which also finds the next stored id, and so
// the gap after id; an id before the gap is looked up alone.
func (p *Pebble) runExists(b *pebble.Batch, id []byte) (bool, error) {
	if p.free.holds(id) {
		return false, nil
	}
	if p.free.known && bytes.Compare(id, p.free.lo) <= 0 {
		v, err := pget(b, pk(pRuns, id))
		return v != nil, err
	}
	it, err := b.NewIter(&pebble.IterOptions{LowerBound: pk(pRuns, id), UpperBound: []byte{pRuns + 1}})
	if err != nil {
		return false, err
	}
	var exists bool
	var next []byte
	if it.First() {
		k := it.Key()[1:]
		exists = bytes.Equal(k, id)
		next = bytes.Clone(k)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return false, err
	}
	if !exists {
		p.free = idGap{known: true, lo: bytes.Clone(id), hi: next}
	}
	return exists, nil
}

// heldRecord is a delivery key's record as read in a batch (nil: absent).
type heldRecord struct{ key, value []byte }

// takeHeld returns the record of key read earlier in this write, if it is
// still current, and forgets every read of key: once the key is written, a
// later claim of the same key in the same write reads it again.
func takeHeld(read *[]heldRecord, key []byte) (value []byte, ok bool) {
	kept := (*read)[:0]
	for _, r := range *read {
		if bytes.Equal(r.key, key) {
			if !ok {
				value, ok = r.value, true
			}
			continue
		}
		kept = append(kept, r)
	}
	*read = kept
	return value, ok
}

// putKey holds key until expire for value, replacing old, its current
// record (nil when there is none).
func (p *Pebble) putKey(b *pebble.Batch, key, old []byte, expire uint64, value string) error {
	if old != nil {
		if err := b.Delete(pk(pDedupeExp, stampKey(binary.BigEndian.Uint64(old), string(key))), nil); err != nil {
			return err
		}
	}
	if err := b.Set(pk(pDedupe, key), append(binary.BigEndian.AppendUint64(nil, expire), value...), nil); err != nil {
		return err
	}
	return b.Set(pk(pDedupeExp, stampKey(expire, string(key))), nil, nil)
}

func (p *Pebble) enqueue(b *pebble.Batch, id string, due uint64) error {
	if err := p.dequeue(b, id); err != nil {
		return err
	}
	if err := b.Set(pk(pQueue, stampKey(due, id)), nil, nil); err != nil {
		return err
	}
	return b.Set(pk(pQueueByRun, []byte(id)), binary.BigEndian.AppendUint64(nil, due), nil)
}

func (p *Pebble) dequeue(b *pebble.Batch, id string) error {
	v, err := pget(b, pk(pQueueByRun, []byte(id)))
	if err != nil || v == nil {
		return err
	}
	if err := b.Delete(pk(pQueue, stampKey(binary.BigEndian.Uint64(v), id)), nil); err != nil {
		return err
	}
	return b.Delete(pk(pQueueByRun, []byte(id)), nil)
}

func (p *Pebble) putPayload(b *pebble.Batch, id string, data []byte) error {
	if err := p.deletePayload(b, id); err != nil {
		return err
	}
	if err := b.Set(pk(pPayloads, []byte(id)), data, nil); err != nil {
		return err
	}
	if exp := binary.BigEndian.Uint64(data); exp != 0 {
		return b.Set(pk(pPayloadExp, stampKey(exp, id)), nil, nil)
	}
	return nil
}

func (p *Pebble) deletePayload(b *pebble.Batch, id string) error {
	data, err := pget(b, pk(pPayloads, []byte(id)))
	if err != nil || data == nil {
		return err
	}
	if exp := binary.BigEndian.Uint64(data); exp != 0 {
		if err := b.Delete(pk(pPayloadExp, stampKey(exp, id)), nil); err != nil {
			return err
		}
	}
	return b.Delete(pk(pPayloads, []byte(id)), nil)
}

// UpdateRun replaces a stored run.
func (p *Pebble) UpdateRun(ctx context.Context, run *launch.Run) error {
	if err := p.enter(ctx); err != nil {
		return err
	}
	defer p.exit()
	if run == nil {
		return errors.New("store: UpdateRun needs a run")
	}
	data, err := launch.MarshalRun(run)
	if err != nil {
		return fmt.Errorf("store: encoding run %q: %w", run.ID, err)
	}
	id := []byte(run.ID)
	return p.gc.do(func(b *pebble.Batch, _ *pebbleWrite) error {
		old, err := pget(b, pk(pRuns, id))
		if err != nil {
			return err
		}
		if old == nil {
			return fmt.Errorf("store: run %q: %w", run.ID, launch.ErrNotFound)
		}
		was, err := createdStamp(run.ID, old)
		if err != nil {
			return err
		}
		if is := stamp(run.CreatedAt); was != is {
			if err := b.Delete(pk(pRunsByTime, stampKey(was, run.ID)), nil); err != nil {
				return err
			}
			if err := b.Set(pk(pRunsByTime, stampKey(is, run.ID)), nil, nil); err != nil {
				return err
			}
		}
		return b.Set(pk(pRuns, id), data, nil)
	})
}

// GetRun returns a run or an error wrapping launch.ErrNotFound.
func (p *Pebble) GetRun(ctx context.Context, id string) (*launch.Run, error) {
	if err := p.enter(ctx); err != nil {
		return nil, err
	}
	defer p.exit()
	data, err := p.getStored(pRuns, "run", id)
	if err != nil {
		return nil, err
	}
	return decodeRun(id, data)
}

// getStored returns the record of id under prefix, or an error wrapping
// launch.ErrNotFound that names it as a kind ("run", "payload").
func (p *Pebble) getStored(prefix byte, kind, id string) ([]byte, error) {
	data, err := pget(p.db, pk(prefix, []byte(id)))
	if err != nil {
		return nil, err
	}
	if data == nil {
		return nil, fmt.Errorf("store: %s %q: %w", kind, id, launch.ErrNotFound)
	}
	return data, nil
}

// ListRuns returns the runs matching f, newest first.
func (p *Pebble) ListRuns(ctx context.Context, f launch.RunFilter) ([]*launch.Run, error) {
	if err := p.enter(ctx); err != nil {
		return nil, err
	}
	defer p.exit()
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	var out []*launch.Run
	var ierr error
	err := p.scanDir(p.db, pRunsByTime, nil, true, func(k, _ []byte) bool {
		id := string(k[8:])
		data, err := pget(p.db, pk(pRuns, k[8:]))
		if err != nil {
			ierr = err
			return false
		}
		if data == nil {
			return true
		}
		run, err := decodeRun(id, data)
		if err != nil {
			ierr = err
			return false
		}
		if (f.Trigger == "" || run.Trigger == f.Trigger) && (f.Path == "" || run.Path == f.Path) && (f.Status == "" || run.Status == f.Status) {
			out = append(out, run)
		}
		return len(out) < limit
	})
	return out, errors.Join(err, ierr)
}

// DeleteRunsBefore removes final runs created before t and expired payloads.
func (p *Pebble) DeleteRunsBefore(ctx context.Context, t time.Time) (int, error) {
	if err := p.enter(ctx); err != nil {
		return 0, err
	}
	defer p.exit()
	cut, now := stamp(t), stamp(p.now())
	var n int
	err := p.gc.do(func(b *pebble.Batch, _ *pebbleWrite) error {
		n = 0
		var doomed [][]byte
		var ierr error
		err := p.scan(b, pRunsByTime, nil, func(k, _ []byte) bool {
			if binary.BigEndian.Uint64(k) >= cut {
				return false
			}
			data, err := pget(b, pk(pRuns, k[8:]))
			if err != nil {
				ierr = err
				return false
			}
			if data != nil {
				var r struct {
					Status launch.RunStatus `json:"status"`
				}
				if err := json.Unmarshal(data, &r); err != nil {
					ierr = fmt.Errorf("store: decoding run %q: %w", k[8:], err)
					return false
				}
				if !r.Status.Final() {
					return true
				}
				n++
			}
			doomed = append(doomed, bytes.Clone(k))
			return true
		})
		if err = errors.Join(err, ierr); err != nil {
			return err
		}
		for _, k := range doomed {
			id := string(k[8:])
			if err := errors.Join(b.Delete(pk(pRuns, k[8:]), nil), b.Delete(pk(pRunsByTime, k), nil),
				p.deletePayload(b, id), p.dequeue(b, id)); err != nil {
				return err
			}
		}
		var expired []string
		err = p.scan(b, pPayloadExp, nil, func(k, _ []byte) bool {
			if binary.BigEndian.Uint64(k) > now {
				return false
			}
			expired = append(expired, string(k[8:]))
			return true
		})
		if err != nil {
			return err
		}
		for _, id := range expired {
			if err := p.deletePayload(b, id); err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}

// GetPayload returns the stored payload of a run.
func (p *Pebble) GetPayload(ctx context.Context, runID string) (*launch.Payload, error) {
	if err := p.enter(ctx); err != nil {
		return nil, err
	}
	defer p.exit()
	data, err := p.getStored(pPayloads, "payload", runID)
	if err != nil {
		return nil, err
	}
	pl, err := decodePayload(data)
	if err != nil {
		return nil, fmt.Errorf("store: payload %q: %w", runID, err)
	}
	if !pl.ExpiresAt.IsZero() && !p.now().Before(pl.ExpiresAt) {
		return nil, fmt.Errorf("store: payload %q expired: %w", runID, launch.ErrNotFound)
	}
	return pl, nil
}

// firstDue is the first queue entry due at or before at.
func (p *Pebble) firstDue(r pebble.Reader, at uint64) (string, error) {
	var id string
	err := p.scan(r, pQueue, nil, func(k, _ []byte) bool {
		if binary.BigEndian.Uint64(k) <= at {
			id = string(k[8:])
		}
		return false
	})
	return id, err
}

// ClaimRun leases the first run due at now.
func (p *Pebble) ClaimRun(ctx context.Context, now time.Time, lease time.Duration) (string, bool, error) {
	if err := p.enter(ctx); err != nil {
		return "", false, err
	}
	defer p.exit()
	if lease <= 0 {
		return "", false, errors.New("store: ClaimRun needs a positive lease")
	}
	at := stamp(now)
	if id, err := p.firstDue(p.db, at); err != nil || id == "" {
		return "", false, err
	}
	var id string
	err := p.gc.do(func(b *pebble.Batch, _ *pebbleWrite) error {
		var err error
		if id, err = p.firstDue(b, at); err != nil || id == "" {
			return err
		}
		return p.enqueue(b, id, stamp(now.Add(lease)))
	})
	if err != nil {
		return "", false, err
	}
	return id, id != "", nil
}

// RequeueRun puts a run on the queue due at the given time.
func (p *Pebble) RequeueRun(ctx context.Context, runID string, at time.Time) error {
	if err := p.enter(ctx); err != nil {
		return err
	}
	defer p.exit()
	return p.gc.do(func(b *pebble.Batch, _ *pebbleWrite) error {
		if v, err := pget(b, pk(pRuns, []byte(runID))); err != nil || v == nil {
			if err != nil {
				return err
			}
			return fmt.Errorf("store: run %q: %w", runID, launch.ErrNotFound)
		}
		return p.enqueue(b, runID, stamp(at))
	})
}

// ReleaseLeases makes every queued run due no later than now.
func (p *Pebble) ReleaseLeases(now time.Time) (int, error) {
	if err := p.enter(context.Background()); err != nil {
		return 0, err
	}
	defer p.exit()
	at := stamp(now)
	var moved int
	err := p.gc.do(func(b *pebble.Batch, _ *pebbleWrite) error {
		var ids []string
		err := p.scan(b, pQueueByRun, nil, func(k, v []byte) bool {
			if binary.BigEndian.Uint64(v) > at {
				ids = append(ids, string(k))
			}
			return true
		})
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := p.enqueue(b, id, at); err != nil {
				return err
			}
		}
		moved = len(ids)
		return nil
	})
	return moved, err
}

// CompleteRun removes a run from the queue.
func (p *Pebble) CompleteRun(ctx context.Context, runID string) error {
	if err := p.enter(ctx); err != nil {
		return err
	}
	defer p.exit()
	return p.gc.do(func(b *pebble.Batch, _ *pebbleWrite) error { return p.dequeue(b, runID) })
}

// QueueDepth counts queued runs.
func (p *Pebble) QueueDepth(ctx context.Context) (int, error) {
	if err := p.enter(ctx); err != nil {
		return 0, err
	}
	defer p.exit()
	n := 0
	err := p.scan(p.db, pQueueByRun, nil, func(_, _ []byte) bool { n++; return true })
	return n, err
}

// TakeQuota is Bolt.TakeQuota: exact in memory, flushed in batches.
func (p *Pebble) TakeQuota(ctx context.Context, key string, limit int, period time.Duration, now time.Time) (bool, time.Duration, error) {
	return p.quota.takeAlone(ctx, key, limit, period, now)
}

// FlushQuotas writes the quota counters changed since the last flush and,
// as the periodic housekeeping of this store, deletes the delivery keys
// that expired by the store's clock (writes do not look for them: an
// iterator per request would cost more than the request's own write).
func (p *Pebble) FlushQuotas() error {
	if err := p.enter(context.Background()); err != nil {
		return err
	}
	defer p.exit()
	dirty, expired, _ := p.quota.drain()
	now := stamp(p.now())
	err := p.gc.do(func(b *pebble.Batch, _ *pebbleWrite) error {
		if err := p.pruneKeys(b, now); err != nil {
			return err
		}
		for k, n := range dirty {
			if err := b.Set(pk(pQuota, []byte(k)), binary.BigEndian.AppendUint64(nil, n), nil); err != nil {
				return err
			}
		}
		for _, k := range expired {
			if err := b.Delete(pk(pQuota, []byte(k)), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		p.quota.redirty(dirty)
	}
	return err
}

// RememberKey records value under key until now+window unless held.
func (p *Pebble) RememberKey(ctx context.Context, key, value string, window time.Duration, now time.Time) (string, bool, error) {
	if err := p.enter(ctx); err != nil {
		return "", false, err
	}
	defer p.exit()
	if key == "" || window <= 0 {
		return "", false, errors.New("store: RememberKey needs a key and a positive window")
	}
	k := []byte(boundKey(key))
	at, exp := stamp(now), stamp(now.Add(window))
	var held string
	var first bool
	err := p.gc.do(func(b *pebble.Batch, _ *pebbleWrite) error {
		held, first = "", false
		v, err := pget(b, pk(pDedupe, k))
		if err != nil {
			return err
		}
		if v != nil && binary.BigEndian.Uint64(v) > at {
			held = string(v[8:])
			return nil
		}
		held, first = value, true
		return p.putKey(b, k, v, exp, value)
	})
	return held, first, err
}

// pruneSweep bounds the expired delivery keys one housekeeping pass
// deletes (one a second): far more than senders deliver, few enough to
// keep the pass short.
const pruneSweep = 1 << 14

// pruneKeys deletes up to pruneSweep expired delivery keys.
func (p *Pebble) pruneKeys(b *pebble.Batch, at uint64) error {
	var old [][]byte
	err := p.scan(b, pDedupeExp, nil, func(k, _ []byte) bool {
		if binary.BigEndian.Uint64(k) > at || len(old) >= pruneSweep {
			return false
		}
		old = append(old, bytes.Clone(k))
		return true
	})
	if err != nil {
		return err
	}
	for _, k := range old {
		if err := errors.Join(b.Delete(pk(pDedupeExp, k), nil), b.Delete(pk(pDedupe, k[8:]), nil)); err != nil {
			return err
		}
	}
	return nil
}

// ForgetKey deletes key when it still holds value.
func (p *Pebble) ForgetKey(ctx context.Context, key, value string) error {
	if err := p.enter(ctx); err != nil {
		return err
	}
	defer p.exit()
	k := []byte(boundKey(key))
	return p.gc.do(func(b *pebble.Batch, _ *pebbleWrite) error {
		v, err := pget(b, pk(pDedupe, k))
		if err != nil || v == nil || string(v[8:]) != value {
			return err
		}
		return errors.Join(b.Delete(pk(pDedupeExp, stampKey(binary.BigEndian.Uint64(v), string(k))), nil), b.Delete(pk(pDedupe, k), nil))
	})
}

// LogRejection appends r to the capped rejection log.
func (p *Pebble) LogRejection(ctx context.Context, r launch.Rejected) error {
	if err := p.enter(ctx); err != nil {
		return err
	}
	defer p.exit()
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("store: encoding rejection: %w", err)
	}
	return p.gc.do(func(b *pebble.Batch, _ *pebbleWrite) error {
		v, err := pget(b, []byte{pRejectSeq})
		if err != nil {
			return err
		}
		seq := uint64(1)
		if len(v) == 8 {
			seq = binary.BigEndian.Uint64(v) + 1
		}
		if err := b.Set([]byte{pRejectSeq}, binary.BigEndian.AppendUint64(nil, seq), nil); err != nil {
			return err
		}
		if err := b.Set(pk(pRejections, binary.BigEndian.AppendUint64(nil, seq)), data, nil); err != nil {
			return err
		}
		if seq > p.maxRejections {
			return b.Delete(pk(pRejections, binary.BigEndian.AppendUint64(nil, seq-p.maxRejections)), nil)
		}
		return nil
	})
}

// ListRejections returns rejections newest first.
func (p *Pebble) ListRejections(ctx context.Context, f launch.RunFilter) ([]launch.Rejected, error) {
	if err := p.enter(ctx); err != nil {
		return nil, err
	}
	defer p.exit()
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	var out []launch.Rejected
	var ierr error
	err := p.scanDir(p.db, pRejections, nil, true, func(_, v []byte) bool {
		var r launch.Rejected
		if err := json.Unmarshal(v, &r); err != nil {
			ierr = fmt.Errorf("store: decoding rejection: %w", err)
			return false
		}
		if f.Path == "" || r.Path == f.Path {
			out = append(out, r)
		}
		return len(out) < limit
	})
	return out, errors.Join(err, ierr)
}

// Secret returns the named secret, generating and storing it the first time.
func (p *Pebble) Secret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error) {
	if err := p.enter(ctx); err != nil {
		return nil, err
	}
	defer p.exit()
	if name == "" {
		return nil, errors.New("store: Secret needs a name")
	}
	key := pk(pSecrets, []byte(name))
	if v, err := pget(p.db, key); err != nil || v != nil {
		return v, err
	}
	fresh, err := newSecret(name, gen)
	if err != nil {
		return nil, err
	}
	var secret []byte
	err = p.gc.do(func(b *pebble.Batch, _ *pebbleWrite) error {
		held, err := pget(b, key)
		if err != nil {
			return err
		}
		if held != nil {
			secret = held
			return nil
		}
		secret = bytes.Clone(fresh)
		return b.Set(key, secret, nil)
	})
	if err != nil {
		return nil, err
	}
	return secret, nil
}
