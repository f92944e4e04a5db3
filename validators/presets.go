package validators

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Secret encodings: how a configured secret string becomes MAC key bytes.
const (
	// SecretRaw uses the string's bytes as they are (GitHub, Slack, Stripe,
	// Shopify, Linear, Valohai). It is the default.
	SecretRaw = "raw"
	// SecretBase64 decodes standard base64, padded or not.
	SecretBase64 = "base64"
	// SecretHex decodes hex.
	SecretHex = "hex"
	// SecretWhsec is Standard Webhooks' (Svix, GitLab signing token)
	// format: an optional "whsec_" marker, then the base64 key. Its
	// reference libraries read secrets exactly so.
	SecretWhsec = "whsec"
)

// presets are the senders' published signature schemes, without secrets.
// Each is checked in presets_test.go against the sender's own example or
// reference library.
var presets = map[string]HMAC{
	// GitHub: https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
	// No timestamp is signed: pair with webhook_dedupe on X-GitHub-Delivery.
	"github": {
		Signature: Source{Kind: SourceHeader, Name: "X-Hub-Signature-256"},
		Algorithm: "sha256",
		Encoding:  "hex",
		Prefix:    "sha256=",
		Message:   DefaultMessage,
		Scheme:    SchemePlain,
	},
	// Slack: https://api.slack.com/authentication/verifying-requests-from-slack
	// The SDKs reject |now - ts| > 60*5 seconds.
	"slack": {
		Signature: Source{Kind: SourceHeader, Name: "X-Slack-Signature"},
		Algorithm: "sha256",
		Encoding:  "hex",
		Prefix:    "v0=",
		Message:   "v0:{timestamp}:{body}",
		Timestamp: &TimestampSource{Source: Source{Kind: SourceHeader, Name: "X-Slack-Request-Timestamp"}, Format: TimestampUnix},
		Tolerance: 5 * time.Minute,
		Scheme:    SchemePlain,
	},
	// Stripe: https://docs.stripe.com/webhooks#verify-manually and
	// stripe-go webhook/client.go: the whsec_ secret's bytes are the key
	// as they are (not base64-decoded), DefaultTolerance is 300 s, and only
	// v1 signatures count.
	"stripe": {
		Signature:      Source{Kind: SourceHeader, Name: "Stripe-Signature"},
		Algorithm:      "sha256",
		Encoding:       "hex",
		Message:        "{timestamp}.{body}",
		Tolerance:      5 * time.Minute,
		Scheme:         SchemeStripe,
		SecretEncoding: SecretRaw,
	},
	// Standard Webhooks (also Svix and GitLab's signing token):
	// https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
	// The key is the base64 after "whsec_"; five minutes either way.
	"standard": {
		Signature:      Source{Kind: SourceHeader, Name: "Webhook-Signature"},
		Algorithm:      "sha256",
		Encoding:       "base64",
		Message:        "{id}.{timestamp}.{body}",
		Timestamp:      &TimestampSource{Source: Source{Kind: SourceHeader, Name: "Webhook-Timestamp"}, Format: TimestampUnix},
		ID:             &Source{Kind: SourceHeader, Name: "Webhook-Id"},
		Tolerance:      5 * time.Minute,
		Scheme:         SchemeStandard,
		SecretEncoding: SecretWhsec,
	},
	// Shopify: https://shopify.dev/docs/apps/build/webhooks/verify-deliveries
	// No timestamp is signed: pair with webhook_dedupe on X-Shopify-Event-Id.
	"shopify": {
		Signature: Source{Kind: SourceHeader, Name: "X-Shopify-Hmac-Sha256"},
		Algorithm: "sha256",
		Encoding:  "base64",
		Message:   DefaultMessage,
		Scheme:    SchemePlain,
	},
	// Linear: linear/linear packages/sdk/src/webhooks/client.ts. The
	// freshness is webhookTimestamp (ms) inside the signed JSON body, within
	// 60 s; since Linear PR #1268 a signed timestamp is required, and here
	// a body without one is rejected.
	"linear": {
		Signature: Source{Kind: SourceHeader, Name: "Linear-Signature"},
		Algorithm: "sha256",
		Encoding:  "hex",
		Message:   DefaultMessage,
		Timestamp: &TimestampSource{Source: Source{Kind: SourceField, Name: "webhookTimestamp", JSONOnly: true}, Format: TimestampUnixMilli},
		Tolerance: time.Minute,
		Scheme:    SchemePlain,
	},
	// Valohai's own client (valohai-utils valohai/webhooks.py): hex of the
	// HMAC over hmac_format, default the body, in Authorization, with an
	// optional auth_secret_prefix. A client configured with a timestamp
	// needs `timestamp header X-Timestamp unix_ms` and a message that
	// signs it, e.g. "{body}:{timestamp}".
	"valohai": {
		Signature: Source{Kind: SourceHeader, Name: "Authorization"},
		Algorithm: "sha256",
		Encoding:  "hex",
		Message:   DefaultMessage,
		Scheme:    SchemePlain,
	},
}

