// Package freeport hands out loopback TCP ports for the servers that the
// tests, bench/run.sh and bench/soak.sh start, stop and start again on the
// same port (bench/README.md, "Method").
//
// A port the kernel picks for a listener on port 0 comes from its ephemeral
// range, the same range every outgoing connection takes its source port
// from. While the server that owns such a port is down (between two
// scenarios, or after a kill -9 before the restart), any client may take it
// as a source port: a connection to another server, or a readiness probe
// to that very port, which the kernel connects to itself when source and
// destination coincide. The restarted server then fails with "address
// already in use". Ports below the ephemeral range are never handed out as
// source ports, so that cannot happen to them.
package freeport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// rangeFile holds the kernel's ephemeral port range on Linux.
const rangeFile = "/proc/sys/net/ipv4/ip_local_port_range"

// Linux's default ephemeral range, used when rangeFile cannot be read.
const defaultLow, defaultHigh = 32768, 60999

// lowest is the lowest port handed out: under it lie the well-known and
// commonly configured service ports.
const lowest = 10000

// minSpan is how many ports a window must offer to be used.
const minSpan = 1000

// Pick returns n distinct ports of 127.0.0.1 that nothing listens on,
// outside the kernel's ephemeral range. The listeners that prove a port
// free are held until all n are found, then closed. If no window of at
// least minSpan ports lies outside the range (a system configured to use
// nearly every port as ephemeral), it falls back to ports the kernel picks.
func Pick(n int) ([]int, error) {
	low, high := ephemeralRange()
	lo, hi := window(low, high)
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for len(ports) < n {
		l, err := listen(lo, hi)
		if err != nil {
			return nil, err
		}
		held = append(held, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// listen listens on a random free port in [lo, hi), or on one the kernel
// picks when the window is empty.
func listen(lo, hi int) (net.Listener, error) {
	if hi-lo < minSpan {
		return net.Listen("tcp", "127.0.0.1:0")
	}
	var last error
	for range 200 {
		p := lo + rand.IntN(hi-lo)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err == nil {
			return l, nil
		}
		last = err
	}
	return nil, fmt.Errorf("freeport: no free port in %d-%d after 200 tries: %w", lo, hi-1, last)
}

// window is the ports [lo, hi) to pick from: under the ephemeral range
// when there is room, else above it, else empty.
func window(low, high int) (lo, hi int) {
	if low-lowest >= minSpan {
		return lowest, low
	}
	if 65536-(high+1) >= minSpan {
		return high + 1, 65536
	}
	return 0, 0
}

// ephemeralRange is the kernel's range of source ports, or Linux's
// default when it cannot be read (another system, or no /proc).
func ephemeralRange() (low, high int) {
	b, err := os.ReadFile(rangeFile)
	if err != nil {
		return defaultLow, defaultHigh
	}
	low, high, err = parseRange(string(b))
	if err != nil {
		return defaultLow, defaultHigh
	}
	return low, high
}

// parseRange reads rangeFile's "low<TAB>high" line.
func parseRange(s string) (low, high int, err error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, 0, errors.New("freeport: want two numbers")
	}
	if low, err = strconv.Atoi(f[0]); err != nil {
		return 0, 0, err
	}
	if high, err = strconv.Atoi(f[1]); err != nil {
		return 0, 0, err
	}
	if low < 1 || high > 65535 || low > high {
		return 0, 0, fmt.Errorf("freeport: bad range %d-%d", low, high)
	}
	return low, high, nil
}
