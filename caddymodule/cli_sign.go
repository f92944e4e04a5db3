package caddymodule

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/spf13/cobra"

	"github.com/hooklaunch/caddy-valohai/validators"
)

func init() {
	cliSubcommands = append(cliSubcommands, signCommand)
}

// signFlags are the flags of `caddy valohai sign`, grouped by mode.
type signFlags struct {
	// HMAC (the default mode): a preset and/or custom fields.
	preset, header, query, algorithm, encoding, prefix, message string
	tsHeader, tsQuery, tsField, tsFormat                        string
	idHeader, idQuery, idField, id                              string
	secretEncoding                                              string

	// The secret, for every mode but asymmetric JWT.
	secret, secretEnv, secretFile string

	// The request.
	body, bodyFile, rawURL, at string
	addHeaders                 []string
	curl                       bool

	// --token mode, then --jwt mode.
	token                                       bool
	tokenHeader, tokenQuery, tokenPrefix        string
	jwtMode                                     bool
	jwtAlg, jwtKeyFile, jwtKid, issuer, subject string
	audience, claims                            []string
	ttl                                         time.Duration
}

// The flags each mode owns, so that a flag of another mode is an error
// rather than silently ignored.
var (
	signHMACFlags  = []string{"preset", "header", "query", "algorithm", "encoding", "prefix", "message", "timestamp-header", "timestamp-query", "timestamp-field", "timestamp-format", "id-header", "id-query", "id-field", "id"}
	signTokenFlags = []string{"token-header", "token-query", "token-prefix"}
	signJWTFlags   = []string{"jwt-alg", "jwt-key-file", "jwt-kid", "claim", "issuer", "audience", "subject", "ttl"}
)

const signLong = `Prints what a sender sends to a trigger: one "Name: value" line per
header, then (with --url) a curl command ready to paste. Use it to test a
trigger by hand, or to script a sender.

Four modes:
  HMAC (default)  --preset github|slack|stripe|standard|shopify|linear|valohai,
                  or custom fields as in webhook_hmac (--header, --algorithm,
                  --encoding, --prefix, --message, --timestamp-header, ...),
                  which also override a preset's. The body is signed exactly
                  as given (--body or --body-file), with the first secret.
  --token         the header (or query parameter) webhook_token checks.
  --jwt           mints a JWT (HS256 with the secret, or RS256/ES256/EdDSA
                  with --jwt-key-file) with iat and exp, sent as
                  "Authorization: Bearer <jwt>".
  discord | standard-v1a   (as --preset or the first argument) signs as
                  Discord interactions or Standard Webhooks v1a do, for
                  webhook_ed25519: the secret is the Ed25519 PRIVATE key
                  (PEM from openssl genpkey -algorithm ed25519, whsk_<base64>,
                  or the seed in hex); the public key to configure is noted.

The secret: prefer --secret-env VAR or --secret-file PATH. A secret given
with --secret is stored in your shell history and visible to other users
of this machine in the process list.

The linear preset signs a timestamp that lives inside the JSON body
(webhookTimestamp, in milliseconds): put it in the body yourself; the body
is signed as it is.`

const signExample = `  # GitHub, with the secret from the environment, to a local trigger:
  caddy valohai sign --preset github --secret-env GITHUB_SECRET \
    --body-file push.json --url http://localhost:8080/hooks/github

  # A custom HMAC: sha512 base64 of "{timestamp}.{body}" in X-Signature:
  caddy valohai sign --header X-Signature --algorithm sha512 --encoding base64 \
    --message '{timestamp}.{body}' --timestamp-header X-Timestamp \
    --secret-file ./secret --body '{"ok":true}'

  # A Discord interaction, signed with a test key pair:
  openssl genpkey -algorithm ed25519 -out discord-test.pem
  caddy valohai sign discord --secret-file discord-test.pem \
    --body '{"type":1}' --url http://localhost:8080/hooks/discord

  # webhook_token:
  caddy valohai sign --token --secret-env V7_TOKEN --url https://hooks.example.com/v7

  # webhook_jwt with an Ed25519 key:
  caddy valohai sign --jwt --jwt-key-file sender.pem --issuer ci \
    --audience my-trigger --claim repository=org/repo --ttl 5m`

