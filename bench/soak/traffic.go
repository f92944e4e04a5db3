package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// kind is one sort of request in the mix.
type kind int

const (
	kindValid kind = iota
	kindInvalidJSON
	kindDuplicate
	kindForged
	kindStale
	kindOversizedLength
	kindOversizedChunked
	kindNoSignature
	kindGarbageSignature
	kindWrongMethod
	kindDeepJSON
	kindDuplicateKey
	numKinds
)

var kindNames = [numKinds]string{
	kindValid:            "valid",
	kindInvalidJSON:      "invalid_json",
	kindDuplicate:        "duplicate",
	kindForged:           "forged",
	kindStale:            "stale",
	kindOversizedLength:  "oversized_length",
	kindOversizedChunked: "oversized_chunked",
	kindNoSignature:      "no_signature",
	kindGarbageSignature: "garbage_signature",
	kindWrongMethod:      "wrong_method",
	kindDeepJSON:         "deep_json",
	kindDuplicateKey:     "duplicate_key",
}

// kindWeights is the mix, in percent. Valid deliveries dominate so the
// launch path (durable store, queue, retries) carries most of the load; the
// hostile kinds are frequent enough to run thousands of times in minutes.
var kindWeights = [numKinds]int{
	kindValid:            41,
	kindInvalidJSON:      5,
	kindDuplicate:        12,
	kindForged:           10,
	kindStale:            8,
	kindOversizedLength:  3,
	kindOversizedChunked: 2,
	kindNoSignature:      5,
	kindGarbageSignature: 5,
	kindWrongMethod:      5,
	kindDeepJSON:         2,
	kindDuplicateKey:     2,
}

func (k kind) String() string { return kindNames[k] }

// pickKind draws a kind from the mix.
func pickKind(rng *mrand.Rand) kind {
	total := 0
	for _, w := range kindWeights {
		total += w
	}
	n := rng.IntN(total)
	for k, w := range kindWeights {
		if n < w {
			return kind(k)
		}
		n -= w
	}
	return kindValid
}

// scheme is how a sender signs.
type scheme int

const (
	// schemeGitHub: X-Hub-Signature-256 "sha256=<hex>" over the body; the
	// gateway adds webhook_timestamp on X-Webhook-Timestamp (not signed).
	schemeGitHub scheme = iota
	// schemeSlack: X-Slack-Signature "v0=<hex>" over "v0:<ts>:<body>", the
	// timestamp in X-Slack-Request-Timestamp (signed, 5m tolerance).
	schemeSlack
)

// sender is one trigger of the gateway and the way its sender signs.
type sender struct {
	name           string
	scheme         scheme
	url            string
	secret         []byte
	deliveryHeader string
	// staleReason is the rejection a stale timestamp gets: webhook_timestamp
	// for GitHub (the timestamp is a separate condition), webhook_hmac for
	// Slack (the timestamp is part of the signature).
	staleReason string
	// staleBy is how far outside the trigger's tolerance a stale request is.
	staleBy time.Duration
}

func newSenders(gateway string, githubSecret, slackSecret []byte) []*sender {
	gateway = strings.TrimSuffix(gateway, "/")
	return []*sender{
		{
			name: "github", scheme: schemeGitHub, url: gateway + "/github", secret: githubSecret,
			deliveryHeader: "X-GitHub-Delivery",
			staleReason:    "webhook_timestamp: timestamp outside tolerance",
			staleBy:        60*time.Second + 10*time.Minute,
		},
		{
			name: "slack", scheme: schemeSlack, url: gateway + "/slack", secret: slackSecret,
			deliveryHeader: "X-Soak-Delivery",
			staleReason:    "webhook_hmac: timestamp outside tolerance",
			staleBy:        5*time.Minute + 10*time.Minute,
		},
	}
}

// signatureHeader is the header carrying the sender's signature.
func (s *sender) signatureHeader() string {
	if s.scheme == schemeSlack {
		return "X-Slack-Signature"
	}
	return "X-Hub-Signature-256"
}

