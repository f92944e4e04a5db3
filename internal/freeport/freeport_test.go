package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestPickIsFreeDistinctAndNeverASourcePort(t *testing.T) {
	low, high := ephemeralRange()
	ports, err := Pick(8)
	if err != nil {
		t.Fatal(err)
	}
	if len(ports) != 8 {
		t.Fatalf("Pick(8) = %v", ports)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] {
			t.Fatalf("port %d handed out twice: %v", p, ports)
		}
		seen[p] = true
		if lo, hi := window(low, high); hi-lo >= minSpan && p >= low && p <= high {
			t.Errorf("port %d is in the ephemeral range %d-%d", p, low, high)
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d is not free after Pick: %v", p, err)
		}
		l.Close()
	}
}

func TestWindowAvoidsTheEphemeralRange(t *testing.T) {
	for _, c := range []struct {
		low, high, lo, hi int
	}{
		{32768, 60999, 10000, 32768}, // Linux's default: below
		{49152, 65535, 10000, 49152}, // the IANA range (macOS, Windows)
		{1024, 60999, 61000, 65536},  // room only above
		{1024, 65000, 0, 0},          // no room: the kernel picks
		{10500, 64999, 0, 0},         // less than minSpan on either side
	} {
		if lo, hi := window(c.low, c.high); lo != c.lo || hi != c.hi {
			t.Errorf("window(%d, %d) = [%d, %d), want [%d, %d)", c.low, c.high, lo, hi, c.lo, c.hi)
		}
	}
}

func TestPickFallsBackToTheKernelWithoutAWindow(t *testing.T) {
	l, err := listen(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if p := l.Addr().(*net.TCPAddr).Port; p == 0 {
		t.Fatal("no port")
	}
}

func TestParseRange(t *testing.T) {
	if low, high, err := parseRange("32768\t60999\n"); err != nil || low != 32768 || high != 60999 {
		t.Fatalf("parseRange = %d, %d, %v", low, high, err)
	}
	for _, bad := range []string{"", "32768", "a b", "1 70000", "0 100", "600 500", "1 2 3"} {
		if _, _, err := parseRange(bad); err == nil {
			t.Errorf("parseRange(%q) accepted", bad)
		}
	}
}
