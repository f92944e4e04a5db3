package validators

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Defaults of a JWKS whose fields are zero. They are documented in
// docs/jwt.md; change both together.
const (
	// DefaultJWKSTimeout bounds one fetch of the key set, connection
	// included, so a slow issuer cannot hold a request (or Caddy's start)
	// for long.
	DefaultJWKSTimeout = 10 * time.Second
	// DefaultJWKSMaxBytes caps the key set's body: real sets are a few KiB.
	DefaultJWKSMaxBytes = 1 << 20
	// DefaultJWKSMinRefresh is the shortest time between two fetches. A
	// token with an unknown kid triggers a refresh, and anyone can send
	// such tokens, so without this bound every forged token would make the
	// gateway fetch the issuer's keys.
	DefaultJWKSMinRefresh = 5 * time.Minute
	// DefaultJWKSMaxAge is how long a fetched set is trusted before it is
	// refreshed in the background, so that a key the issuer removed
	// (revoked) stops being accepted without a restart.
	DefaultJWKSMaxAge = time.Hour
	// DefaultJWKSKidWait is the longest a request with an unknown kid
	// waits for the refresh it triggered (README.md, "Hostile input"); the
	// fetch goes on in the background and serves later requests.
	DefaultJWKSKidWait = 2 * time.Second
)

// maxJWKSRedirects bounds the redirects followed when fetching a key set.
const maxJWKSRedirects = 3

// minRSABits is the smallest RSA modulus accepted, from a PEM file or a
// key set (NIST SP 800-131A: 1024-bit RSA is no longer acceptable).
const minRSABits = 2048

// JWKS is a JSON Web Key Set fetched from a URL fixed in the configuration
// (never from a URL a token names: jku and x5u headers are ignored).
//
// Set the fields, call Load once (a failure is a configuration error), then
// hand it to a JWT. Keys are cached; the set is fetched again when a token
// names a kid the cache does not hold, or when the cache is older than
// MaxAge, but never more often than once per MinRefresh and never by two
// goroutines at once. A failed refresh keeps the keys already held.
type JWKS struct {
	// URL of the key set: https://, or http:// (loopback for tests; any
	// other host works but should be warned about, see JWKSURLWarning).
	URL string
	// Client fetches the set; nil means a client with Timeout that follows
	// at most three redirects, none of them from https to http.
	Client *http.Client
	// Timeout bounds one fetch; DefaultJWKSTimeout when zero.
	Timeout time.Duration
	// MaxBytes caps the body of the set; DefaultJWKSMaxBytes when zero.
	MaxBytes int64
	// MinRefresh is the shortest time between two fetches;
	// DefaultJWKSMinRefresh when zero.
	MinRefresh time.Duration
	// MaxAge is how old the cached set may get before a background refresh;
	// DefaultJWKSMaxAge when zero.
	MaxAge time.Duration
	// Context bounds refreshes made after Load (on unknown kid or age):
	// when it is done (Caddy unloaded the config) no more fetches start.
	// Nil means context.Background.
	Context context.Context
	// KidWait bounds how long a token with an unknown kid waits for the
	// refresh; DefaultJWKSKidWait when zero.
	KidWait time.Duration
	// Now is the clock of the refresh bounds; nil means time.Now.
	Now func() time.Time
	// Warn receives what an operator should know and no request can tell:
	// a failed refresh, keys of the set that were skipped. Nil discards.
	Warn func(msg string, err error)

	// fetchMu serializes fetches; lastAttempt is guarded by it.
	fetchMu     sync.Mutex
	lastAttempt time.Time
	// flight is closed when the refresh in progress ends; nil when none
	// runs. Guarded by flightMu.
	flightMu sync.Mutex
	flight   chan struct{}
	// background is set while a background refresh runs.
	background atomic.Bool
	// set is the cached key set, replaced whole by a successful fetch.
	set atomic.Pointer[jwkSet]
}

// jwkSet is one fetched key set.
type jwkSet struct {
	keys      []jwk
	fetchedAt time.Time
}

