package caddymodule

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Limits of body reading (README.md, "Hostile input").
const (
	// defaultMaxBodyInFlight is the app's default budget of body bytes
	// buffered at once, over all requests.
	defaultMaxBodyInFlight = 256 << 20
	// defaultBodyTimeout is how long one body may take to arrive, whatever
	// the server's own timeouts are.
	defaultBodyTimeout = 60 * time.Second
	// firstBodyChunk is the buffer a body starts with; it doubles as
	// bytes arrive, never from the announced Content-Length alone, and
	// never past that length (+1, to see the body end).
	firstBodyChunk = 16 << 10
	// drainMax and drainTime bound what is read and thrown away after a
	// 413, so that a client that writes its whole body before reading the
	// answer (Node's http, Python's http.client) reads the 413 instead of a
	// connection reset.
	drainMax  = 64 << 20
	drainTime = 10 * time.Second
	// budgetRetryAfter is the Retry-After of a 503 for a spent budget.
	budgetRetryAfter = 1
)

var (
	errBodyTooLarge = errors.New("body too large")
	errBodyBudget   = errors.New("body budget spent")
	errBodyTimeout  = errors.New("body timeout")
)

// bodyReader reads request bodies under the app's limits: a budget of
// bytes buffered at once across all requests, and a read deadline per body.
type bodyReader struct {
	budget   int64
	inFlight atomic.Int64
	timeout  time.Duration
}

// reserve takes n bytes of the budget, or reports that it is spent.
func (b *bodyReader) reserve(n int64) bool {
	if b.inFlight.Add(n) > b.budget {
		b.inFlight.Add(-n)
		return false
	}
	return true
}

func (b *bodyReader) release(n int64) { b.inFlight.Add(-n) }

// read reads r's body whole, up to limit bytes. The buffer grows as bytes
// arrive, each growth taken from the budget first; held is what the body
// holds of the budget, which the caller gives back (release) when the
// request ends. The buffer keeps room bytes free before the body: framed
// is the buffer from its start to the body's end (see launch.Payload's
// Framed). Errors are errBodyTooLarge (after draining what the client
// still sends, within bounds), errBodyBudget, errBodyTimeout or the read
// error; nothing is held then.
func (b *bodyReader) read(w http.ResponseWriter, r *http.Request, limit int64, room int) (body, framed []byte, held int64, err error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil, 0, nil
	}
	rc := http.NewResponseController(w)
	if r.ContentLength > limit {
		// Announced too large: refuse before reading a byte of it.
		drainRefused(w, r, rc, true)
		return nil, nil, 0, errBodyTooLarge
	}
	// Its own deadline, whatever the server's timeouts; lifted once the
	// body is in, so it never cuts the answer or a keep-alive short.
	// Setting and lifting a connection's deadline costs a netpoller timer
	// update each, so both are spared where Caddy's idle-timeout reader
	// (the server's read_body_idle, on by default) already does the work:
	//   - when that reader is the body and its own deadline for a read
	//     falls no later than ours would (idle timeout at most
	//     body_timeout, no minimum rate; or an earlier read_body hard
	//     deadline), ours is armed only before a second read: a body that
	//     one read brings whole never needs it;
	//   - the reader lifts every read deadline, ours included, when the
	//     body ends (EOF), so ours is lifted again only when the read
	//     ended otherwise or no such reader is there.
	var deadline time.Time
	pending, armed := false, false
	if b.timeout > 0 {
		deadline = time.Now().Add(b.timeout)
		if idleReaderBounds(r, b.timeout, deadline) {
			pending = true
		} else {
			armed = rc.SetReadDeadline(deadline) == nil
		}
		defer func() {
			if armed && (err != nil || !idleReaderUnder(r)) {
				rc.SetReadDeadline(time.Time{})
			}
		}()
	}
	reads := 0
	readBody := func(p []byte) (int, error) {
		if reads++; reads > 1 && pending {
			pending = false
			armed = rc.SetReadDeadline(deadline) == nil
		}
		return r.Body.Read(p)
	}
	size := min(int64(firstBodyChunk), limit)
	if r.ContentLength >= 0 && r.ContentLength+1 < size {
		size = r.ContentLength + 1 // +1: room to see the body end
	}
	if !b.reserve(int64(room) + size) {
		return nil, nil, 0, errBodyBudget
	}
	reserved := int64(room) + size
	// buf is the room, then the body; bodyCap is how much body it holds.
	buf := make([]byte, room, int64(room)+size)
	bodyCap := func() int64 { return int64(cap(buf) - room) }
	for {
		if len(buf) == cap(buf) {
			grow := min(bodyCap(), limit-bodyCap())
			if r.ContentLength >= 0 {
				// Not past the announced length: a body of exactly
				// 1 MiB would otherwise grow to 2 MiB of buffer and
				// budget to see its end. (Go's reader stops at the
				// announced length, so room remains to grow.)
				grow = min(grow, r.ContentLength+1-bodyCap())
			}
			if grow <= 0 {
				// Full at the limit: one more byte means too large.
				var probe [1]byte
				n, err := readBody(probe[:])
				if n == 0 && (err == io.EOF || err == io.ErrUnexpectedEOF) {
					break
				}
				b.release(reserved)
				if err != nil && n == 0 {
					if errors.Is(err, os.ErrDeadlineExceeded) {
						return nil, nil, 0, errBodyTimeout
					}
					return nil, nil, 0, err
				}
				drainRefused(w, r, rc, false)
				return nil, nil, 0, errBodyTooLarge
			}
			if !b.reserve(grow) {
				b.release(reserved)
				return nil, nil, 0, errBodyBudget
			}
			reserved += grow
			next := make([]byte, len(buf), int64(cap(buf))+grow)
			copy(next, buf)
			buf = next
		}
		n, err := readBody(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)-room) > limit {
			b.release(reserved)
			drainRefused(w, r, rc, false)
			return nil, nil, 0, errBodyTooLarge
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			b.release(reserved)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil, nil, 0, errBodyTimeout
			}
			return nil, nil, 0, err
		}
	}
	// Held until the request ends: every handler and the launch share it.
	return buf[room:], buf, reserved, nil
}

