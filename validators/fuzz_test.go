package validators

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

const (
	fuzzSecret = "fuzz-secret-4d1a"
	fuzzBody   = `{"event":"push","n":1}`
	fuzzID     = "msg_fuzz"
)

// FuzzHMACSignatureHeader feeds arbitrary signature header values to the
// three schemes, and to plain SHA-512 in base64 (the widest MAC: 64 bytes,
// 86 or 88 characters). None may panic, and a value is accepted only if it holds
// the signature the secret really makes: an attacker's guess never passes.
func FuzzHMACSignatureHeader(f *testing.F) {
	ts := strconv.FormatInt(testNow.Unix(), 10)
	plainSig := hexSHA256(fuzzSecret, fuzzBody)
	stripeSig := hexSHA256(fuzzSecret, ts, ".", fuzzBody)
	standardSig := base64.StdEncoding.EncodeToString(macOf(sha256.New, fuzzSecret, fuzzID, ".", ts, ".", fuzzBody))
	sha512Sig := base64.StdEncoding.EncodeToString(macOf(sha512.New, fuzzSecret, fuzzBody))
	seeds := []struct {
		scheme uint8
		header string
	}{
		{0, "sha256=" + plainSig},
		{0, "sha256=" + strings.ToUpper(plainSig) + ",sha256=00"},
		{0, "sha256=,,,sha256=zz"},
		{0, "sha1=" + plainSig},
		{1, "t=" + ts + ",v1=" + stripeSig + ",v0=" + stripeSig},
		{1, "t=" + ts + ",v1=" + strings.Repeat("a", 64)},
		{1, "t=,v1=,=,,t"},
		{1, "t=99999999999999999999,v1=" + stripeSig},
		{2, "v1," + standardSig + " v1a,xyz"},
		{2, "v1," + strings.TrimRight(standardSig, "=")},
		{2, "v1, v1,, ,v1 v2,abc"},
		{0, ""},
		{1, "\x00\xff"},
		{2, strings.Repeat("v1,AAAA ", 40)},
		{3, sha512Sig},
		{3, strings.TrimRight(sha512Sig, "=")},
		{3, strings.Repeat("A", 87) + "B"}, // 88 characters, 66 bytes: once a decoder overrun
	}
	for _, s := range seeds {
		f.Add(s.scheme, s.header)
	}

	plain := githubHMAC(f, fuzzSecret)
	stripe := stripeHMAC(f, fuzzSecret)
	id := Source{Kind: SourceHeader, Name: "Webhook-Id"}
	standard := prepared(f, HMAC{
		Secrets:   secretsOf(fuzzSecret),
		Signature: Source{Kind: SourceHeader, Name: "Webhook-Signature"},
		Encoding:  "base64",
		Message:   "{id}.{timestamp}.{body}",
		Timestamp: &TimestampSource{Source: Source{Kind: SourceHeader, Name: "Webhook-Timestamp"}},
		ID:        &id,
		Scheme:    SchemeStandard,
	})

	wide := prepared(f, HMAC{
		Secrets:   secretsOf(fuzzSecret),
		Signature: Source{Kind: SourceHeader, Name: "X-Signature"},
		Algorithm: "sha512",
		Encoding:  "base64",
	})

	f.Fuzz(func(t *testing.T, scheme uint8, header string) {
		r := &Request{Body: []byte(fuzzBody), Now: clockAt(testNow)}
		var err error
		var mustContain func() bool
		switch scheme % 4 {
		case 0:
			r.Header = http.Header{"X-Hub-Signature-256": {header}}
			err = plain.Verify(r)
			mustContain = func() bool { return strings.Contains(strings.ToLower(header), plainSig) }
		case 1:
			r.Header = http.Header{"Stripe-Signature": {header}}
			err = stripe.Verify(r)
			mustContain = func() bool {
				// The accepted t is whatever the header says; the header
				// must then hold the MAC of exactly that t.
				for _, item := range strings.Split(header, ",") {
					if v, ok := strings.CutPrefix(strings.TrimSpace(item), "t="); ok {
						want := hexSHA256(fuzzSecret, v, ".", fuzzBody)
						return strings.Contains(strings.ToLower(header), want)
					}
				}
				return false
			}
		case 3:
			// SHA-512 in base64: 64-byte MACs, 86 or 88 characters.
			r.Header = http.Header{"X-Signature": {header}}
			err = wide.Verify(r)
			mustContain = func() bool { return strings.Contains(header, strings.TrimRight(sha512Sig, "=")) }
		default:
			r.Header = http.Header{"Webhook-Signature": {header}, "Webhook-Id": {fuzzID}, "Webhook-Timestamp": {ts}}
			err = standard.Verify(r)
			mustContain = func() bool { return strings.Contains(header, strings.TrimRight(standardSig, "=")) }
		}
		if err == nil {
			if !mustContain() {
				t.Fatalf("scheme %d accepted %q, which does not hold the real signature", scheme%4, header)
			}
			return
		}
		if _, ok := AsRejection(err); !ok {
			t.Fatalf("error %v is not a *Rejection", err)
		}
		assertNoSecret(t, err, fuzzSecret, plainSig, stripeSig, standardSig, sha512Sig)
	})
}