// jwk is one usable public key of a set.
type jwk struct {
	kid string
	// alg is the key's "alg" member: when set, the key verifies only
	// tokens of exactly this algorithm.
	alg string
	key any // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// errJWKSNotLoaded is what a JWT sees of a JWKS whose Load was not called
// or failed: no key, so every token fails closed.
var errJWKSNotLoaded = errors.New("key set not loaded")

// JWKSURLWarning checks a key set URL and reports whether it should be
// warned about: plain http to a host that is not loopback, where anyone on
// the path could swap the issuer's keys for their own. A URL that is not
// absolute http(s) is an error.
func JWKSURLWarning(raw string) (warn bool, err error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return false, fmt.Errorf("jwks_url %q is not an absolute https:// URL: use an https:// URL such as https://issuer.example/.well-known/jwks.json", StripURLCredentialsAndQuery(raw))
	}
	if u.User != nil {
		return false, fmt.Errorf("jwks_url %s carries credentials: key sets are public, remove the user:password part", StripURLCredentialsAndQuery(raw))
	}
	return u.Scheme == "http" && !isLoopbackHost(u.Hostname()), nil
}

// isLoopbackHost reports whether host names this machine: localhost or a
// loopback IP literal (127.0.0.0/8, ::1).
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// StripURLCredentialsAndQuery drops the credentials, query and fragment of
// a URL (a jwks_url) before it goes into an error or a log: only they
// could hold something secret (an issuer's key set URL may carry an API
// key).
func StripURLCredentialsAndQuery(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	return u.String()
}

// Load fetches the key set for the first time. An unreachable URL, a body
// that is not a key set, or a set without one usable public key is an
// error: the configuration cannot verify any token.
func (s *JWKS) Load(ctx context.Context) error {
	if _, err := JWKSURLWarning(s.URL); err != nil {
		return err
	}
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	s.lastAttempt = s.now()
	set, err := s.fetch(ctx)
	if err != nil {
		return err
	}
	s.set.Store(set)
	return nil
}

// Loaded reports whether a key set is held.
func (s *JWKS) Loaded() bool { return s.set.Load() != nil }

func (s *JWKS) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *JWKS) warn(msg string, err error) {
	if s.Warn != nil {
		s.Warn(msg, err)
	}
}

func (s *JWKS) baseContext() context.Context {
	if s.Context != nil {
		return s.Context
	}
	return context.Background()
}

func (s *JWKS) minRefresh() time.Duration {
	if s.MinRefresh > 0 {
		return s.MinRefresh
	}
	return DefaultJWKSMinRefresh
}

func (s *JWKS) maxAge() time.Duration {
	if s.MaxAge > 0 {
		return s.MaxAge
	}
	return DefaultJWKSMaxAge
}

// keys returns the cached set, starting a background refresh when it is
// older than MaxAge. Requests go on with the cached keys meanwhile.
func (s *JWKS) keys() (*jwkSet, error) {
	set := s.set.Load()
	if set == nil {
		return nil, errJWKSNotLoaded
	}
	if s.now().Sub(set.fetchedAt) >= s.maxAge() && s.background.CompareAndSwap(false, true) {
		go func() {
			defer s.background.Store(false)
			s.refresh()
		}()
	}
	return set, nil
}

// hasKid reports whether set holds a key with this kid.
func (set *jwkSet) hasKid(kid string) bool {
	for i := range set.keys {
		if set.keys[i].kid == kid {
			return true
		}
	}
	return false
}

// refreshFor makes sure the set has been fetched since kid was found
// missing: it waits for a fetch in progress, and fetches itself unless the
// last attempt was less than MinRefresh ago. It returns the set to look
// kid up in.
//
// It waits at most KidWait: anyone can send tokens with unknown kids, and
// a slow issuer must not hold every such request for the whole fetch
// timeout. One refresh runs at a time; requests arriving meanwhile wait on
// that one.
func (s *JWKS) refreshFor(kid string) *jwkSet {
	if set := s.set.Load(); set != nil && set.hasKid(kid) {
		return set
	}
	wait := s.KidWait
	if wait <= 0 {
		wait = DefaultJWKSKidWait
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-s.startRefresh():
	case <-t.C:
	}
	return s.set.Load()
}

