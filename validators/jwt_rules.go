package validators

import "slices"

// The rules webhook_jwt holds keys and algorithms to, for code that mints
// tokens (`caddy valohai sign --jwt`): a token made under them is one the
// condition can accept, and a key it would refuse is refused before any
// token is made.

// MinJWTSecretBytes is the shortest HMAC secret (HS256/384/512) webhook_jwt
// accepts: RFC 7518 §3.2's floor, the hash size.
const MinJWTSecretBytes = minHMACSecretBytes

// JWTAlgorithms lists the signature algorithms webhook_jwt knows, in their
// JOSE spelling; "none" is never one.
func JWTAlgorithms() []string { return slices.Clone(jwtAlgorithms) }

// CanonicalJWTAlgorithm spells alg the JOSE way (RS256, EdDSA), accepting
// any letter case; "none" and unknown names are errors.
func CanonicalJWTAlgorithm(alg string) (string, error) { return canonicalAlgorithm(alg) }

// JWTKeyAlgorithms lists the algorithms a key verifies, the key's usual one
// first: HS256/384/512 for a secret ([]byte), RS and PS for RSA, the one ES
// algorithm of an ECDSA key's curve, EdDSA for Ed25519. Nil for a key
// webhook_jwt cannot use.
func JWTKeyAlgorithms(key any) []string { return keyAlgorithms(key) }

// CheckJWTPublicKey reports whether webhook_jwt accepts a public key: RSA of
// at least 2048 bits, ECDSA on P-256, P-384 or P-521, or Ed25519.
func CheckJWTPublicKey(key any) error { return checkPublicKey(key) }

// CheckJWTKeyAlgorithm reports whether key can make or verify alg at all.
func CheckJWTKeyAlgorithm(key any, alg string) error { return checkKeyAlgorithm(key, alg) }