// signature computes the sender's signature header value over body at ts
// with key.
func (s *sender) signature(key, body []byte, ts time.Time) string {
	mac := hmac.New(sha256.New, key)
	if s.scheme == schemeSlack {
		fmt.Fprintf(mac, "v0:%d:", ts.Unix())
		mac.Write(body)
		return "v0=" + hex.EncodeToString(mac.Sum(nil))
	}
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// stamp sets the timestamp header the trigger checks.
func (s *sender) stamp(h http.Header, ts time.Time) {
	v := strconv.FormatInt(ts.Unix(), 10)
	if s.scheme == schemeSlack {
		h.Set("X-Slack-Request-Timestamp", v)
		return
	}
	h.Set("X-Webhook-Timestamp", v)
	h.Set("X-GitHub-Event", "push")
}

// delivery is an acknowledged delivery, kept so that it can be redelivered.
type delivery struct {
	sender      *sender
	id          string
	body        []byte
	contentType string
	runID       string
}

// expectation is what the gateway must answer to one request.
type expectation struct {
	// statuses are the acceptable statuses.
	statuses []int
	// message is the exact error body (trimmed) for a rejection.
	message string
	// allow is the Allow header a 405 must carry.
	allow string
	// launch: the answer must carry a new run id that gets launched.
	launch bool
	// duplicateOf: the answer must carry this earlier run id and
	// Webhook-Duplicate: true.
	duplicateOf string
}

// planned is one request ready to send, with what it must get back.
type planned struct {
	kind   kind
	sender *sender
	method string
	body   []byte
	// chunked sends the body without Content-Length.
	chunked     bool
	header      http.Header
	expect      expectation
	deliveryID  string
	contentType string
	// host, when set, replaces the Host header.
	host string
}

// request builds the *http.Request for p.
func (p *planned) request() (*http.Request, error) {
	var rd io.Reader
	if p.body != nil {
		rd = bytes.NewReader(p.body)
		if p.chunked {
			// Hiding the length makes net/http send Transfer-Encoding:
			// chunked, so the gateway cannot refuse before reading.
			rd = struct{ io.Reader }{rd}
		}
	}
	req, err := http.NewRequest(p.method, p.sender.url, rd)
	if err != nil {
		return nil, err
	}
	if p.chunked {
		req.ContentLength = -1
	}
	if p.host != "" {
		req.Host = p.host
	}
	for k, v := range p.header {
		req.Header[k] = v
	}
	return req, nil
}

// planner turns a kind into a concrete request. Each worker has its own.
type planner struct {
	rng     *mrand.Rand
	maxBody int
	acked   *ackLog
	now     func() time.Time
}

// plan builds a request of kind k for sender s. A duplicate with nothing
// acknowledged yet to repeat becomes a valid delivery.
func (pl *planner) plan(k kind, s *sender) *planned {
	if k == kindDuplicate {
		if d := pl.acked.pick(pl.rng, s); d != nil {
			return pl.duplicate(d)
		}
		k = kindValid
	}
	now := pl.now()
	p := &planned{kind: k, sender: s, method: http.MethodPost, header: http.Header{}}
	p.deliveryID = rand.Text()
	p.contentType = "application/json"
	switch k {
	case kindOversizedLength, kindOversizedChunked:
		// Just over the cap sometimes, far over it otherwise.
		size := pl.maxBody + 1
		if pl.rng.IntN(4) != 0 {
			size += pl.rng.IntN(3 * pl.maxBody)
		}
		p.body = jsonBody(p.deliveryID, size, pl.rng)
		p.chunked = k == kindOversizedChunked
	case kindDeepJSON:
		// Correctly signed, nested past 1000 levels: sometimes the
		// 10 MB-of-'[' shape that once overflowed the stack, cut to the cap.
		depth := 1001 + pl.rng.IntN(5000)
		if pl.rng.IntN(4) == 0 {
			depth = pl.maxBody
		}
		p.body = bytes.Repeat([]byte("["), depth)
	case kindDuplicateKey:
		p.body = fmt.Appendf(nil, `{"ref":"refs/heads/evil","delivery":%q,"ref":"refs/heads/main"}`, p.deliveryID)
	case kindInvalidJSON:
		p.body = invalidJSONBody(p.deliveryID, pl.rng)
		if pl.rng.IntN(2) == 0 {
			p.contentType = "application/octet-stream"
		}
	default:
		p.body = jsonBody(p.deliveryID, pl.validSize(), pl.rng)
	}
	p.header.Set("Content-Type", p.contentType)
	p.header.Set(s.deliveryHeader, p.deliveryID)
	ts := now
	if k == kindStale {
		if pl.rng.IntN(2) == 0 {
			ts = now.Add(-s.staleBy)
		} else {
			ts = now.Add(s.staleBy)
		}
	}
	s.stamp(p.header, ts)
	sig := s.signature(s.secret, p.body, ts)
	switch k {
	case kindForged:
		if pl.rng.IntN(2) == 0 {
			// A secret the gateway does not know.
			sig = s.signature([]byte(rand.Text()), p.body, ts)
		} else {
			// The right secret over a different body (tampering).
			sig = s.signature(s.secret, append(bytes.Clone(p.body), ' '), ts)
		}
	case kindGarbageSignature:
		sig = garbageSignature(s, pl.rng)
	}
	if k != kindNoSignature {
		p.header.Set(s.signatureHeader(), sig)
	}

	reject := func(status int, msg string) {
		p.expect = expectation{statuses: []int{status}, message: msg}
	}
	switch k {
	case kindValid, kindInvalidJSON:
		// The body is an opaque payload to a trigger without a
		// webhook_filter or {webhook.json.*} placeholder: invalid JSON,
		// correctly signed, launches like any other delivery.
		p.expect = expectation{statuses: []int{http.StatusAccepted, http.StatusOK}, launch: true}
	case kindForged:
		reject(http.StatusBadRequest, "webhook_hmac: signature mismatch")
	case kindStale:
		reject(http.StatusBadRequest, s.staleReason)
	case kindOversizedLength, kindOversizedChunked:
		reject(http.StatusRequestEntityTooLarge, fmt.Sprintf("webhook_hmac: body larger than %d bytes", pl.maxBody))
	case kindNoSignature:
		reject(http.StatusBadRequest, "webhook_hmac: missing signature")
	case kindGarbageSignature:
		reject(http.StatusBadRequest, "webhook_hmac: malformed signature")
	case kindDeepJSON, kindDuplicateKey:
		// The first handler that reads the body as JSON refuses it: the
		// launch on both routes (Slack's url_verification check reads
		// only bodies that can be a challenge, and these cannot).
		reason := "JSON nested deeper than 1000 levels"
		if k == kindDuplicateKey {
			reason = "duplicate key in a JSON object"
		}
		reject(http.StatusBadRequest, "valohai_launch: "+reason)
	case kindWrongMethod:
		methods := []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPatch}
		p.method = methods[pl.rng.IntN(len(methods))]
		if p.method == http.MethodGet || p.method == http.MethodDelete {
			p.body = nil
		}
		p.expect = expectation{
			statuses: []int{http.StatusMethodNotAllowed},
			message:  "webhook_hmac: method " + p.method + " not allowed",
			allow:    http.MethodPost,
		}
	}
	return p
}

