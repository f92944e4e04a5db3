package store

import (
	"encoding/binary"

	bolt "go.etcd.io/bbolt"
)

// BucketLen counts the keys of one of the store's buckets, for tests that
// check housekeeping (caps and pruning) rather than behaviour.
func (b *Bolt) BucketLen(name string) int {
	var n int
	b.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket([]byte(name)).Stats().KeyN
		return nil
	})
	return n
}

// LastTxID is the id of the last committed write transaction: the number
// of commits, hence fsyncs, so far.
func (b *Bolt) LastTxID() int {
	var id int
	b.db.View(func(tx *bolt.Tx) error {
		id = tx.ID()
		return nil
	})
	return id
}

// Commits is how many write transactions the store committed (fsyncs).
func (b *Bolt) Commits() int64 { return b.gc.commits.Load() }

// Commits is how many write batches the store committed (WAL syncs).
func (p *Pebble) Commits() int64 { return p.gc.commits.Load() }

// PageWrites is how many page writes (pwrite calls) the store's
// transactions have made.
func (b *Bolt) PageWrites() int64 {
	st := b.db.Stats()
	return st.TxStats.GetWrite()
}

// LeafFill is the share of the bytes of bucket's leaf pages in use.
func (b *Bolt) LeafFill(bucket string) (fill float64) {
	b.db.View(func(tx *bolt.Tx) error {
		st := tx.Bucket([]byte(bucket)).Stats()
		if st.LeafAlloc > 0 {
			fill = float64(st.LeafInuse) / float64(st.LeafAlloc)
		}
		return nil
	})
	return fill
}

// IndexAsOlderRelease adds the runs_by_time and payload_exp entries that a
// release before self-ordered runs wrote for every run, as if it had
// written run id (which must exist).
func (b *Bolt) IndexAsOlderRelease(id string) error {
	return b.db.Update(func(tx *bolt.Tx) error {
		r, err := decodeRunTimes([]byte(id), tx.Bucket(bucketRuns).Get([]byte(id)))
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketRunsByTime).Put(stampKey(stamp(r.CreatedAt), id), nil); err != nil {
			return err
		}
		if p := tx.Bucket(bucketPayloads).Get([]byte(id)); p != nil {
			return tx.Bucket(bucketPayloadExp).Put(stampKey(binary.BigEndian.Uint64(p), id), nil)
		}
		return nil
	})
}

// PrefixLen counts the keys of one record kind (a key prefix byte) of the
// pebble store.
func (p *Pebble) PrefixLen(prefix byte) int {
	var n int
	p.scan(p.db, prefix, nil, func(_, _ []byte) bool { n++; return true })
	return n
}