// signCommand builds `caddy valohai sign`.
func signCommand() *cobra.Command {
	f := &signFlags{}
	cmd := &cobra.Command{
		Use:     "sign [<preset> | --preset <name> | custom HMAC flags | --token | --jwt] [--secret-env <VAR> | --secret-file <path>] [--body <s> | --body-file <path>] [--url <trigger URL>]",
		Short:   "Print the headers a sender would send (HMAC preset or custom, token, JWT), ready for curl",
		Long:    signLong,
		Example: signExample,
		Args:    cobra.MaximumNArgs(1),
	}
	fl := cmd.Flags()
	fl.SortFlags = false

	fl.StringVar(&f.preset, "preset", "", "HMAC preset: "+strings.Join(validators.PresetNames(), ", ")+"; or Ed25519: "+strings.Join(signEd25519Presets, ", ")+" (the secret is then the private key); also accepted as the first argument")
	fl.StringVar(&f.header, "header", "", "HMAC: header carrying the signature (overrides the preset's)")
	fl.StringVar(&f.query, "query", "", "HMAC: query parameter carrying the signature instead of a header (needs --url)")
	fl.StringVar(&f.algorithm, "algorithm", "", "HMAC: sha1, sha256 (default) or sha512")
	fl.StringVar(&f.encoding, "encoding", "", "HMAC: signature encoding hex (default), base64 or base64url")
	fl.StringVar(&f.prefix, "prefix", "", `HMAC: text before the signature, e.g. "sha256=" ("" removes a preset's)`)
	fl.StringVar(&f.message, "message", "", "HMAC: signed-string template: {body} {timestamp} {id} {header.NAME} {url} (default {body})")
	fl.StringVar(&f.tsHeader, "timestamp-header", "", "HMAC: header carrying the signed {timestamp}")
	fl.StringVar(&f.tsQuery, "timestamp-query", "", "HMAC: query parameter carrying the signed {timestamp} (needs --url)")
	fl.StringVar(&f.tsField, "timestamp-field", "", "HMAC: body field holding the signed timestamp (you write it into the body)")
	fl.StringVar(&f.tsFormat, "timestamp-format", "", "HMAC: unix (default), unix_ms or rfc3339")
	fl.StringVar(&f.idHeader, "id-header", "", "HMAC: header carrying the signed {id}")
	fl.StringVar(&f.idQuery, "id-query", "", "HMAC: query parameter carrying the signed {id} (needs --url)")
	fl.StringVar(&f.idField, "id-field", "", "HMAC: body field holding the signed {id} (you write it into the body)")
	fl.StringVar(&f.id, "id", "", "HMAC: value of {id} (default: a random msg_... id)")
	fl.StringVar(&f.secretEncoding, "secret-encoding", "", "how the secret becomes key bytes: raw, base64, hex or whsec (default: the preset's, else raw)")

	fl.StringVar(&f.secret, "secret", "", "the secret itself: AVOID, it lands in shell history and the process list; use --secret-env or --secret-file")
	fl.StringVar(&f.secretEnv, "secret-env", "", "name of the environment variable holding the secret (preferred)")
	fl.StringVar(&f.secretFile, "secret-file", "", "file holding the secret (one trailing newline is ignored, as with {file.*})")

	fl.StringVar(&f.body, "body", "", "the request body, signed byte for byte")
	fl.StringVar(&f.bodyFile, "body-file", "", `file holding the request body ("-": standard input)`)
	fl.StringVar(&f.rawURL, "url", "", "the trigger URL: used in the curl command and for {url}")
	fl.StringArrayVarP(&f.addHeaders, "add-header", "H", nil, `extra header to send (and sign, with {header.NAME}), "Name: value"; repeatable. Content-Type defaults to application/json for a JSON body`)
	fl.StringVar(&f.at, "time", "", "signing time instead of now: unix seconds or RFC 3339 (to test a receiver's tolerance)")
	fl.BoolVar(&f.curl, "curl", false, "print a curl command (default on when --url is given)")

	fl.BoolVar(&f.token, "token", false, "token mode: print the header webhook_token checks")
	fl.StringVar(&f.tokenHeader, "token-header", "", "token: header carrying the token (default Authorization)")
	fl.StringVar(&f.tokenQuery, "token-query", "", "token: query parameter carrying the token instead (needs --url)")
	fl.StringVar(&f.tokenPrefix, "token-prefix", "", `token: text before the token (default "Bearer " for Authorization, else none)`)

	fl.BoolVar(&f.jwtMode, "jwt", false, "JWT mode: mint a token and print Authorization: Bearer <jwt>")
	fl.StringVar(&f.jwtAlg, "jwt-alg", "", "JWT: HS256/384/512 (with the secret), RS256/384/512, PS256/384/512, ES256/384/512 or EdDSA (with --jwt-key-file); default from the key")
	fl.StringVar(&f.jwtKeyFile, "jwt-key-file", "", "JWT: PEM private key (PKCS#8, PKCS#1 RSA or SEC 1 EC) for the asymmetric algorithms")
	fl.StringVar(&f.jwtKid, "jwt-kid", "", "JWT: key id (kid header), for receivers using a JWKS")
	fl.StringArrayVar(&f.claims, "claim", nil, "JWT: claim name=value (a string claim); repeatable")
	fl.StringVar(&f.issuer, "issuer", "", "JWT: iss claim")
	fl.StringArrayVar(&f.audience, "audience", nil, "JWT: aud claim; repeatable")
	fl.StringVar(&f.subject, "subject", "", "JWT: sub claim")
	fl.DurationVar(&f.ttl, "ttl", 5*time.Minute, "JWT: lifetime: exp = iat + ttl")

	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 1 {
			// `caddy valohai sign discord` is `--preset discord`.
			if f.preset != "" && !strings.EqualFold(f.preset, args[0]) {
				return fmt.Errorf("the preset is given twice (%q and --preset %q): give it once", args[0], f.preset)
			}
			f.preset = args[0]
		}
		return runSign(cmd, f)
	}
	return cmd
}

