package validators

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// mustSource is ParseSource for tests whose sources are known to be valid.
func mustSource(t testing.TB, kind, name string) Source {
	t.Helper()
	s, err := ParseSource(kind, name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestParseSource(t *testing.T) {
	tests := []struct {
		kind, name string
		want       Source
		wantErr    string
	}{
		{kind: "header", name: "authorization", want: Source{Kind: SourceHeader, Name: "Authorization"}},
		{kind: "HEADER", name: "x-gitlab-token", want: Source{Kind: SourceHeader, Name: "X-Gitlab-Token"}},
		{kind: "query", name: "Token", want: Source{Kind: SourceQuery, Name: "Token"}},
		{kind: "field", name: "token", want: Source{Kind: SourceField, Name: "token"}},
		{kind: "cookie", name: "x", wantErr: "unknown source"},
		{kind: "header", name: "", wantErr: "needs a name"},
	}
	for _, tt := range tests {
		got, err := ParseSource(tt.kind, tt.name)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseSource(%q, %q) error = %v, want %q", tt.kind, tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSource(%q, %q) = %v, %v; want %v", tt.kind, tt.name, got, err, tt.want)
		}
	}
}

func TestSourceGet(t *testing.T) {
	r := &Request{
		Header: http.Header{"X-Token": {"first", "second"}, "X-Empty": {""}},
		Query:  url.Values{"token": {"q1", "q2"}},
		Body:   []byte(`{"token":"from-json","n":5}`),
	}
	tests := []struct {
		src    Source
		want   string
		wantOK bool
	}{
		{Source{Kind: SourceHeader, Name: "X-Token"}, "first", true},
		{Source{Kind: SourceHeader, Name: "x-token"}, "first", true}, // built by hand, not canonical
		{Source{Kind: SourceHeader, Name: "X-Empty"}, "", true},
		{Source{Kind: SourceHeader, Name: "X-Absent"}, "", false},
		{Source{Kind: SourceQuery, Name: "token"}, "q1", true},
		{Source{Kind: SourceQuery, Name: "Token"}, "", false}, // query names are case-sensitive
		{Source{Kind: SourceField, Name: "token"}, "from-json", true},
		{Source{Kind: SourceField, Name: "n"}, "5", true},
		{Source{Kind: SourceField, Name: "absent"}, "", false},
		{Source{Kind: "cookie", Name: "token"}, "", false},
	}
	for _, tt := range tests {
		got, ok := tt.src.Get(r)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("%v.Get = %q, %t; want %q, %t", tt.src, got, ok, tt.want, tt.wantOK)
		}
	}
	// A request without query or headers at all must not panic.
	if _, ok := (Source{Kind: SourceQuery, Name: "x"}).Get(&Request{}); ok {
		t.Error("query on empty request reported present")
	}
	if _, ok := (Source{Kind: SourceHeader, Name: "X"}).Get(&Request{}); ok {
		t.Error("header on empty request reported present")
	}
}

const (
	tokenSecret     = "tok-3f9a1c-current"
	tokenSecretNext = "tok-b71e02-next"
)

