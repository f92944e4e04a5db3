package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/hooklaunch/caddy-valohai/launch"
)

// The engines of the embedded store (`store file <dir> [<engine>]`).
const (
	// EnginePebble is the default: an LSM whose write-ahead log commits a
	// whole group of concurrent writes with one fsync (README.md, "The durable write path",
	// has the measurement that chose it).
	EnginePebble = "pebble"
	// EngineBolt is bbolt, the embedded store of earlier versions.
	EngineBolt = "bbolt"
)

// File names inside the store directory.
const (
	boltFile    = "valohai.db"          // a bbolt store
	boltMoved   = "valohai.db.migrated" // a bbolt store copied into pebble, kept as a backup
	pebbleDir   = "pebble"              // a pebble store
	pebbleFresh = "pebble.migrating"    // a copy in progress, thrown away if a crash stopped it
)

// Embedded is a launch.Store kept in a local directory by one process.
type Embedded interface {
	launch.Store
	// ReleaseLeases makes every queued run due no later than now: at open,
	// every lease belongs to a process that is gone.
	ReleaseLeases(now time.Time) (int, error)
	// FlushQuotas writes the quota units taken by TakeQuota since the last
	// flush (the store does so every BoltOptions.QuotaFlush and at Close).
	FlushQuotas() error
}

var (
	_ Embedded = (*Bolt)(nil)
	_ Embedded = (*Pebble)(nil)
)

// OpenFile opens the embedded store in dir with engine (EnginePebble when
// empty). A directory holding the bbolt store of an earlier version is
// copied into a new pebble store on first open with EnginePebble (queued
// runs, payloads, quotas, delivery keys, trigger log and signing key), and
// its file is kept as valohai.db.migrated; migrated reports that it was.
func OpenFile(dir, engine string, opts BoltOptions) (s Embedded, migrated bool, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("store: creating %s: %w", dir, err)
	}
	switch engine {
	case EngineBolt:
		b, err := OpenBolt(filepath.Join(dir, boltFile), opts)
		return b, false, err
	case "", EnginePebble:
	default:
		return nil, false, fmt.Errorf("store: unknown engine %q: use %s (the default) or %s", engine, EnginePebble, EngineBolt)
	}
	pdir, bpath := filepath.Join(dir, pebbleDir), filepath.Join(dir, boltFile)
	_, perr := os.Stat(pdir)
	_, berr := os.Stat(bpath)
	switch {
	case perr == nil && berr == nil:
		// A migration finished but was cut off before it put the old
		// file aside: the pebble store is the one in use.
		if err := os.Rename(bpath, filepath.Join(dir, boltMoved)); err != nil {
			return nil, false, fmt.Errorf("store: putting the migrated %s aside: %w", bpath, err)
		}
	case errors.Is(perr, os.ErrNotExist) && berr == nil:
		if err := migrateBolt(dir, opts); err != nil {
			return nil, false, fmt.Errorf("store: copying the bbolt store %s into pebble: %w (the bbolt file is untouched; use `store file %s bbolt` to keep running on it)", bpath, err, dir)
		}
		migrated = true
	}
	p, err := OpenPebble(pdir, opts)
	return p, migrated, err
}

// migrateBolt copies the bbolt store of dir into a fresh pebble store,
// then moves the pebble store into place and the bbolt file aside. A crash
// at any point leaves either the bbolt file alone (the copy starts over) or
// the finished pebble store.
func migrateBolt(dir string, opts BoltOptions) error {
	fresh := filepath.Join(dir, pebbleFresh)
	if err := os.RemoveAll(fresh); err != nil {
		return err
	}
	b, err := OpenBolt(filepath.Join(dir, boltFile), opts)
	if err != nil {
		return err
	}
	defer b.Close()
	p, err := OpenPebble(fresh, opts)
	if err != nil {
		return err
	}
	prefixes := map[string]byte{
		string(bucketRuns): pRuns, string(bucketRunsByTime): pRunsByTime, string(bucketPayloads): pPayloads,
		string(bucketPayloadExp): pPayloadExp, string(bucketQueue): pQueue, string(bucketQueueByRun): pQueueByRun,
		string(bucketQuota): pQuota, string(bucketDedupe): pDedupe, string(bucketDedupeExp): pDedupeExp,
		string(bucketRejections): pRejections, string(bucketSecrets): pSecrets,
	}
	err = b.db.View(func(tx *bolt.Tx) error {
		batch := p.db.NewBatch()
		defer func() { batch.Close() }()
		for name, prefix := range prefixes {
			bk := tx.Bucket([]byte(name))
			if bk == nil {
				continue
			}
			err := bk.ForEach(func(k, v []byte) error {
				if err := batch.Set(pk(prefix, k), v, nil); err != nil {
					return err
				}
				// Pebble indexes every run and payload: add the entries
				// bbolt leaves out for UUIDv7 ids (selfordered.go).
				if extra, err := boltImplicitIndex(name, k, v); err != nil {
					return err
				} else if extra != nil {
					if err := batch.Set(extra, nil, nil); err != nil {
						return err
					}
				}
				if batch.Len() < 4<<20 {
					return nil
				}
				if err := batch.Commit(pebble.NoSync); err != nil {
					return err
				}
				batch.Close()
				batch = p.db.NewBatch()
				return nil
			})
			if err != nil {
				return err
			}
		}
		seq := tx.Bucket(bucketRejections).Sequence()
		if err := batch.Set([]byte{pRejectSeq}, binary.BigEndian.AppendUint64(nil, seq), nil); err != nil {
			return err
		}
		return batch.Commit(pebble.Sync)
	})
	if err = errors.Join(err, p.Close()); err != nil {
		return err
	}
	if err := os.Rename(fresh, filepath.Join(dir, pebbleDir)); err != nil {
		return err
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	if err := b.Close(); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(dir, boltFile), filepath.Join(dir, boltMoved)); err != nil {
		return err
	}
	return syncDir(dir)
}

// boltImplicitIndex returns the pebble index key of a bbolt record that
// bbolt lists or purges without an index entry (a self-ordered run, a
// payload keyed by a UUIDv7), or nil. Writing one that bbolt also had is
// harmless: it is the same key.
func boltImplicitIndex(bucket string, k, v []byte) ([]byte, error) {
	if _, ok := v7Millis(string(k)); !ok {
		return nil, nil
	}
	switch bucket {
	case string(bucketRuns):
		r, err := decodeRunTimes(k, v)
		if err != nil {
			return nil, err
		}
		if selfOrdered(string(k), r.CreatedAt) {
			return pk(pRunsByTime, stampKey(stamp(r.CreatedAt), string(k))), nil
		}
	case string(bucketPayloads):
		if len(v) >= 8 {
			if exp := binary.BigEndian.Uint64(v); exp != 0 {
				return pk(pPayloadExp, stampKey(exp, string(k))), nil
			}
		}
	}
	return nil, nil
}

// syncDir makes the renames in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// pebbleLogger keeps pebble's informational messages out of Caddy's log
// and passes its errors on to the standard logger (which Caddy captures).
type pebbleLogger struct{}

func (pebbleLogger) Infof(string, ...any)              {}
func (pebbleLogger) Errorf(format string, args ...any) { log.Printf("store: pebble: "+format, args...) }
func (pebbleLogger) Fatalf(format string, args ...any) { log.Fatalf("store: pebble: "+format, args...) }