// signOutput is what every mode produces: headers to send, the URL to send
// them to, and notes for the person sending.
type signOutput struct {
	header http.Header
	url    string
	notes  []string
}

func runSign(cmd *cobra.Command, f *signFlags) error {
	fl := cmd.Flags()
	if f.token && f.jwtMode {
		return errors.New("--token and --jwt are different modes: use one")
	}
	mode, foreign := "HMAC", [][]string{signTokenFlags, signJWTFlags}
	edPreset := signEd25519Preset(f.preset)
	switch {
	case edPreset != "" && (f.token || f.jwtMode):
		return fmt.Errorf("--preset %s signs with an Ed25519 private key: it does not combine with --token or --jwt", f.preset)
	case edPreset != "":
		mode, foreign = "--preset "+f.preset, [][]string{signEd25519Foreign, signTokenFlags, signJWTFlags}
	case f.token:
		mode, foreign = "--token", [][]string{signHMACFlags, signJWTFlags}
	case f.jwtMode:
		mode, foreign = "--jwt", [][]string{signHMACFlags, signTokenFlags}
	}
	for _, group := range foreign {
		for _, name := range group {
			if fl.Changed(name) {
				return fmt.Errorf("--%s does not apply in %s mode: %s", name, mode, signModeHint(name))
			}
		}
	}
	if f.token && fl.Changed("secret-encoding") {
		return errors.New("--secret-encoding does not apply in --token mode: webhook_token compares the token as it is")
	}

	now := time.Now()
	if f.at != "" {
		t, err := parseSignTime(f.at)
		if err != nil {
			return err
		}
		now = t
	}
	if f.rawURL != "" {
		if u, err := url.Parse(f.rawURL); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return errors.New("--url: give the trigger's absolute http:// or https:// URL, e.g. https://hooks.example.com/github")
		}
	}
	wantCurl := f.rawURL != ""
	if fl.Changed("curl") {
		wantCurl = f.curl
	}
	if wantCurl && f.rawURL == "" {
		return errors.New("--curl needs --url <trigger URL>")
	}
	extra, err := parseSignAddHeaders(f.addHeaders)
	if err != nil {
		return err
	}

	body, haveBody, err := readSignBody(cmd, f)
	if err != nil {
		return err
	}
	if haveBody && extra.Get("Content-Type") == "" {
		extra.Set("Content-Type", signContentType(body, f.preset))
	}

	var out *signOutput
	switch {
	case f.token:
		out, err = signTokenMode(f, extra)
	case f.jwtMode:
		out, err = signJWTMode(f, extra, now)
	case edPreset != "":
		if !haveBody {
			return errors.New("--preset " + f.preset + " signs a body: give it with --body '<text>' or --body-file <path>")
		}
		var at time.Time
		if fl.Changed("time") {
			at = now
		}
		out, err = signEd25519Mode(f, edPreset, extra, body, at)
	default:
		if !haveBody {
			return errors.New("HMAC mode signs a body: give it with --body '<text>' or --body-file <path> (--body '' for an empty body)")
		}
		var at time.Time
		if fl.Changed("time") {
			at = now
		}
		out, err = signHMACMode(f, fl.Changed("prefix"), extra, body, at)
	}
	if err != nil {
		return err
	}
	if f.secret != "" {
		out.notes = append(out.notes, "--secret puts the secret into your shell history and the process list: prefer --secret-env or --secret-file")
	}

	w := cmd.OutOrStdout()
	var buf bytes.Buffer
	names := make([]string, 0, len(out.header))
	for name := range out.header {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, v := range out.header[name] {
			fmt.Fprintf(&buf, "%s: %s\n", name, v)
		}
	}
	if wantCurl {
		line, err := signCurlCommand(out.url, names, out.header, f, body, haveBody)
		if err != nil {
			return err
		}
		if buf.Len() > 0 {
			buf.WriteString("\n")
		}
		buf.WriteString(line + "\n")
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return err
	}
	for _, n := range out.notes {
		fmt.Fprintf(cmd.ErrOrStderr(), "note: %s\n", n)
	}
	return nil
}

