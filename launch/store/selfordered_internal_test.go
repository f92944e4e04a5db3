package store

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hooklaunch/caddy-valohai/launch"
)

// FuzzV7Millis: v7Millis accepts exactly the canonical lowercase text of a
// UUIDv7 (RFC 9562 variant) and returns the millisecond the UUID holds, as
// google/uuid reads it. go test -fuzz FuzzV7Millis ./launch/store
func FuzzV7Millis(f *testing.F) {
	for _, s := range []string{
		uuid.Must(uuid.NewV7()).String(),
		strings.ToUpper(uuid.Must(uuid.NewV7()).String()),
		uuid.NewString(), // v4
		"0190a6f2-8c1e-7abc-9def-0123456789ab",
		"0190a6f2-8c1e-7abc-cdef-0123456789ab", // variant 110
		"0190a6f28c1e7abc9def0123456789ab",
		"legacy-1", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ms, ok := v7Millis(s)
		u, err := uuid.Parse(s)
		want := err == nil && u.String() == s && u.Version() == 7 && u.Variant() == uuid.RFC4122
		if ok != want {
			t.Fatalf("v7Millis(%q) ok = %v, want %v (uuid.Parse: %v)", s, ok, want, err)
		}
		if !ok {
			return
		}
		var wantMs uint64
		for i := range 6 {
			wantMs = wantMs<<8 | uint64(u[i])
		}
		if ms != wantMs {
			t.Fatalf("v7Millis(%q) = %d, want %d", s, ms, wantMs)
		}
	})
}

// decodeRunTimes reads what encoding/json would read from a stored run
// (either encoder's output), and refuses a record without a creation time.
func TestDecodeRunTimes(t *testing.T) {
	at := time.Date(2026, 12, 7, 13, 45, 1, 123456789, time.FixedZone("x", 3600))
	run := &launch.Run{ID: "r", Trigger: "t", CreatedAt: at, UpdatedAt: at, Status: launch.StatusCompleted,
		Actions: []launch.Action{{Kind: launch.ActionRunExecution, Body: []byte(`{"created_at":"1999-01-01T00:00:00Z","status":"x"}`)}}}
	fast, err := launch.MarshalRun(run)
	if err != nil {
		t.Fatal(err)
	}
	slow, err := json.Marshal(run)
	if err != nil {
		t.Fatal(err)
	}
	for _, data := range [][]byte{fast, slow} {
		r, err := decodeRunTimes([]byte("r"), data)
		if err != nil || !r.CreatedAt.Equal(at) || r.Status != launch.StatusCompleted {
			t.Fatalf("decodeRunTimes(%s) = %+v, %v", data, r, err)
		}
	}
	for _, bad := range []string{`{"id":"r"}`, `{"created_at":12}`, `{"created_at":"yesterday"}`, `not json`} {
		if _, err := decodeRunTimes([]byte("r"), []byte(bad)); err == nil {
			t.Errorf("decodeRunTimes(%s) succeeded", bad)
		}
	}
}

// TestEncodePayloadInPlace: a payload read with room before its body is
// laid out in that room, sharing the body's memory (no copy of the body),
// and decodes as the copying layout does; without the room it is copied.
func TestEncodePayloadInPlace(t *testing.T) {
	const ct = "application/json"
	body := []byte(`{"ref":"refs/heads/main"}`)
	exp := time.Unix(1800000000, 5).UTC()
	copied := encodePayload(&launch.Payload{Body: body, ContentType: ct, ExpiresAt: exp})

	for _, room := range []int{12 + len(ct), 100} {
		framed := append(make([]byte, room, room+len(body)), body...)
		p := &launch.Payload{Body: framed[room:], Framed: framed, ContentType: ct, ExpiresAt: exp}
		rec := encodePayload(p)
		if !bytes.Equal(rec, copied) {
			t.Fatalf("room %d: record %q, the copying layout %q", room, rec, copied)
		}
		if &rec[len(rec)-len(body)] != &p.Body[0] {
			t.Fatalf("room %d: the body was copied", room)
		}
	}
	short := append(make([]byte, 11+len(ct), 11+len(ct)+len(body)), body...)
	p := &launch.Payload{Body: short[11+len(ct):], Framed: short, ContentType: ct, ExpiresAt: exp}
	if rec := encodePayload(p); !bytes.Equal(rec, copied) || &rec[len(rec)-len(body)] == &p.Body[0] {
		t.Fatalf("too little room: record %q, in place %v", rec, &rec[len(rec)-len(body)] == &p.Body[0])
	}
	if got, err := decodePayload(copied); err != nil || !bytes.Equal(got.Body, body) || got.ContentType != ct || !got.ExpiresAt.Equal(exp) {
		t.Fatalf("decoded %+v, %v", got, err)
	}
}