// FuzzTokenSource presents arbitrary headers, query values and bodies to
// token conditions of every source kind and prefix mode. None may panic,
// and a request passes only when the value it presents is the secret,
// with at most the configured prefix in front.
func FuzzTokenSource(f *testing.F) {
	f.Add(uint8(0), "Bearer "+tokenSecret, "", []byte(nil), "")
	f.Add(uint8(3), "bearer  "+tokenSecret, "", []byte(nil), "")
	f.Add(uint8(6), "secret="+tokenSecret, "", []byte(nil), "")
	f.Add(uint8(1), "", tokenSecret, []byte(nil), "")
	f.Add(uint8(2), "", "", []byte(`{"token":"`+tokenSecret+`"}`), "application/json")
	f.Add(uint8(5), "", "", []byte("token=Bearer+"+tokenSecret), "application/x-www-form-urlencoded; charset=utf-8")
	f.Add(uint8(8), "", "", []byte(`{"token":"secret=`+tokenSecret+`","token":"x"}`), "")
	f.Add(uint8(2), "", "", []byte(`{"token":{"a":1}`), "text/plain")
	f.Add(uint8(5), "", "", []byte("token=%zz&token="+tokenSecret), "application/x-www-form-urlencoded")

	type mode struct {
		prefix   string
		optional bool
	}
	modes := []mode{{"", false}, {"Bearer ", true}, {"secret=", false}}
	kinds := []SourceKind{SourceHeader, SourceQuery, SourceField}
	tokens := make([]*Token, 0, 9)
	for _, m := range modes {
		for _, k := range kinds {
			tok := &Token{Secrets: secretsOf(tokenSecret, tokenSecretNext), Source: Source{Kind: k, Name: "token"}, Prefix: m.prefix, OptionalPrefix: m.optional}
			if k == SourceHeader {
				tok.Source.Name = "Token"
			}
			if err := tok.Validate(); err != nil {
				f.Fatal(err)
			}
			tokens = append(tokens, tok)
		}
	}

	f.Fuzz(func(t *testing.T, sel uint8, header, query string, body []byte, contentType string) {
		tok := tokens[int(sel)%len(tokens)]
		r := &Request{
			Header: http.Header{"Token": {header}, "Content-Type": {contentType}},
			Query:  url.Values{"token": {query}},
			Body:   body,
		}
		err := tok.Verify(r)
		if err != nil {
			if _, ok := AsRejection(err); !ok {
				t.Fatalf("error %v is not a *Rejection", err)
			}
			assertNoSecret(t, err, tokenSecret, tokenSecretNext)
			return
		}
		v, _ := tok.Source.Get(r)
		for _, s := range []string{tokenSecret, tokenSecretNext} {
			head, ok := strings.CutSuffix(v, s)
			if !ok {
				continue
			}
			switch {
			case head == "" && (tok.Prefix == "" || tok.OptionalPrefix):
				return
			case head != "" && tok.Prefix != "" &&
				strings.EqualFold(strings.TrimRight(head, " "), strings.TrimRight(tok.Prefix, " ")) &&
				strings.HasPrefix(strings.ToLower(head), strings.ToLower(tok.Prefix)):
				return
			}
		}
		t.Fatalf("%v accepted %q", tok, v)
	})
}