// signModeHint says which mode a flag belongs to.
func signModeHint(name string) string {
	for _, n := range signTokenFlags {
		if n == name {
			return "it is a --token flag"
		}
	}
	for _, n := range signJWTFlags {
		if n == name {
			return "it is a --jwt flag"
		}
	}
	return "it is an HMAC flag (the mode without --token or --jwt)"
}

// signHMACMode builds the webhook_hmac configuration the flags describe, as
// the Caddyfile would (preset first, then each field overriding it), and
// signs the body with it, at time at (the current time when zero).
func signHMACMode(f *signFlags, prefixSet bool, extra http.Header, body []byte, at time.Time) (*signOutput, error) {
	var h validators.HMAC
	if f.preset != "" {
		p, err := validators.Preset(f.preset)
		if err != nil {
			return nil, errors.New(strings.Replace(err.Error(), "configure header, algorithm, encoding and message yourself", "give --header, --algorithm, --encoding and --message yourself", 1))
		}
		h = p
	}
	switch {
	case f.header != "" && f.query != "":
		return nil, errors.New("use only one of --header and --query for the signature")
	case f.header != "":
		h.Signature = validators.Source{Kind: validators.SourceHeader, Name: textproto.CanonicalMIMEHeaderKey(f.header)}
	case f.query != "":
		h.Signature = validators.Source{Kind: validators.SourceQuery, Name: f.query}
	case f.preset == "":
		return nil, errors.New("where does the signature go? give --preset <name> (" + strings.Join(validators.PresetNames(), ", ") + ") or --header <name>")
	}
	if f.algorithm != "" {
		h.Algorithm = f.algorithm
	}
	if f.encoding != "" {
		h.Encoding = f.encoding
	}
	if prefixSet {
		h.Prefix = f.prefix
	}
	if f.message != "" {
		h.Message = f.message
	}
	ts, err := signSourceFlags("timestamp", f.tsHeader, f.tsQuery, f.tsField)
	if err != nil {
		return nil, err
	}
	if ts != nil {
		h.Timestamp = &validators.TimestampSource{Source: *ts}
	}
	if f.tsFormat != "" {
		if h.Timestamp == nil {
			return nil, errors.New("--timestamp-format needs a timestamp: add --timestamp-header <name> (or --timestamp-query / --timestamp-field)")
		}
		if h.Timestamp.Format, err = validators.ParseTimestampFormat(f.tsFormat); err != nil {
			return nil, fmt.Errorf("--timestamp-format: %v", err)
		}
	}
	id, err := signSourceFlags("id", f.idHeader, f.idQuery, f.idField)
	if err != nil {
		return nil, err
	}
	if id != nil {
		h.ID = id
	}
	if f.secretEncoding != "" {
		h.SecretEncoding = f.secretEncoding
	}
	secret, err := readSignSecret(f)
	if err != nil {
		return nil, err
	}
	if err := h.AddSecret(secret); err != nil {
		return nil, fmt.Errorf("the secret: %v", err)
	}
	if err := h.Validate(); err != nil {
		return nil, err
	}
	s, err := h.Sign(body, validators.SignOptions{Now: at, ID: f.id, URL: f.rawURL, Header: extra})
	if err != nil {
		return nil, err
	}
	u := s.URL
	if u == "" {
		u = f.rawURL
	}
	return &signOutput{header: s.Header, url: u, notes: s.Notes}, nil
}