func TestTokenVerify(t *testing.T) {
	formHeader := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	jsonHeader := http.Header{"Content-Type": {"application/json"}}
	tests := []struct {
		name    string
		token   Token
		req     *Request
		wantErr string // "" = accepted
	}{
		{
			name:  "header exact",
			token: Token{Source: Source{Kind: SourceHeader, Name: "X-Gitlab-Token"}},
			req:   &Request{Header: http.Header{"X-Gitlab-Token": {tokenSecret}}},
		},
		{
			name:    "header mismatch",
			token:   Token{Source: Source{Kind: SourceHeader, Name: "X-Gitlab-Token"}},
			req:     &Request{Header: http.Header{"X-Gitlab-Token": {"tok-3f9a1c-currenT"}}},
			wantErr: "webhook_token: token mismatch",
		},
		{
			name:    "header longer than secret",
			token:   Token{Source: Source{Kind: SourceHeader, Name: "X-Gitlab-Token"}},
			req:     &Request{Header: http.Header{"X-Gitlab-Token": {tokenSecret + "x"}}},
			wantErr: "webhook_token: token mismatch",
		},
		{
			name:    "header missing",
			token:   Token{Source: Source{Kind: SourceHeader, Name: "X-Gitlab-Token"}},
			req:     &Request{Header: http.Header{}},
			wantErr: "webhook_token: missing token",
		},
		{
			name:    "header empty",
			token:   Token{Source: Source{Kind: SourceHeader, Name: "X-Gitlab-Token"}},
			req:     &Request{Header: http.Header{"X-Gitlab-Token": {""}}},
			wantErr: "webhook_token: missing token",
		},
		{
			name:  "query",
			token: Token{Source: Source{Kind: SourceQuery, Name: "token"}},
			req:   &Request{Query: url.Values{"token": {tokenSecret}}},
		},
		{
			name:    "query mismatch",
			token:   Token{Source: Source{Kind: SourceQuery, Name: "token"}},
			req:     &Request{Query: url.Values{"token": {"nope"}}},
			wantErr: "webhook_token: token mismatch",
		},
		{
			name:  "json field",
			token: Token{Source: Source{Kind: SourceField, Name: "token"}},
			req:   &Request{Header: jsonHeader, Body: []byte(`{"action":"x","token":"` + tokenSecret + `"}`)},
		},
		{
			name:    "json field not a string",
			token:   Token{Source: Source{Kind: SourceField, Name: "token"}},
			req:     &Request{Header: jsonHeader, Body: []byte(`{"token":{"value":"` + tokenSecret + `"}}`)},
			wantErr: "webhook_token: token mismatch",
		},
		{
			name:  "form field",
			token: Token{Source: Source{Kind: SourceField, Name: "token"}},
			req:   &Request{Header: formHeader, Body: []byte("team_id=T1&token=" + url.QueryEscape(tokenSecret) + "&text=hi")},
		},
		{
			name:    "form field missing",
			token:   Token{Source: Source{Kind: SourceField, Name: "token"}},
			req:     &Request{Header: formHeader, Body: []byte("team_id=T1")},
			wantErr: "webhook_token: missing token",
		},
		{
			name:  "prefix stripped",
			token: Token{Source: Source{Kind: SourceHeader, Name: "Authorization"}, Prefix: "secret="},
			req:   &Request{Header: http.Header{"Authorization": {"secret=" + tokenSecret}}},
		},
		{
			name:    "prefix required",
			token:   Token{Source: Source{Kind: SourceHeader, Name: "Authorization"}, Prefix: "secret="},
			req:     &Request{Header: http.Header{"Authorization": {tokenSecret}}},
			wantErr: "webhook_token: missing prefix",
		},
		{
			name:    "prefix only",
			token:   Token{Source: Source{Kind: SourceHeader, Name: "Authorization"}, Prefix: "secret="},
			req:     &Request{Header: http.Header{"Authorization": {"secret="}}},
			wantErr: "webhook_token: missing token",
		},
		{
			name:  "bearer prefix any case and extra spaces",
			token: Token{Source: Source{Kind: SourceHeader, Name: "Authorization"}, Prefix: "Bearer "},
			req:   &Request{Header: http.Header{"Authorization": {"bEARER   " + tokenSecret}}},
		},
		{
			name:  "optional bearer present",
			token: Token{Source: Source{Kind: SourceHeader, Name: "Authorization"}, Prefix: "Bearer ", OptionalPrefix: true},
			req:   &Request{Header: http.Header{"Authorization": {"Bearer " + tokenSecret}}},
		},
		{
			name:  "optional bearer absent",
			token: Token{Source: Source{Kind: SourceHeader, Name: "Authorization"}, Prefix: "Bearer ", OptionalPrefix: true},
			req:   &Request{Header: http.Header{"Authorization": {tokenSecret}}},
		},
		{
			name:    "optional bearer wrong token",
			token:   Token{Source: Source{Kind: SourceHeader, Name: "Authorization"}, Prefix: "Bearer ", OptionalPrefix: true},
			req:     &Request{Header: http.Header{"Authorization": {"Bearer " + tokenSecretNext}}},
			wantErr: "webhook_token: token mismatch",
		},
		{
			name:    "optional bearer with nothing after it",
			token:   Token{Source: Source{Kind: SourceHeader, Name: "Authorization"}, Prefix: "Bearer ", OptionalPrefix: true},
			req:     &Request{Header: http.Header{"Authorization": {"Bearer "}}},
			wantErr: "webhook_token: missing token",
		},
		{
			name:    "other scheme is not the token",
			token:   Token{Source: Source{Kind: SourceHeader, Name: "Authorization"}, Prefix: "Bearer ", OptionalPrefix: true},
			req:     &Request{Header: http.Header{"Authorization": {"Basic " + tokenSecret}}},
			wantErr: "webhook_token: token mismatch",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := tt.token
			tok.Secrets = [][]byte{[]byte(tokenSecret)}
			if err := tok.Validate(); err != nil {
				t.Fatal(err)
			}
			err := tok.Verify(tt.req)
			checkVerdict(t, err, tt.wantErr, DirectiveToken)
			assertNoSecret(t, err, tokenSecret, tokenSecretNext)
		})
	}
}