// FuzzRequestField checks body field extraction against the standard
// library: for a form body, url.ParseQuery; for a JSON object,
// encoding/json, key by key.
func FuzzRequestField(f *testing.F) {
	f.Add([]byte(`{"token":"abc","n":5}`), "application/json", "token")
	f.Add([]byte(`{"a.b":{"c":1},"a":{"b":2}}`), "", "a.b")
	f.Add([]byte(`{"*":1,"?x":2,"#":3,"@this":4,"a|b":5}`), "", "@this")
	f.Add([]byte(`{"k\u0065y":"v"}`), "", "key")
	f.Add([]byte(`{"dup":"first","dup":"last"}`), "", "dup")
	f.Add([]byte(`["token"]`), "", "0")
	f.Add([]byte(`{"token":"x"`), "", "token")
	f.Add([]byte("token=a+b&token=c&x=%41"), "application/x-www-form-urlencoded", "token")
	f.Add([]byte("token=%zz"), "Application/X-WWW-Form-Urlencoded; charset=utf-8", "token")
	f.Add([]byte("a=1;b=2"), "application/x-www-form-urlencoded", "b")

	f.Fuzz(func(t *testing.T, body []byte, contentType, name string) {
		r := &Request{Header: http.Header{"Content-Type": {contentType}}, Body: body}
		got, ok := r.Field(name)
		r.JSON()
		r.JSONPath(name)

		if r.IsForm() {
			vals, err := url.ParseQuery(string(body))
			if err != nil {
				if ok {
					t.Fatalf("field %q of malformed form %q = %q", name, body, got)
				}
				return
			}
			want, has := vals[name]
			if ok != has || (has && got != want[0]) {
				t.Fatalf("form field %q of %q = %q, %t; url.ParseQuery has %q", name, body, got, ok, want)
			}
			return
		}

		if !utf8.Valid(body) || !utf8.ValidString(name) {
			return // encoding/json rewrites invalid UTF-8, so there is nothing exact to compare with
		}
		raw, count, isObject := topLevelMember(body, name)
		if !isObject {
			return
		}
		if rej := r.JSONRejection("t"); rej != nil {
			// A duplicate key anywhere (readers disagree on the winner):
			// the body is refused and no field of it is read.
			if ok {
				t.Fatalf("field %q of refused body %s (%v) = %q", name, body, rej, got)
			}
			return
		}
		if count > 1 {
			t.Fatalf("body %s repeats %q but was not refused", body, name)
		}
		if ok != (count > 0) {
			t.Fatalf("field %q of %s: present=%t, encoding/json finds it %d times", name, body, ok, count)
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			if got != s {
				t.Fatalf("string field %q of %s = %q, encoding/json says %q", name, body, got, s)
			}
		} else if got != string(raw) {
			t.Fatalf("field %q of %s = %q, raw JSON %q", name, body, got, raw)
		}
	})
}

// topLevelMember decodes body as one JSON object with encoding/json and
// returns the raw value of its member name and how often name occurs.
func topLevelMember(body []byte, name string) (raw json.RawMessage, count int, isObject bool) {
	if !json.Valid(body) {
		return nil, 0, false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, 0, false
	}
	for dec.More() {
		keyTok, err := dec.Token()
		if err != nil {
			return nil, 0, false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, 0, false
		}
		if keyTok.(string) == name {
			raw, count = v, count+1
		}
	}
	return raw, count, true
}