// signSourceFlags reads the header/query/field flag triple of a value.
func signSourceFlags(what, header, query, field string) (*validators.Source, error) {
	var src *validators.Source
	for _, c := range []struct {
		kind validators.SourceKind
		name string
	}{{validators.SourceHeader, header}, {validators.SourceQuery, query}, {validators.SourceField, field}} {
		if c.name == "" {
			continue
		}
		if src != nil {
			return nil, fmt.Errorf("use only one of --%[1]s-header, --%[1]s-query and --%[1]s-field", what)
		}
		s, err := validators.ParseSource(string(c.kind), c.name)
		if err != nil {
			return nil, fmt.Errorf("--%s-%s: %v", what, c.kind, err)
		}
		src = &s
	}
	return src, nil
}

// signTokenMode prints the credential webhook_token checks.
func signTokenMode(f *signFlags, extra http.Header) (*signOutput, error) {
	if f.tokenHeader != "" && f.tokenQuery != "" {
		return nil, errors.New("use only one of --token-header and --token-query")
	}
	secret, err := readSignSecret(f)
	if err != nil {
		return nil, err
	}
	out := &signOutput{header: extra, url: f.rawURL}
	if f.tokenQuery != "" {
		if f.rawURL == "" {
			return nil, fmt.Errorf("--token-query %s puts the token in the URL: give --url <trigger URL>", f.tokenQuery)
		}
		u, err := url.Parse(f.rawURL)
		if err != nil {
			return nil, errors.New("--url: not an absolute http:// or https:// URL")
		}
		q := u.Query()
		q.Set(f.tokenQuery, f.tokenPrefix+secret)
		u.RawQuery = q.Encode()
		out.url = u.String()
		return out, nil
	}
	name := "Authorization"
	if f.tokenHeader != "" {
		name = textproto.CanonicalMIMEHeaderKey(f.tokenHeader)
	}
	prefix := f.tokenPrefix
	if f.tokenPrefix == "" && name == "Authorization" {
		prefix = "Bearer "
	}
	out.header.Set(name, prefix+secret)
	return out, nil
}