// startRefresh starts a refresh unless one runs, and returns the channel
// closed when the running one ends.
func (s *JWKS) startRefresh() <-chan struct{} {
	s.flightMu.Lock()
	defer s.flightMu.Unlock()
	if s.flight != nil {
		return s.flight
	}
	done := make(chan struct{})
	s.flight = done
	go func() {
		s.refresh()
		s.flightMu.Lock()
		s.flight = nil
		s.flightMu.Unlock()
		close(done)
	}()
	return done
}

// refresh fetches the set again unless a fetch was attempted less than
// MinRefresh ago.
func (s *JWKS) refresh() {
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	s.refreshLocked()
}

func (s *JWKS) refreshLocked() {
	now := s.now()
	if !s.lastAttempt.IsZero() && now.Sub(s.lastAttempt) < s.minRefresh() {
		return
	}
	base := s.baseContext()
	if base.Err() != nil {
		return
	}
	s.lastAttempt = now
	set, err := s.fetch(base)
	if err != nil {
		s.warn("webhook_jwt: refreshing the key set failed; keeping the keys already fetched", err)
		return
	}
	s.set.Store(set)
}

// fetch downloads and decodes the set.
func (s *JWKS) fetch(ctx context.Context) (*jwkSet, error) {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultJWKSTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks_url %s: %v", StripURLCredentialsAndQuery(s.URL), err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	client := s.Client
	if client == nil {
		client = &http.Client{Timeout: timeout, CheckRedirect: checkJWKSRedirect}
	}
	res, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jwks_url %s: fetching the key set: %v", StripURLCredentialsAndQuery(s.URL), unwrapURLError(err))
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks_url %s: fetching the key set: HTTP status %d, want 200", StripURLCredentialsAndQuery(s.URL), res.StatusCode)
	}
	limit := s.MaxBytes
	if limit <= 0 {
		limit = DefaultJWKSMaxBytes
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("jwks_url %s: reading the key set: %v", StripURLCredentialsAndQuery(s.URL), err)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("jwks_url %s: the key set is larger than %d bytes", StripURLCredentialsAndQuery(s.URL), limit)
	}
	keys, skipped, err := parseJWKS(body)
	if err != nil {
		return nil, fmt.Errorf("jwks_url %s: %v", StripURLCredentialsAndQuery(s.URL), err)
	}
	for _, sk := range skipped {
		s.warn("webhook_jwt: a key of the key set is ignored", sk)
	}
	return &jwkSet{keys: keys, fetchedAt: s.now()}, nil
}

// unwrapURLError drops the *url.Error wrapper, whose text repeats the full
// URL (query included).
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// checkJWKSRedirect follows at most maxJWKSRedirects redirects and never
// from https to plain http, which would let anyone on the path answer.
func checkJWKSRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxJWKSRedirects {
		return fmt.Errorf("more than %d redirects", maxJWKSRedirects)
	}
	if req.URL.Scheme != "https" && via[0].URL.Scheme == "https" {
		return errors.New("redirect from https to a non-https URL refused")
	}
	return nil
}