// Preset returns the webhook_hmac configuration of a known sender, without
// secrets; add secrets with AddSecret (which decodes them as the sender's
// SecretEncoding says) and override any field before Validate. The name is
// matched case-insensitively.
func Preset(name string) (HMAC, error) {
	p, ok := presets[strings.ToLower(name)]
	if !ok {
		return HMAC{}, fmt.Errorf("%s: unknown preset %q: use one of %s, or configure header, algorithm, encoding and message yourself", DirectiveHMAC, name, strings.Join(PresetNames(), ", "))
	}
	// Copy the pointed-to sources so that a caller editing its preset
	// never changes the next caller's.
	p.Timestamp, p.ID = clonePtr(p.Timestamp), clonePtr(p.ID)
	return p, nil
}

// clonePtr returns a pointer to a copy of *p, or nil.
func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	c := *p
	return &c
}

// PresetNames lists the known presets in order, for errors and docs.
func PresetNames() []string { return slices.Sorted(maps.Keys(presets)) }

// DecodeSecret turns a configured secret string into MAC key bytes, as
// secret_encoding says: raw (the default when empty: the string's bytes,
// as GitHub, Slack and Stripe use them), base64 (padded or not), hex, or
// whsec (Standard Webhooks: base64 after an optional "whsec_"). Whitespace
// around an encoded secret is ignored, as it cannot be part of one and
// often trails a value read from a file. Errors never contain the secret.
func DecodeSecret(secret, encoding string) ([]byte, error) {
	var key []byte
	switch strings.ToLower(encoding) {
	case SecretRaw, "":
		key = []byte(secret)
	case SecretBase64:
		var ok bool
		if key, ok = decodeBase64Secret(strings.TrimSpace(secret)); !ok {
			return nil, fmt.Errorf("secret_encoding base64: the secret is not valid base64; use secret_encoding raw to use it as-is")
		}
	case SecretHex:
		var err error
		if key, err = hex.DecodeString(strings.TrimSpace(secret)); err != nil {
			return nil, fmt.Errorf("secret_encoding hex: the secret is not valid hex; use secret_encoding raw to use it as-is")
		}
	case SecretWhsec:
		var ok bool
		if key, ok = decodeBase64Secret(TrimWhsecPrefix(strings.TrimSpace(secret))); !ok {
			return nil, fmt.Errorf("secret_encoding whsec: the secret is not a Standard Webhooks secret (whsec_ followed by base64); copy the signing secret exactly as the sender shows it, or set secret_encoding raw if the sender uses the string as-is")
		}
	default:
		return nil, fmt.Errorf("secret_encoding %q is not supported: use raw, base64, hex or whsec", encoding)
	}
	if len(key) == 0 {
		return nil, fmt.Errorf("secret is empty: an empty secret would disable authentication; check the environment variable or file it comes from")
	}
	return key, nil
}

// decodeBase64Secret decodes standard base64, padded or not.
func decodeBase64Secret(s string) ([]byte, bool) {
	if key, err := base64.StdEncoding.DecodeString(s); err == nil {
		return key, true
	}
	if key, err := base64.RawStdEncoding.DecodeString(s); err == nil {
		return key, true
	}
	return nil, false
}

// TrimWhsecPrefix removes the "whsec_" marker Standard Webhooks (Svix)
// secrets start with; the rest is the base64 key
// (DecodeSecret(TrimWhsecPrefix(s), "base64"), or DecodeSecret(s, "whsec")).
// Stripe's whsec_ secrets are different: Stripe uses the whole string
// as-is, so do not trim them.
func TrimWhsecPrefix(secret string) string {
	return strings.TrimPrefix(secret, "whsec_")
}
