package store

import (
	"strings"
	"testing"

	"github.com/google/uuid"
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
