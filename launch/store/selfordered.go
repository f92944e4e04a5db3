package store

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/tidwall/gjson"
	bolt "go.etcd.io/bbolt"

	"github.com/hooklaunch/caddy-valohai/launch"
)

// Self-ordered runs (README.md, "The durable write path"): a run id that is
// a UUIDv7 in its canonical text form starts with the millisecond it was
// made, so the runs bucket, whose keys are ids, already sorts such runs by
// time. A run whose creation time falls in its id's millisecond needs no
// entry in runs_by_time: listing and the retention sweep read it from the
// runs bucket. A payload keyed by a UUIDv7 needs no entry in payload_exp:
// the sweep walks the payloads bucket oldest first. The accept commit then
// rewrites two buckets fewer, each about three pages (its last leaf, a
// branch, its root).
//
// Runs that are not self-ordered (ids that are not UUIDv7, such as the
// UUIDv4 ids of files written before UUIDv7 ids, or a creation time outside
// the id's millisecond) keep their runs_by_time entry as before, and
// listing merges the two orders. Entries that an older release wrote for
// self-ordered runs are harmless: listing and the sweep skip them.

// v7Millis returns the Unix millisecond of a canonical lowercase UUIDv7
// text id ("0190a6f2-8c1e-7abc-9def-0123456789ab": the first 12 hex digits,
// version digit 7, variant 8, 9, a or b), and whether id is one.
func v7Millis(id string) (uint64, bool) {
	if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' ||
		id[14] != '7' || (id[19] != '8' && id[19] != '9' && id[19] != 'a' && id[19] != 'b') {
		return 0, false
	}
	var ms uint64
	for i := range 36 {
		c := id[i]
		var d byte
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			continue
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		default:
			return 0, false
		}
		if i < 13 {
			ms = ms<<4 | uint64(d)
		}
	}
	return ms, true
}

// selfOrdered reports whether the run id created at created is listed from
// the runs bucket rather than runs_by_time: id is a UUIDv7 and created lies
// in its millisecond (as stamp sees it: clamped to 1970–2262).
func selfOrdered(id string, created time.Time) bool {
	ms, ok := v7Millis(id)
	return ok && stamp(created)/uint64(time.Millisecond) == ms
}

// runTimes is the part of a stored run the listing and the sweep judge by.
type runTimes struct {
	CreatedAt time.Time
	Status    launch.RunStatus
}

// decodeRunTimes reads a stored run's creation time and status, which
// come first in its JSON (launch.MarshalRun), without decoding the rest:
// listing judges every run by them before it decodes the ones it returns,
// and the retention sweep needs nothing else.
func decodeRunTimes(id []byte, data []byte) (runTimes, error) {
	var r runTimes
	f := gjson.GetManyBytes(data, "created_at", "status")
	if f[0].Type != gjson.String {
		return r, fmt.Errorf("store: decoding run %q: no created_at", id)
	}
	if err := r.CreatedAt.UnmarshalText([]byte(f[0].Str)); err != nil {
		return r, fmt.Errorf("store: decoding run %q: created_at: %w", id, err)
	}
	r.Status = launch.RunStatus(f[1].Str)
	return r, nil
}

// runsNewestFirst calls yield with every run id and record, newest first
// by creation time to the millisecond (runs created in the same
// millisecond in either order), until yield returns false or an error.
// It merges two streams, each newest first: the self-ordered runs, read
// backwards from the runs bucket, and the runs_by_time index, which holds
// the rest.
func runsNewestFirst(tx *bolt.Tx, yield func(id, data []byte) (bool, error)) error {
	runs := tx.Bucket(bucketRuns)
	// The self-ordered stream. ids that are not UUIDv7 are skipped by key
	// alone; a UUIDv7 run created outside its millisecond is in the index.
	rc := runs.Cursor()
	rk, rv := rc.Last()
	var rms uint64 // the head's millisecond, valid when rk != nil
	nextSelf := func(k, v []byte) error {
		for ; k != nil; k, v = rc.Prev() {
			ms, ok := v7Millis(string(k))
			if !ok {
				continue
			}
			r, err := decodeRunTimes(k, v)
			if err != nil {
				return err
			}
			if stamp(r.CreatedAt)/uint64(time.Millisecond) == ms {
				rk, rv, rms = k, v, ms
				return nil
			}
		}
		rk, rv = nil, nil
		return nil
	}
	// The index stream, skipping entries of runs that are gone or that the
	// other stream lists (written by an older release).
	ic := tx.Bucket(bucketRunsByTime).Cursor()
	ik, _ := ic.Last()
	var iv []byte
	nextIndexed := func(k []byte) error {
		for ; k != nil; k, _ = ic.Prev() {
			data := runs.Get(k[8:])
			if data == nil {
				continue
			}
			if _, ok := v7Millis(string(k[8:])); ok {
				r, err := decodeRunTimes(k[8:], data)
				if err != nil {
					return err
				}
				if selfOrdered(string(k[8:]), r.CreatedAt) {
					continue
				}
			}
			ik, iv = k, data
			return nil
		}
		ik, iv = nil, nil
		return nil
	}
	if err := nextSelf(rk, rv); err != nil {
		return err
	}
	if err := nextIndexed(ik); err != nil {
		return err
	}
	for rk != nil || ik != nil {
		var more bool
		var err error
		if ik == nil || (rk != nil && rms >= binary.BigEndian.Uint64(ik)/uint64(time.Millisecond)) {
			if more, err = yield(rk, rv); err == nil && more {
				k, v := rc.Prev()
				err = nextSelf(k, v)
			}
		} else {
			if more, err = yield(ik[8:], iv); err == nil && more {
				k, _ := ic.Prev()
				err = nextIndexed(k)
			}
		}
		if err != nil || !more {
			return err
		}
	}
	return nil
}