// parseJWKS decodes a JSON Web Key Set (RFC 7517) into its usable public
// keys. Keys that cannot verify a token here are skipped and described in
// skipped, rather than failing the whole set, so that an issuer adding a
// key type this gateway does not know does not break it: symmetric ("oct")
// keys (a secret cannot be published), keys with private parameters,
// encryption keys ("use": "enc"), unsupported types or curves, and RSA keys
// under 2048 bits. A set without one usable key is an error.
func parseJWKS(data []byte) (keys []jwk, skipped []error, err error) {
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, nil, fmt.Errorf("not a JSON Web Key Set (want {\"keys\": [...]}): %v", err)
	}
	if raw.Keys == nil {
		return nil, nil, errors.New("not a JSON Web Key Set: no \"keys\" member (an OpenID configuration document names the key set in its jwks_uri: use that URL)")
	}
	for i, rk := range raw.Keys {
		k, err := parseJWK(rk)
		if err != nil {
			skipped = append(skipped, fmt.Errorf("key #%d: %w", i+1, err))
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, skipped, fmt.Errorf("the key set holds no usable public key (RSA >= 2048 bits, EC P-256/P-384/P-521, Ed25519)%s", skippedSummary(skipped))
	}
	return keys, skipped, nil
}

// skippedSummary shows why the first keys were skipped, for a config error.
func skippedSummary(skipped []error) string {
	if len(skipped) == 0 {
		return ""
	}
	n := min(len(skipped), 3)
	parts := make([]string, n)
	for i := range n {
		parts[i] = skipped[i].Error()
	}
	more := ""
	if len(skipped) > n {
		more = fmt.Sprintf("; and %d more", len(skipped)-n)
	}
	return fmt.Sprintf("; %d key(s) skipped: %s%s", len(skipped), strings.Join(parts, "; "), more)
}

// parseJWK decodes one key with go-jose and keeps it only when it is a
// public signature key this gateway can use.
func parseJWK(raw json.RawMessage) (jwk, error) {
	var probe struct {
		Kty string `json:"kty"`
		Kid string `json:"kid"`
		Use string `json:"use"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return jwk{}, fmt.Errorf("not a JSON object: %v", err)
	}
	if probe.Kty == "oct" {
		return jwk{}, fmt.Errorf("kid %q: symmetric (oct) keys are never taken from a key set; configure HMAC secrets with `secret`", probe.Kid)
	}
	if probe.Use != "" && probe.Use != "sig" {
		return jwk{}, fmt.Errorf("kid %q: use %q is not sig", probe.Kid, probe.Use)
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(raw); err != nil {
		return jwk{}, fmt.Errorf("kid %q: %v", probe.Kid, err)
	}
	if !k.Valid() {
		return jwk{}, fmt.Errorf("kid %q: invalid key", probe.Kid)
	}
	if !k.IsPublic() {
		return jwk{}, fmt.Errorf("kid %q: the key set publishes private key material; it is ignored, and the issuer should rotate this key", probe.Kid)
	}
	if err := checkPublicKey(k.Key); err != nil {
		return jwk{}, fmt.Errorf("kid %q: %v", probe.Kid, err)
	}
	if k.Algorithm != "" {
		if err := checkKeyAlgorithm(k.Key, k.Algorithm); err != nil {
			return jwk{}, fmt.Errorf("kid %q: %v", probe.Kid, err)
		}
	}
	return jwk{kid: k.KeyID, alg: k.Algorithm, key: k.Key}, nil
}

// checkPublicKey accepts the public keys a JWT signature can be verified
// with here: RSA of at least 2048 bits, ECDSA on P-256/P-384/P-521,
// Ed25519.
func checkPublicKey(key any) error {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key of %d bits is too small: use at least %d bits", k.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey:
		if _, ok := ecdsaAlgorithm(k); !ok {
			return fmt.Errorf("ECDSA curve %s is not supported: use P-256, P-384 or P-521", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return errors.New("Ed25519 key of the wrong size")
		}
	default:
		return fmt.Errorf("unsupported key type %T: use RSA, ECDSA or Ed25519", key)
	}
	return nil
}

// checkKeyAlgorithm reports whether key can verify alg at all: a JWK whose
// "alg" contradicts its key type is broken, not merely restrictive.
func checkKeyAlgorithm(key any, alg string) error {
	for _, a := range keyAlgorithms(key) {
		if a == alg {
			return nil
		}
	}
	return fmt.Errorf("alg %q does not fit the %s key", alg, keyKind(key))
}