// idleReaderBounds reports whether r's body is Caddy's idle-timeout
// reader itself, and that reader's deadline for a read starting now
// falls no later than deadline (a read of ours taking timeout from now),
// up to the microseconds between our clock reading and the reader's: its
// idle timeout is at most timeout without a minimum rate, or its hard
// deadline (the server's read_body) is no later.
func idleReaderBounds(r *http.Request, timeout time.Duration, deadline time.Time) bool {
	rd, ok := r.Body.(*caddyhttp.IdleTimeoutReader)
	if !ok {
		return false
	}
	d := rd.Deadline
	if hard := d.HardDeadline; !hard.IsZero() && !hard.After(deadline) {
		return true
	}
	return d.MinRate == 0 && d.Timeout > 0 && d.Timeout <= timeout
}

// idleReaderUnder reports whether r's body is read through Caddy's
// idle-timeout reader (the server's read_body_idle, on by default),
// which clears the connection's read deadline when the body reaches EOF.
// Directly under r.Body unless the access log wraps it.
func idleReaderUnder(r *http.Request) bool {
	if _, ok := r.Body.(*caddyhttp.IdleTimeoutReader); ok {
		return true
	}
	reader, _ := caddyhttp.IdleTimeoutsFromContext(r.Context())
	return reader != nil
}

// drainRefused reads and throws away what the client is still sending
// after its body was refused as too large, within drainMax and drainTime,
// with a fixed small buffer, and asks for the connection to close. Without
// it, Go's server closes the connection while the client is still writing,
// and a client that reads the answer only after writing everything sees a
// reset instead of the 413. A client waiting on "Expect: 100-continue" has
// sent nothing and gets the 413 at once; HTTP/2 refuses a stream without
// touching the connection.
func drainRefused(w http.ResponseWriter, r *http.Request, rc *http.ResponseController, announced bool) {
	if r.ProtoMajor != 1 {
		return
	}
	w.Header().Set("Connection", "close")
	if announced && r.Header.Get("Expect") != "" {
		return
	}
	if rc.SetReadDeadline(time.Now().Add(drainTime)) != nil {
		return
	}
	_, _ = io.CopyN(io.Discard, r.Body, drainMax)
}

// bodyError is the HTTP answer to r's body that could not be read.
func bodyError(w http.ResponseWriter, r *http.Request, directive string, limit int64, err error) error {
	switch {
	case errors.Is(err, errBodyTooLarge):
		return caddyhttp.Error(http.StatusRequestEntityTooLarge,
			fmt.Errorf("%s: body larger than %d bytes", directive, limit))
	case errors.Is(err, errBodyBudget):
		w.Header().Set("Retry-After", strconv.Itoa(budgetRetryAfter))
		return caddyhttp.Error(http.StatusServiceUnavailable,
			fmt.Errorf("%s: too many request bodies in flight, retry later", directive))
	case errors.Is(err, errBodyTimeout):
		// On HTTP/1 the rest of the body may still come and would be read
		// as the next request: the connection ends. HTTP/2 and 3 end the
		// stream alone (Go's server resets it after the answer); there
		// "Connection: close" would make Go's HTTP/2 server send GOAWAY
		// and end the connection for every other stream on it, which a
		// proxy in front of Caddy may share between many senders.
		if r.ProtoMajor == 1 {
			w.Header().Set("Connection", "close")
		}
		return caddyhttp.Error(http.StatusRequestTimeout,
			fmt.Errorf("%s: the body did not arrive within body_timeout", directive))
	}
	return caddyhttp.Error(http.StatusBadRequest, fmt.Errorf("%s: reading body: %v", directive, err))
}