// checkVerdict asserts that err is nil when wantErr is empty, and
// otherwise a *Rejection of directive whose message is wantErr.
func checkVerdict(t *testing.T, err error, wantErr, directive string) {
	t.Helper()
	if wantErr == "" {
		if err != nil {
			t.Fatalf("rejected: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("accepted, want %q", wantErr)
	}
	rej, ok := AsRejection(err)
	if !ok {
		t.Fatalf("error %v is not a *Rejection", err)
	}
	if rej.Directive != directive || err.Error() != wantErr {
		t.Fatalf("error = %q (directive %q), want %q", err, rej.Directive, wantErr)
	}
}

// assertNoSecret fails when err's message contains any of the secrets.
func assertNoSecret(t *testing.T, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Fatalf("error %q leaks secret material %q", err, s)
		}
	}
}

func TestTokenRotation(t *testing.T) {
	tok := Token{
		Secrets: [][]byte{[]byte(tokenSecret), []byte(tokenSecretNext)},
		Source:  Source{Kind: SourceHeader, Name: "X-Token"},
	}
	if err := tok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, presented := range []string{tokenSecret, tokenSecretNext} {
		if err := tok.Verify(&Request{Header: http.Header{"X-Token": {presented}}}); err != nil {
			t.Errorf("secret %d rejected: %v", len(presented), err)
		}
	}
	err := tok.Verify(&Request{Header: http.Header{"X-Token": {"tok-retired"}}})
	checkVerdict(t, err, "webhook_token: token mismatch", DirectiveToken)
}

func TestTokenValidate(t *testing.T) {
	hdr := Source{Kind: SourceHeader, Name: "X-Token"}
	tests := []struct {
		name    string
		token   Token
		wantErr string
	}{
		{"no secret", Token{Source: hdr}, "webhook_token: no secret configured"},
		{"empty secret", Token{Secrets: [][]byte{[]byte("a"), {}}, Source: hdr}, "webhook_token: secret #2 is empty"},
		{"no source", Token{Secrets: [][]byte{[]byte("a")}}, "webhook_token: no source configured"},
		{"source without name", Token{Secrets: [][]byte{[]byte("a")}, Source: Source{Kind: SourceQuery}}, "webhook_token: source query needs a name"},
		{"unknown source", Token{Secrets: [][]byte{[]byte("a")}, Source: Source{Kind: "cookie", Name: "x"}}, `webhook_token: unknown source "cookie"`},
	}
	for _, tt := range tests {
		err := tt.token.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
			t.Errorf("%s: Validate() = %v, want prefix %q", tt.name, err, tt.wantErr)
		}
	}
}

// A Token used without Validate still verifies correctly, and a bad one
// fails closed instead of letting requests through.
func TestTokenVerifyWithoutValidate(t *testing.T) {
	r := &Request{Header: http.Header{"X-Token": {tokenSecret}}}
	ok := Token{Secrets: [][]byte{[]byte(tokenSecret)}, Source: Source{Kind: SourceHeader, Name: "X-Token"}}
	if err := ok.Verify(r); err != nil {
		t.Fatalf("valid unprepared token rejected: %v", err)
	}
	for _, bad := range []Token{
		{Source: Source{Kind: SourceHeader, Name: "X-Token"}},
		{Secrets: [][]byte{{}}, Source: Source{Kind: SourceHeader, Name: "X-Token"}},
		{Secrets: [][]byte{[]byte(tokenSecret)}},
	} {
		checkVerdict(t, bad.Verify(r), "webhook_token: condition misconfigured", DirectiveToken)
	}
}

func TestTokenStringRedacts(t *testing.T) {
	tok := Token{Secrets: [][]byte{[]byte(tokenSecret)}, Source: Source{Kind: SourceHeader, Name: "X-Token"}}
	for _, s := range []string{tok.String(), sprintAll(tok), sprintAll(&tok)} {
		if strings.Contains(s, tokenSecret) {
			t.Fatalf("%q leaks the secret", s)
		}
	}
}
