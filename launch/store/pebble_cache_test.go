package store

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// Pebble charges its memtables to the block cache: once they have grown to
// full size, a cache no larger than them holds no block, and every lookup
// reads its tables' index and filter blocks from the file again. The
// store's cache leaves room for blocks beside full memtables (README.md,
// "The durable write path").
func TestPebbleBlockCacheKeepsBlocksBesideFullMemtables(t *testing.T) {
	p, err := OpenPebble(filepath.Join(t.TempDir(), "pebble"), BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// Memtables start small and double up to their full size: write enough
	// for several full ones, so that tables are flushed and the memtables
	// charged to the cache are full-sized.
	value := make([]byte, 256<<10)
	for i := range 4 * pebbleMemTables * pebbleMemTableSize / len(value) {
		if err := p.db.Set(fmt.Appendf(nil, "zfill-%06d", i), value, pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.db.Flush(); err != nil {
		t.Fatal(err)
	}
	if m := p.db.Metrics(); m.Flush.Count == 0 || m.MemTable.Size < pebbleMemTableSize {
		t.Fatalf("setup: %d flushes, memtables %d bytes; want flushed tables and a full-sized memtable", m.Flush.Count, m.MemTable.Size)
	}
	before := p.db.Metrics().BlockCache
	for range 20 {
		// A key no table holds, looked up as a new delivery key is.
		if v, err := pget(p.db, []byte("zfill-000100-absent")); err != nil || v != nil {
			t.Fatalf("lookup of an absent key = %q, %v", v, err)
		}
	}
	after := p.db.Metrics().BlockCache
	if after.Hits-before.Hits == 0 || after.Count == 0 {
		t.Fatalf("20 lookups of the same key: %d block cache hits, %d blocks cached (%d misses); want the blocks read once and cached",
			after.Hits-before.Hits, after.Count, after.Misses-before.Misses)
	}
}