// signJWTMode mints a JWT with iat = now and exp = now + ttl.
func signJWTMode(f *signFlags, extra http.Header, now time.Time) (*signOutput, error) {
	if f.ttl <= 0 {
		return nil, fmt.Errorf("--ttl %s: use a positive duration such as 5m (webhook_jwt requires exp)", f.ttl)
	}
	haveSecret := f.secret != "" || f.secretEnv != "" || f.secretFile != ""
	var key any
	alg := strings.TrimSpace(f.jwtAlg)
	if alg != "" {
		canon, err := validators.CanonicalJWTAlgorithm(alg)
		if err != nil {
			return nil, fmt.Errorf("--jwt-alg %q is not supported: use one of %s", f.jwtAlg, strings.Join(validators.JWTAlgorithms(), ", "))
		}
		alg = canon
	}
	switch {
	case haveSecret && f.jwtKeyFile != "":
		return nil, errors.New("give either a secret (HS256/384/512) or --jwt-key-file (asymmetric), not both")
	case f.jwtKeyFile != "":
		priv, err := readSignPrivateKey(f.jwtKeyFile)
		if err != nil {
			return nil, err
		}
		if alg, err = signCheckJWTKey(alg, priv); err != nil {
			return nil, err
		}
		key = priv
	case haveSecret:
		hs := validators.JWTKeyAlgorithms([]byte(nil))
		if alg == "" {
			alg = hs[0]
		}
		if !slices.Contains(hs, alg) {
			return nil, fmt.Errorf("--jwt-alg %s signs with a private key: give --jwt-key-file <PEM>, or use %s with the secret", alg, strings.Join(hs, ", "))
		}
		s, err := readSignSecret(f)
		if err != nil {
			return nil, err
		}
		b, err := validators.DecodeSecret(s, f.secretEncoding)
		if err != nil {
			return nil, fmt.Errorf("the secret: %v", err)
		}
		if len(b) < validators.MinJWTSecretBytes {
			return nil, fmt.Errorf("the secret is %d bytes: webhook_jwt refuses HMAC secrets under %d bytes (RFC 7518 §3.2); generate one with `openssl rand -base64 48`", len(b), validators.MinJWTSecretBytes)
		}
		key = b
	default:
		return nil, errors.New("--jwt needs a key: --secret-env <VAR> / --secret-file <path> for HS256, or --jwt-key-file <PEM private key> for RS256, ES256 or EdDSA")
	}

	claims := jwt.MapClaims{}
	for _, c := range f.claims {
		name, value, ok := strings.Cut(c, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--claim %q: use name=value, e.g. --claim repository=org/repo", c)
		}
		switch name {
		case "iat", "exp":
			return nil, fmt.Errorf("--claim %s: iat and exp are set from --time and --ttl", name)
		case "iss", "aud", "sub":
			return nil, fmt.Errorf("--claim %s: use --issuer, --audience or --subject", name)
		}
		claims[name] = value
	}
	claims["iat"] = now.Unix()
	claims["exp"] = now.Add(f.ttl).Unix()
	if f.issuer != "" {
		claims["iss"] = f.issuer
	}
	switch len(f.audience) {
	case 0:
	case 1:
		claims["aud"] = f.audience[0]
	default:
		claims["aud"] = f.audience
	}
	if f.subject != "" {
		claims["sub"] = f.subject
	}
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(alg), claims)
	if f.jwtKid != "" {
		tok.Header["kid"] = f.jwtKid
	}
	signed, err := tok.SignedString(key)
	if err != nil {
		return nil, fmt.Errorf("signing the JWT with %s: %v", alg, err)
	}
	extra.Set("Authorization", "Bearer "+signed)
	return &signOutput{header: extra, url: f.rawURL}, nil
}

// readSignPrivateKey reads the first private key of a PEM file. Errors name
// the file, never its content.
func readSignPrivateKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--jwt-key-file: %v", err)
	}
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("--jwt-key-file %s: no PEM private key found (want a BEGIN PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block)", path)
		}
		if _, encrypted := block.Headers["Proc-Type"]; encrypted || block.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, fmt.Errorf("--jwt-key-file %s: the key is encrypted: decrypt it first, e.g. openssl pkey -in %s -out plain.pem", path, path)
		}
		var key any
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			continue // EC PARAMETERS, certificates, public keys
		}
		if err != nil {
			return nil, fmt.Errorf("--jwt-key-file %s: the %s block does not parse", path, block.Type)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("--jwt-key-file %s: unsupported key type %T: use RSA, ECDSA or Ed25519", path, key)
		}
		return signer, nil
	}
}

