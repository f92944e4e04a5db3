package validators

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"strings"
)

// DirectiveToken is the directive name webhook_token rejections carry.
const DirectiveToken = "webhook_token"

// Reasons a webhook_token condition rejects a request. They are a fixed set
// so that metrics labels stay bounded, and none of them reveals the token.
const (
	reasonMissingToken  = "missing token"
	reasonMissingPrefix = "missing prefix"
	reasonTokenMismatch = "token mismatch"
)

// Token is the webhook_token condition: the sender presents a static shared
// secret (Label Studio, V7, GitLab classic, Valohai static tokens) in a
// header, query parameter or body field.
//
// Set the fields, call Validate once, then call Verify for each request
// from any number of goroutines. Fields must not change after Validate.
type Token struct {
	// Secrets are the accepted tokens; any one may match (rotation).
	Secrets [][]byte
	// Source is where the token is presented, e.g. header Authorization.
	Source Source
	// Prefix must start the presented value and is stripped before the
	// comparison (e.g. "Bearer ", "secret="). It is matched ignoring ASCII
	// case, because auth schemes are case-insensitive; when it ends in a
	// space, further spaces after it are stripped too (RFC 6750 allows
	// "Bearer" followed by one or more spaces).
	Prefix string
	// OptionalPrefix accepts a value without Prefix as the bare token. The
	// short form `webhook_token <secret>` uses it with Prefix "Bearer " so
	// that both "Authorization: Bearer <t>" and "Authorization: <t>" work.
	OptionalPrefix bool

	// digests are the SHA-256 digests of Secrets, computed by Validate.
	digests [][sha256.Size]byte
}

// Validate checks the configuration and precomputes the secrets' digests.
// Errors name the setting at fault and how to fix it; they never contain a
// secret.
func (t *Token) Validate() error {
	if len(t.Secrets) == 0 {
		return fmt.Errorf("%s: no secret configured: add `secret <value>` (several secret lines for rotation)", DirectiveToken)
	}
	for i, s := range t.Secrets {
		if len(s) == 0 {
			return fmt.Errorf("%s: secret #%d is empty: an empty secret would disable authentication; check the environment variable or file it comes from", DirectiveToken, i+1)
		}
	}
	if err := t.Source.check(); err != nil {
		return fmt.Errorf("%s: %w", DirectiveToken, err)
	}
	t.digests = tokenDigests(t.Secrets)
	return nil
}

// tokenDigests hashes every secret so that Verify compares fixed-length
// values: subtle.ConstantTimeCompare returns at once on a length mismatch
// (golang/go#47001), which would leak a raw token's length.
func tokenDigests(secrets [][]byte) [][sha256.Size]byte {
	d := make([][sha256.Size]byte, len(secrets))
	for i, s := range secrets {
		d[i] = sha256.Sum256(s)
	}
	return d
}

// Verify returns nil when r presents one of the secrets, else a *Rejection
// for webhook_token. The comparison takes the same time whichever secret
// matches, or none: every configured secret is compared, without early
// exit, on SHA-256 digests.
func (t *Token) Verify(r *Request) error {
	digests := t.digests
	if digests == nil {
		// Not validated: check now (without caching, which would race
		// with concurrent Verify calls) and fail closed on a bad config.
		if err := (&Token{Secrets: t.Secrets, Source: t.Source}).Validate(); err != nil {
			return Reject(DirectiveToken, reasonMisconfigured)
		}
		digests = tokenDigests(t.Secrets)
	}

	v, ok, again := t.Source.GetOnce(r)
	if again {
		return Reject(DirectiveToken, reasonRepeatedToken)
	}
	if !ok || v == "" {
		return Reject(DirectiveToken, reasonMissingToken)
	}
	if t.Prefix != "" {
		rest, found := cutPrefixFold(v, t.Prefix)
		switch {
		case found:
			if strings.HasSuffix(t.Prefix, " ") {
				rest = strings.TrimLeft(rest, " ")
			}
			v = rest
		case !t.OptionalPrefix:
			return Reject(DirectiveToken, reasonMissingPrefix)
		}
	}
	if v == "" {
		return Reject(DirectiveToken, reasonMissingToken)
	}

	presented := sha256.Sum256([]byte(v))
	match := 0
	for i := range digests {
		match |= subtle.ConstantTimeCompare(presented[:], digests[i][:])
	}
	if match != 1 {
		return Reject(DirectiveToken, reasonTokenMismatch)
	}
	return nil
}

// String describes the condition without its secrets, so that a Token
// printed into a log or an error by mistake does not leak them.
func (t Token) String() string {
	return fmt.Sprintf("webhook_token{source: %s, prefix: %q, optional_prefix: %t, secrets: %d redacted}",
		t.Source, t.Prefix, t.OptionalPrefix, len(t.Secrets))
}

// GoString is String, so that %#v does not print the secrets' bytes.
func (t Token) GoString() string { return t.String() }
