package launch

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"strconv"
	"strings"
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
}

// URL returns <Base>/<runID>?expires=<unix>&signature=<sig>, where sig is
// the unpadded base64url HMAC-SHA256 of runID + "\n" + expires. With an
// empty Key the URL is well formed but never verifies.
func (s URLSigner) URL(runID string, expires time.Time) string {
	exp := strconv.FormatInt(expires.Unix(), 10)
	q := url.Values{}
	q.Set("expires", exp)
	q.Set("signature", base64.RawURLEncoding.EncodeToString(s.mac(runID, exp)))
	return strings.TrimRight(s.Base, "/") + "/" + url.PathEscape(runID) + "?" + q.Encode()
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
	if !hmac.Equal(got, s.mac(runID, expires)) {
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

func (s URLSigner) mac(runID, expires string) []byte {
	m := hmac.New(sha256.New, s.Key)
	m.Write([]byte(runID))
	m.Write([]byte{'\n'})
	m.Write([]byte(expires))
	return m.Sum(nil)
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