// signCheckJWTKey returns the algorithm to sign with (alg, or when empty
// the key's usual one) after the checks webhook_jwt makes of the public
// half: a key or algorithm the receiver would refuse is an error now, not
// a 400 later.
func signCheckJWTKey(alg string, key crypto.Signer) (string, error) {
	pub := key.Public()
	if err := validators.CheckJWTPublicKey(pub); err != nil {
		return "", fmt.Errorf("--jwt-key-file: webhook_jwt would refuse this key: %v", err)
	}
	fits := validators.JWTKeyAlgorithms(pub)
	if alg == "" {
		return fits[0], nil
	}
	if err := validators.CheckJWTKeyAlgorithm(pub, alg); err != nil {
		return "", fmt.Errorf("--jwt-alg %s: %v: use %s", alg, err, strings.Join(fits, " or "))
	}
	return alg, nil
}

// readSignSecret reads the secret from exactly one of --secret,
// --secret-env and --secret-file. Errors name the variable or file, never
// the value.
func readSignSecret(f *signFlags) (string, error) {
	n := 0
	for _, s := range []string{f.secret, f.secretEnv, f.secretFile} {
		if s != "" {
			n++
		}
	}
	switch {
	case n > 1:
		return "", errors.New("give the secret once: one of --secret-env, --secret-file or --secret")
	case n == 0:
		return "", errors.New("no secret: give --secret-env <VAR> or --secret-file <path> (or --secret, which lands in your shell history)")
	}
	var s string
	switch {
	case f.secretEnv != "":
		s = os.Getenv(f.secretEnv)
		if s == "" {
			return "", fmt.Errorf("--secret-env %s: the environment variable is not set or empty", f.secretEnv)
		}
	case f.secretFile != "":
		b, err := os.ReadFile(f.secretFile)
		if err != nil {
			return "", fmt.Errorf("--secret-file: %v", err)
		}
		// As Caddy's {file.*} placeholder reads it, so that one file
		// serves both the receiver's config and this command.
		b = bytes.TrimSuffix(b, []byte("\n"))
		b = bytes.TrimSuffix(b, []byte("\r"))
		if len(b) == 0 {
			return "", fmt.Errorf("--secret-file %s: the file is empty", f.secretFile)
		}
		s = string(b)
	default:
		s = f.secret
	}
	return s, nil
}

// readSignBody reads --body or --body-file ("-" is standard input).
func readSignBody(cmd *cobra.Command, f *signFlags) ([]byte, bool, error) {
	bodySet := cmd.Flags().Changed("body")
	switch {
	case bodySet && f.bodyFile != "":
		return nil, false, errors.New("give the body once: --body or --body-file")
	case bodySet:
		return []byte(f.body), true, nil
	case f.bodyFile == "-":
		b, err := io.ReadAll(cmd.InOrStdin())
		if err != nil {
			return nil, false, fmt.Errorf("reading the body from standard input: %v", err)
		}
		return b, true, nil
	case f.bodyFile != "":
		b, err := os.ReadFile(f.bodyFile)
		if err != nil {
			return nil, false, fmt.Errorf("--body-file: %v", err)
		}
		return b, true, nil
	}
	return nil, false, nil
}

// signContentType is what the sender would declare: JSON when the body
// is JSON, a form for Slack (whose slash commands are forms), else bytes.
// Receivers read fields ({webhook.json.*}, field sources) by this header.
func signContentType(body []byte, preset string) string {
	switch {
	case len(body) > 0 && json.Valid(body):
		return "application/json"
	case strings.EqualFold(preset, "slack"):
		return "application/x-www-form-urlencoded"
	default:
		return "application/octet-stream"
	}
}

// parseSignAddHeaders reads repeated "Name: value" flags.
func parseSignAddHeaders(values []string) (http.Header, error) {
	h := http.Header{}
	for _, v := range values {
		name, value, ok := strings.Cut(v, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return nil, fmt.Errorf("--add-header %q: use \"Name: value\"", v)
		}
		value = strings.TrimSpace(value)
		if strings.ContainsAny(value, "\r\n\x00") {
			return nil, fmt.Errorf("--add-header %s: the value contains a line break or NUL, which a header cannot carry", name)
		}
		h.Add(name, value)
	}
	return h, nil
}