// duplicate redelivers d: same delivery id and body, signed afresh (as a
// sender's retry is), so only webhook_dedupe can tell it apart.
func (pl *planner) duplicate(d *delivery) *planned {
	s := d.sender
	ts := pl.now()
	p := &planned{
		kind: kindDuplicate, sender: s, method: http.MethodPost, header: http.Header{},
		body: d.body, deliveryID: d.id, contentType: d.contentType,
		expect: expectation{statuses: []int{http.StatusAccepted, http.StatusOK}, duplicateOf: d.runID},
	}
	p.header.Set("Content-Type", d.contentType)
	p.header.Set(s.deliveryHeader, d.id)
	s.stamp(p.header, ts)
	p.header.Set(s.signatureHeader(), s.signature(s.secret, d.body, ts))
	if pl.rng.IntN(2) == 0 {
		// The same delivery addressed to another Host port: the dedupe
		// window belongs to the configured route, not the Host text.
		p.host = fmt.Sprintf("127.0.0.1:%d", 1+pl.rng.IntN(65535))
	}
	return p
}

// validSize is the size of a valid body: mostly small, some large, and a
// few exactly at the cap (which must be accepted).
func (pl *planner) validSize() int {
	switch n := pl.rng.IntN(100); {
	case n == 0:
		return pl.maxBody
	case n < 5:
		return 2048 + pl.rng.IntN(pl.maxBody-2048)
	default:
		return 200 + pl.rng.IntN(1848)
	}
}

// jsonBody returns a JSON object of exactly size bytes (or the smallest
// possible, when size is below it) naming the delivery.
func jsonBody(id string, size int, rng *mrand.Rand) []byte {
	head := fmt.Sprintf(`{"ref":"refs/heads/main","delivery":%q,"pad":"`, id)
	const tail = `"}`
	n := size - len(head) - len(tail)
	if n < 0 {
		n = 0
	}
	b := make([]byte, 0, len(head)+n+len(tail))
	b = append(b, head...)
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	for range n {
		b = append(b, letters[rng.IntN(len(letters))])
	}
	return append(b, tail...)
}

// invalidJSONBody returns a body that is not JSON: truncated JSON, text, or
// bytes that are not UTF-8. It still names the delivery, for debugging.
func invalidJSONBody(id string, rng *mrand.Rand) []byte {
	var b []byte
	switch rng.IntN(3) {
	case 0:
		b = fmt.Appendf(nil, `{"ref":"refs/heads/main","delivery":%q,"commits":[{"id":`, id)
	case 1:
		b = fmt.Appendf(nil, "delivery=%s&this is not JSON at all", id)
	default:
		b = fmt.Appendf(nil, "\xff\xfe%s\x00\x01", id)
	}
	if json.Valid(b) {
		panic("soak: invalidJSONBody produced valid JSON")
	}
	return b
}

// garbageSignature returns a signature header value that cannot be
// decoded: not hex, the wrong length, or without the scheme's prefix.
func garbageSignature(s *sender, rng *mrand.Rand) string {
	prefix := "sha256="
	if s.scheme == schemeSlack {
		prefix = "v0="
	}
	switch rng.IntN(3) {
	case 0:
		return prefix + strings.Repeat("zq", 32)
	case 1:
		return prefix + "abcd"
	default:
		return "garbage"
	}
}
