package validators

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
)

// presets are the senders' published signature schemes, without secrets.
// Each is checked in the tests against the sender's own example.
var presets = map[string]HMAC{
	// GitHub: https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
	"github": {
		Signature: Source{Kind: SourceHeader, Name: "X-Hub-Signature-256"},
		Algorithm: "sha256",
		Encoding:  "hex",
		Prefix:    "sha256=",
		Message:   DefaultMessage,
		Scheme:    SchemePlain,
	},
}

// Preset returns the webhook_hmac configuration of a known sender, without
// secrets; set Secrets (and override any field) before Validate. The name
// is matched case-insensitively.
func Preset(name string) (HMAC, error) {
	p, ok := presets[strings.ToLower(name)]
	if !ok {
		return HMAC{}, fmt.Errorf("%s: unknown preset %q: use one of %s, or configure header, algorithm, encoding and message yourself", DirectiveHMAC, name, strings.Join(PresetNames(), ", "))
	}
	return p, nil
}

// PresetNames lists the known presets in order, for errors and docs.
func PresetNames() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// DecodeSecret turns a configured secret string into MAC key bytes, as
// secret_encoding says: raw (the default when empty: the string's bytes,
// as GitHub, Slack and Stripe use them), base64 (padded or not) or hex.
// Whitespace around an encoded secret is ignored, as it cannot be part of
// one and often trails a value read from a file. Errors never contain the
// secret.
func DecodeSecret(secret, encoding string) ([]byte, error) {
	var key []byte
	switch strings.ToLower(encoding) {
	case "raw", "":
		key = []byte(secret)
	case "base64":
		s := strings.TrimSpace(secret)
		var err error
		if key, err = base64.StdEncoding.DecodeString(s); err != nil {
			if key, err = base64.RawStdEncoding.DecodeString(s); err != nil {
				return nil, fmt.Errorf("secret_encoding base64: the secret is not valid base64; use secret_encoding raw to use it as-is")
			}
		}
	case "hex":
		var err error
		if key, err = hex.DecodeString(strings.TrimSpace(secret)); err != nil {
			return nil, fmt.Errorf("secret_encoding hex: the secret is not valid hex; use secret_encoding raw to use it as-is")
		}
	default:
		return nil, fmt.Errorf("secret_encoding %q is not supported: use raw, base64 or hex", encoding)
	}
	if len(key) == 0 {
		return nil, fmt.Errorf("secret is empty: an empty secret would disable authentication; check the environment variable or file it comes from")
	}
	return key, nil
}

// TrimWhsecPrefix removes the "whsec_" marker Standard Webhooks (Svix)
// secrets start with; the rest is the base64 key
// (DecodeSecret(TrimWhsecPrefix(s), "base64")). Stripe's whsec_ secrets
// are different: Stripe uses the whole string as-is, so do not trim them.
func TrimWhsecPrefix(secret string) string {
	return strings.TrimPrefix(secret, "whsec_")
}