// parseSignTime reads --time: unix seconds or RFC 3339.
func parseSignTime(v string) (time.Time, error) {
	if t, err := validators.TimestampUnix.Parse(v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--time %q: use unix seconds (1700000000) or RFC 3339 (2024-05-01T12:00:00Z)", v)
}

// signCurlCommand writes a POSIX shell command that sends exactly these
// headers and bytes: every argument single-quoted, the body either read
// by curl from the file (--data-binary @file, sent byte for byte) or given
// inline with --data-raw (no @file interpretation).
func signCurlCommand(rawURL string, names []string, header http.Header, f *signFlags, body []byte, haveBody bool) (string, error) {
	args := []string{"curl -sS -i"}
	if !haveBody {
		args[0] += " -X POST"
	}
	args[0] += " " + signShellQuote(rawURL)
	for _, name := range names {
		for _, v := range header[name] {
			args = append(args, "-H "+signShellQuote(name+": "+v))
		}
	}
	switch {
	case !haveBody:
	case f.bodyFile != "" && f.bodyFile != "-":
		args = append(args, "--data-binary @"+signShellQuote(f.bodyFile))
	case bytes.IndexByte(body, 0) >= 0:
		return "", errors.New("the body contains NUL bytes, which a shell argument cannot carry: give it with --body-file <path> for the curl command")
	default:
		args = append(args, "--data-raw "+signShellQuote(string(body)))
	}
	return strings.Join(args, " \\\n  "), nil
}

// signShellQuote quotes s for a POSIX shell: inside single quotes nothing is
// special, and a single quote is written as '\”.
func signShellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// The Ed25519 presets of `caddy valohai sign`, and the webhook_ed25519
// preset each one signs for.
var (
	signEd25519Presets = []string{"discord", "standard-v1a"}
	// signEd25519Foreign are the HMAC flags that have no meaning with an
	// Ed25519 preset, whose header layout is fixed.
	signEd25519Foreign = []string{"header", "query", "algorithm", "encoding", "prefix", "message", "timestamp-header", "timestamp-query", "timestamp-field", "timestamp-format", "id-header", "id-query", "id-field", "secret-encoding"}
)

// signEd25519Preset maps a --preset value to its webhook_ed25519 preset,
// or "" when it is not an Ed25519 one.
func signEd25519Preset(name string) string {
	switch strings.ToLower(name) {
	case "discord":
		return "discord"
	case "standard-v1a", "standard_v1a", "v1a":
		return "standard"
	}
	return ""
}

// signEd25519Mode signs body as Discord or a Standard Webhooks v1a sender
// does, with the private key given as the secret, and notes the public key
// to configure in webhook_ed25519 (a public key is not secret).
func signEd25519Mode(f *signFlags, preset string, extra http.Header, body []byte, at time.Time) (*signOutput, error) {
	e, err := validators.Ed25519Preset(preset)
	if err != nil {
		return nil, err
	}
	if f.id != "" && e.ID == nil {
		return nil, fmt.Errorf("--id: --preset %s signs no id", f.preset)
	}
	s, err := readSignSecret(f)
	if err != nil {
		return nil, errors.New(strings.Replace(err.Error(), "no secret:", "no private key:", 1))
	}
	priv, err := validators.ParseEd25519PrivateKey(s)
	if err != nil {
		return nil, fmt.Errorf("the private key: %v (make a test key with: openssl genpkey -algorithm ed25519 -out sender.pem)", err)
	}
	signed, err := e.Sign(priv, body, validators.SignOptions{Now: at, ID: f.id, URL: f.rawURL, Header: extra})
	if err != nil {
		return nil, err
	}
	notes := append(signed.Notes, "the receiver verifies with the public key "+e.FormatEd25519PublicKey(priv.Public().(ed25519.PublicKey))+" (webhook_ed25519 "+preset+" <public key>)")
	return &signOutput{header: signed.Header, url: signed.URL, notes: notes}, nil
}
