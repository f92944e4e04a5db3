package launch

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash"
	"io"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Errors from URLSigner.Verify. Both mean "do not serve the payload"; they
// differ only so that logs and status codes can tell a stale link from a
// forged one.
var (
	// ErrBadSignature is a payload URL not signed with the key, or malformed.
	ErrBadSignature = errors.New("payload url: bad signature")
	// ErrExpired is a genuine payload URL past its expiry.
	ErrExpired = errors.New("payload url: expired")
)

// signingKeySize is the HMAC-SHA256 key length NewSigningKey makes.
const signingKeySize = 32

// URLSigner makes and checks the signed, expiring URLs under which Valohai
// workers download a run's stored payload. The URL is a capability: anyone
// holding it can read the payload until it expires, and nobody can make one
// without the key.
type URLSigner struct {
	// Key is the HMAC-SHA256 key. Verify rejects everything when it is empty.
	Key []byte
	// Base is the public base of the payload handler, such as
	// https://hooks.example.com/_valohai/payloads (trailing slash tolerated).
	Base string

	// macs holds HMACs keyed with Key (NewURLSigner), so that a URL does
	// not pay for keying a new one: hashing the key's two pads is most of
	// an HMAC of a short message. Nil in a URLSigner built as a literal.
	macs *sync.Pool
}

// NewURLSigner returns a URLSigner for key and base that reuses its keyed
// HMACs. Its Key must not be changed afterwards.
func NewURLSigner(key []byte, base string) URLSigner {
	return URLSigner{Key: key, Base: base, macs: &sync.Pool{
		New: func() any { return hmac.New(sha256.New, key) },
	}}
}

// URL returns <Base>/<runID>?expires=<unix>&signature=<sig>, where sig is
// the unpadded base64url HMAC-SHA256 of runID + "\n" + expires. With an
// empty Key the URL is well formed but never verifies.
func (s URLSigner) URL(runID string, expires time.Time) string {
	var expBuf [20]byte
	exp := strconv.AppendInt(expBuf[:0], expires.Unix(), 10)
	var sum [sha256.Size]byte
	base := strings.TrimRight(s.Base, "/")
	escaped := url.PathEscape(runID)
	// Neither the digits of expires nor the base64url alphabet needs
	// query escaping, so the query is written as url.Values would encode it.
	u := make([]byte, 0, len(base)+1+len(escaped)+len("?expires=&signature=")+len(exp)+base64.RawURLEncoding.EncodedLen(len(sum)))
	u = append(u, base...)
	u = append(u, '/')
	u = append(u, escaped...)
	u = append(u, "?expires="...)
	u = append(u, exp...)
	u = append(u, "&signature="...)
	u = base64.RawURLEncoding.AppendEncode(u, s.mac(sum[:0], runID, exp))
	return string(u)
}

// Verify checks the run id, expires and signature taken from a payload URL
// at time now. It returns nil, ErrBadSignature (forged, tampered, malformed,
// or no key) or ErrExpired. The signature is checked, in constant time,
// before the expiry, so a forged URL learns nothing about expiry.
func (s URLSigner) Verify(runID, expires, signature string, now time.Time) error {
	if len(s.Key) == 0 || strings.Contains(runID, "\n") {
		return ErrBadSignature
	}
	got, err := base64.RawURLEncoding.DecodeString(signature)
	if err != nil {
		return ErrBadSignature
	}
	// The MAC covers the expires text exactly as received, so there is one
	// accepted spelling of each expiry: the one URL produced.
	var sum [sha256.Size]byte
	if !hmac.Equal(got, s.mac(sum[:0], runID, []byte(expires))) {
		return ErrBadSignature
	}
	exp, err := strconv.ParseInt(expires, 10, 64)
	if err != nil {
		return ErrBadSignature
	}
	if now.After(time.Unix(exp, 0)) {
		return ErrExpired
	}
	return nil
}

// mac appends to dst the HMAC-SHA256 of runID + "\n" + expires.
func (s URLSigner) mac(dst []byte, runID string, expires []byte) []byte {
	var m hash.Hash
	if s.macs != nil {
		m = s.macs.Get().(hash.Hash)
		defer s.macs.Put(m)
		m.Reset()
	} else {
		m = hmac.New(sha256.New, s.Key)
	}
	io.WriteString(m, runID)
	m.Write([]byte{'\n'})
	m.Write(expires)
	return m.Sum(dst)
}

// NewSigningKey returns a fresh random 32-byte key for URLSigner, suitable
// as the generator given to Store.Secret.
func NewSigningKey() ([]byte, error) {
	key := make([]byte, signingKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return key, nil
}