// FuzzJSONCheck holds the depth and duplicate-key scan to its promises on
// any input: it never panics and never recurses (10 MB of '[' is among the
// seeds), it refuses exactly the bodies nested deeper than MaxJSONDepth or
// repeating a key, and what it lets through encoding/json also accepts.
func FuzzJSONCheck(f *testing.F) {
	f.Add([]byte(`{"a":[1,2,{"b":null}]}`))
	f.Add([]byte(`{"ref":"refs/heads/evil","ref":"refs/heads/main"}`))
	f.Add([]byte(`{"a":1,"\u0061":2}`))
	f.Add([]byte(strings.Repeat("[", 1000) + strings.Repeat("]", 1000)))
	f.Add([]byte(strings.Repeat("[", 1001) + strings.Repeat("]", 1001)))
	f.Add([]byte(strings.Repeat(`{"a":`, 1001) + "1" + strings.Repeat("}", 1001)))
	f.Add(bytes.Repeat([]byte("["), 10<<20))
	f.Add([]byte(`{"a":1`))
	f.Add([]byte(`  [] x`))
	f.Add([]byte(`{"a":"[[[[","b":"\\\"{{"}`))
	f.Add([]byte(strings.Repeat(`{"a":"[",`, 600) + strings.Repeat(`"b":1}`, 600)))
	f.Add([]byte(`{"a":"` + strings.Repeat("[", 2000) + `","a":1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		err := checkJSON(body)
		// The fast path must agree with the token-by-token scan, which
		// reports whichever problem comes first.
		if scan := scanJSON(body); scan != err {
			t.Fatalf("checkJSON says %v, the token scan %v, for %q", err, scan, body)
		}
		depth, maxDepth := 0, 0
		inString, escaped := false, false
		for _, c := range body {
			switch {
			case inString && escaped:
				escaped = false
			case inString && c == '\\':
				escaped = true
			case inString && c == '"':
				inString = false
			case inString:
			case c == '"':
				inString = true
			case c == '[' || c == '{':
				depth++
				maxDepth = max(maxDepth, depth)
			case c == ']' || c == '}':
				depth--
			}
		}
		switch err {
		case nil:
			if !json.Valid(body) {
				t.Fatalf("checkJSON accepted %q, which encoding/json refuses", body)
			}
			if maxDepth > MaxJSONDepth {
				t.Fatalf("checkJSON accepted a body nested %d deep", maxDepth)
			}
			// UseNumber: a number beyond float64 (the fuzzer's 1E700) is
			// valid JSON that a float64 decoder refuses.
			var v any
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.UseNumber()
			if dupErr := dec.Decode(&v); dupErr != nil {
				t.Fatalf("accepted body does not decode: %v", dupErr)
			}
		case errJSONTooDeep:
			if maxDepth <= MaxJSONDepth {
				t.Fatalf("checkJSON says too deep for a body nested %d deep: %q", maxDepth, body)
			}
		case errJSONDuplicateKey:
			if json.Valid(body) && maxDepth <= MaxJSONDepth && !hasDuplicateKey(body) {
				t.Fatalf("checkJSON says duplicate key for %q", body)
			}
		}
	})
}

// hasDuplicateKey decodes body with encoding/json, object by object, and
// reports whether one object repeats a key: the reference the scan is held
// to (only for bodies encoding/json can decode without deep recursion).
func hasDuplicateKey(body []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	var walk func() bool
	walk = func() bool {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, _ := dec.Token()
				key, _ := k.(string)
				if seen[key] {
					return true
				}
				seen[key] = true
				if walk() {
					return true
				}
			}
			dec.Token()
		case json.Delim('['):
			for dec.More() {
				if walk() {
					return true
				}
			}
			dec.Token()
		}
		return false
	}
	return walk()
}
