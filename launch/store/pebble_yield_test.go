package store

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/hooklaunch/caddy-valohai/launch"
)

// A memtable flush writes its table through a yieldingFile, which gives
// the processor up while it writes; the WAL, written on the commit path,
// is a plain file (README.md, "The durable write path").
func TestPebbleFlushYieldsTheProcessor(t *testing.T) {
	var yields atomic.Int64
	defer func(f func()) { yieldProcessor = f }(yieldProcessor)
	yieldProcessor = func() { yields.Add(1) }

	p, err := OpenPebble(filepath.Join(t.TempDir(), "pebble"), BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, now := context.Background(), time.Now()
	body := make([]byte, 1024)
	for i := range 4000 {
		run := &launch.Run{ID: fmt.Sprintf("run-%06d", i), Trigger: "t", Path: "/t", CreatedAt: now, NextAttemptAt: now, Status: launch.StatusPending}
		if err := p.CreateRun(ctx, run, &launch.Payload{Body: body, ContentType: "application/json", ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if yields.Load() != 0 {
		t.Fatalf("%d yields before any flush: commits must not yield", yields.Load())
	}
	if err := p.db.Flush(); err != nil {
		t.Fatal(err)
	}
	if yields.Load() == 0 {
		t.Fatal("flushing ~5 MB of runs never yielded the processor")
	}
	if n := p.db.Metrics().Levels[0].TablesCount; n == 0 {
		t.Fatal("the flush wrote no table")
	}

	dir := t.TempDir()
	for category, want := range map[vfs.DiskWriteCategory]bool{
		"pebble-memtable-flush": true, "pebble-compaction": true,
		"pebble-wal": false, "pebble-manifest": false, vfs.WriteCategoryUnspecified: false,
	} {
		f, err := privateFS{vfs.Default}.Create(filepath.Join(dir, string(category)), category)
		if err != nil {
			t.Fatal(err)
		}
		if _, got := f.(*yieldingFile); got != want {
			t.Errorf("a %s file yields: %v, want %v", category, got, want)
		}
		f.Close()
	}
}
