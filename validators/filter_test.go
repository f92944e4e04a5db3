package validators

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// filterRequest builds the Request a webhook would become.
func filterRequest(contentType, body string, header http.Header, query string) *Request {
	h := http.Header{}
	for k, v := range header {
		h[http.CanonicalHeaderKey(k)] = v
	}
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	q, _ := url.ParseQuery(query)
	return &Request{Method: http.MethodPost, Host: "hooks.example.com", Path: "/hook", Header: h, Query: q, Body: []byte(body)}
}

func compiledFilter(t testing.TB, expr string) *Filter {
	t.Helper()
	f := &Filter{Expression: expr}
	if err := f.Validate(); err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return f
}

const (
	githubPushMain = `{"ref":"refs/heads/main","repository":{"full_name":"acme/models"},"commits":[{"id":"a1","modified":["models/train.py"]},{"id":"b2","modified":["README.md"]}],"size":2}`
	githubPushDev  = `{"ref":"refs/heads/dev","repository":{"full_name":"acme/models"},"commits":[],"size":0}`
	v7Export       = `{"dataset":{"name":"cars-2026","id":42},"event":"export.complete","item_count":1500}`
	slackForm      = "token=x&team_id=T0001&user_id=U123&command=%2Ftrain&text=epochs%3D5&user_id=U999"
)

func TestFilterMatches(t *testing.T) {
	githubHeaders := http.Header{"X-GitHub-Event": {"push"}, "X-GitHub-Delivery": {"d-1"}}
	tests := []struct {
		name    string
		expr    string
		req     *Request
		want    bool
		wantErr bool // an evaluation error explains the false
	}{
		{"github push to main", `body.ref == "refs/heads/main" && headers["X-Github-Event"] == "push"`,
			filterRequest("application/json", githubPushMain, githubHeaders, ""), true, false},
		{"github push to dev", `body.ref == "refs/heads/main" && headers["X-Github-Event"] == "push"`,
			filterRequest("application/json", githubPushDev, githubHeaders, ""), false, false},
		{"github ping event", `body.ref == "refs/heads/main" && headers["X-Github-Event"] == "push"`,
			filterRequest("application/json", githubPushMain, http.Header{"X-GitHub-Event": {"ping"}}, ""), false, false},
		{"github changed path", `body.commits.exists(c, c.modified.exists(f, f.startsWith("models/")))`,
			filterRequest("application/json", githubPushMain, nil, ""), true, false},
		{"JSON body with another content type", `body.ref == "refs/heads/main"`,
			filterRequest("text/plain", githubPushMain, nil, ""), true, false},
		{"slack allowed user (first value)", `body.user_id in ["U123", "U456"]`,
			filterRequest("application/x-www-form-urlencoded", slackForm, nil, ""), true, false},
		{"slack other user", `body.user_id in ["U456"]`,
			filterRequest("application/x-www-form-urlencoded", slackForm, nil, ""), false, false},
		{"slack command", `body.command == "/train" && body.text.startsWith("epochs=")`,
			filterRequest("application/x-www-form-urlencoded; charset=utf-8", slackForm, nil, ""), true, false},
		{"v7 dataset prefix", `body.dataset.name.startsWith("cars-")`,
			filterRequest("application/json", v7Export, nil, ""), true, false},
		{"number against int literal", `body.item_count > 1000 && body.dataset.id == 42`,
			filterRequest("application/json", v7Export, nil, ""), true, false},
		{"missing field is no match", `body.action == "opened"`,
			filterRequest("application/json", v7Export, nil, ""), false, true},
		{"missing field behind ||", `body.action == "opened" || body.event == "export.complete"`,
			filterRequest("application/json", v7Export, nil, ""), true, false},
		{"has() tests presence", `!has(body.action)`,
			filterRequest("application/json", v7Export, nil, ""), true, false},
		{"optional field", `body.?action.orValue("none") == "none"`,
			filterRequest("application/json", v7Export, nil, ""), true, false},
		{"field of a non-JSON body", `body.ref == "x"`,
			filterRequest("text/plain", "not json", nil, ""), false, true},
		{"null body", `body == null && raw == "not json"`,
			filterRequest("text/plain", "not json", nil, ""), true, false},
		{"empty body is null", `body == null && raw == ""`,
			filterRequest("", "", nil, ""), true, false},
		{"raw", `raw.contains("cars-")`,
			filterRequest("application/json", v7Export, nil, ""), true, false},
		{"query", `query["source"] == "ci" && !("debug" in query)`,
			filterRequest("application/json", "{}", nil, "source=ci&source=other"), true, false},
		{"method and path", `method == "POST" && path == "/hook"`,
			filterRequest("application/json", "{}", nil, ""), true, false},
		{"header presence", `"X-Github-Delivery" in headers`,
			filterRequest("application/json", "{}", githubHeaders, ""), true, false},
		{"missing header is no match", `headers["X-Gitlab-Event"] == "Push Hook"`,
			filterRequest("application/json", "{}", githubHeaders, ""), false, true},
		{"jwt empty without webhook_jwt", `jwt.size() == 0`,
			filterRequest("application/json", "{}", nil, ""), true, false},
		{"dyn that is not a bool", `body.ref`,
			filterRequest("application/json", githubPushMain, nil, ""), false, true},
		{"dyn that is a bool", `body.enabled`,
			filterRequest("application/json", `{"enabled":true}`, nil, ""), true, false},
		{"top-level array", `body.size() == 2 && body[0] == "a"`,
			filterRequest("application/json", `["a","b"]`, nil, ""), true, false},
		{"strings extension", `body.ref.split("/")[2].lowerAscii() == "main"`,
			filterRequest("application/json", githubPushMain, nil, ""), true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := compiledFilter(t, tc.expr)
			got, err := f.Match(context.Background(), tc.req)
			if got != tc.want {
				t.Fatalf("match = %v (err %v), want %v", got, err, tc.want)
			}
			if (err != nil) != tc.wantErr {
				t.Fatalf("evaluation error %v, want error: %v", err, tc.wantErr)
			}
		})
	}
}

func TestFilterJWTClaims(t *testing.T) {
	f := compiledFilter(t, `jwt.repository == "acme/models" && jwt.run_attempt >= 1`)
	r := filterRequest("application/json", "{}", nil, "")
	r.JWTClaims = map[string]any{"repository": "acme/models", "run_attempt": float64(2)}
	if ok, err := f.Match(context.Background(), r); !ok {
		t.Fatalf("claims did not match: %v", err)
	}
	r.JWTClaims = map[string]any{"repository": "evil/fork", "run_attempt": float64(2)}
	if ok, _ := f.Match(context.Background(), r); ok {
		t.Fatal("another repository matched")
	}
}

func TestFilterConfigErrors(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{``, []string{"no expression"}},
		{`   `, []string{"no expression"}},
		{`body.ref ==`, []string{"does not compile", "Syntax error"}},
		{`bdy.ref == "x"`, []string{"does not compile", "undeclared reference to 'bdy'"}},
		{`raw + 1`, []string{"does not compile", "no matching overload"}},
		{`raw`, []string{"gives string, not a bool"}},
		{`headers.size()`, []string{"gives int, not a bool"}},
		{`headers["X-GitHub-Event"] == "push"`, []string{`header "X-GitHub-Event" is never found`, `"X-Github-Event"`}},
		{`"x-slack-signature" in headers`, []string{`"X-Slack-Signature"`}},
		{`has(headers.authorization)`, []string{`"Authorization"`}},
		{`headers[?"webhook-id"].hasValue()`, []string{`"Webhook-Id"`}},
	}
	for _, tc := range tests {
		f := &Filter{Expression: tc.expr}
		err := f.Validate()
		if err == nil {
			t.Errorf("%q: no config error", tc.expr)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, DirectiveFilter+": ") {
			t.Errorf("%q: error %q does not name the directive", tc.expr, msg)
		}
		for _, w := range tc.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%q: error %q does not contain %q", tc.expr, msg, w)
			}
		}
	}
	// Canonical names and other lookups pass.
	for _, ok := range []string{
		`headers["X-Github-Event"] == "push"`,
		`"Webhook-Id" in headers`,
		`headers.exists(k, k.lowerAscii() == "x-github-event")`,
		`query["X-GitHub-Event"] == "push"`, // query names are not canonicalized
	} {
		if err := (&Filter{Expression: ok}).Validate(); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}

func TestFilterUnvalidatedNeverMatches(t *testing.T) {
	var f Filter
	ok, err := f.Match(context.Background(), filterRequest("", "", nil, ""))
	if ok || err == nil {
		t.Fatal("a filter that was never compiled must not match")
	}
}

// bigArrayBody is a JSON body with an n-element array: the shape a hostile
// sender uses to make a comprehension walk a lot of data.
func bigArrayBody(n int) string {
	var b strings.Builder
	b.WriteString(`{"items":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d", i)
	}
	b.WriteString("]}")
	return b.String()
}

func TestFilterHostileBodyIsBounded(t *testing.T) {
	quadratic := `body.items.all(x, body.items.exists(y, y == x))`
	body := bigArrayBody(20000) // 2e8 comparisons unbounded

	t.Run("timeout", func(t *testing.T) {
		f := &Filter{Expression: quadratic, Timeout: 100 * time.Millisecond}
		if err := f.Validate(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		ok, err := f.Match(context.Background(), filterRequest("application/json", body, nil, ""))
		if ok || err == nil || !strings.Contains(err.Error(), "interrupted") {
			t.Fatalf("match %v err %v, want an interrupted evaluation", ok, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("evaluation took %s despite a 100ms timeout", d)
		}
	})
	t.Run("defaults", func(t *testing.T) {
		f := compiledFilter(t, quadratic)
		start := time.Now()
		ok, err := f.Match(context.Background(), filterRequest("application/json", body, nil, ""))
		if ok || err == nil {
			t.Fatalf("match %v err %v, want the evaluation stopped", ok, err)
		}
		if d := time.Since(start); d > DefaultFilterTimeout+time.Second {
			t.Fatalf("evaluation took %s", d)
		}
	})
	t.Run("cancelled request", func(t *testing.T) {
		f := compiledFilter(t, quadratic)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if ok, err := f.Match(ctx, filterRequest("application/json", body, nil, "")); ok || err == nil {
			t.Fatalf("a cancelled request's filter ran on: %v %v", ok, err)
		}
	})
	t.Run("ordinary filter on a large body", func(t *testing.T) {
		// Generous timeout: this checks that linear work over a large body
		// completes, not how fast a loaded CI machine under -race is.
		f := &Filter{Expression: `body.items.size() > 3 && body.items.exists(x, x == 19999)`, Timeout: 10 * time.Second}
		if err := f.Validate(); err != nil {
			t.Fatal(err)
		}
		if ok, err := f.Match(context.Background(), filterRequest("application/json", body, nil, "")); !ok {
			t.Fatalf("a linear filter over 20000 items did not finish: %v", err)
		}
	})
}

func TestFilterConcurrentMatch(t *testing.T) {
	f := compiledFilter(t, `body.ref == "refs/heads/main" && headers["X-Github-Event"] == "push" && body.commits.exists(c, c.id == "a1")`)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			body, want := githubPushMain, true
			if i%2 == 1 {
				body, want = githubPushDev, false
			}
			// Requests shared between goroutines too: JSON decoding is once.
			r := filterRequest("application/json", body, http.Header{"X-GitHub-Event": {"push"}}, "")
			for j := 0; j < 20; j++ {
				if got, err := f.Match(context.Background(), r); got != want {
					errs <- fmt.Errorf("goroutine %d: %v (%v), want %v", i, got, err, want)
					return
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestFilterNotBoolError(t *testing.T) {
	f := compiledFilter(t, `body.ref`)
	_, err := f.Match(context.Background(), filterRequest("application/json", githubPushMain, nil, ""))
	if !errors.Is(err, errNotBool) {
		t.Fatalf("error %v, want errNotBool", err)
	}
}

// BenchmarkFilterGitHubPush measures a typical filter against its baseline
// in the same run: decoding the body alone, which any condition reading the
// JSON pays anyway.
func BenchmarkFilterGitHubPush(b *testing.B) {
	f := compiledFilter(b, `body.ref == "refs/heads/main" && headers["X-Github-Event"] == "push"`)
	hdr := http.Header{"X-GitHub-Event": {"push"}}
	b.Run("baseline-json-decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r := filterRequest("application/json", githubPushMain, hdr, "")
			if _, ok := r.JSON(); !ok {
				b.Fatal("not JSON")
			}
		}
	})
	b.Run("filter", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			// A fresh request each time: the JSON decode is part of the cost.
			r := filterRequest("application/json", githubPushMain, hdr, "")
			if ok, err := f.Match(context.Background(), r); !ok {
				b.Fatal(err)
			}
		}
	})
}

// Extracting only the paths an expression reads must give the same answers
// as decoding the whole body, for every expression and body.
func TestFilterStaticPathsMatchFullDecode(t *testing.T) {
	exprs := []string{
		`body.ref == "refs/heads/main"`,
		`body.head_commit.id == "a1" && body.ref.startsWith("refs/heads/")`,
		`has(body.head_commit.id)`,
		`has(body.missing)`,
		`body.commits.exists(c, c.id == "a1")`,
		`body.commits.size() > 1`,
		`body.repository.full_name == "org/repo" && body.repository.private == false`,
		`body.repository.owner.login == "org" && body.repository.size > 3`,
		`body.head_commit.id == "a1" && body.head_commit.author.name == "rick"`,
		`body.count > 3`,
		`body.a.b.c == 1`,
		`body.?ref.orValue("") == "refs/heads/main"`,
		`body["ref"] == "refs/heads/main"`,
		`"ref" in body`,
		`method == "POST"`,
	}
	bodies := []string{
		`{"ref":"refs/heads/main","head_commit":{"id":"a1","author":{"name":"rick"}},"commits":[{"id":"a1"},{"id":"b2"}],"repository":{"full_name":"org/repo","private":false,"size":7,"owner":{"login":"org"}},"count":4,"a":{"b":{"c":1}}}`,
		`{"ref":"refs/heads/dev","head_commit":null,"commits":[],"count":"4","a":[1,2]}`,
		`{"ref":5,"a":{"b":"x"},"head_commit":{"id":["a1"]}}`,
		`[1,2,3]`,
		`"just a string"`,
		`not json`,
		`{"fo.o":1,"ref":"refs/heads/main","commits":{"id":"a1"}}`,
		``,
	}
	for _, expr := range exprs {
		lazy := compiledFilter(t, expr)
		full := compiledFilter(t, expr)
		full.bodyPaths = nil
		for _, body := range bodies {
			r1 := filterRequest("application/json", body, nil, "")
			r2 := filterRequest("application/json", body, nil, "")
			m1, e1 := lazy.Match(context.Background(), r1)
			m2, e2 := full.Match(context.Background(), r2)
			if m1 != m2 || (e1 == nil) != (e2 == nil) {
				t.Errorf("%s on %s: paths %v gave %v (%v), full decode %v (%v)", expr, body, lazy.bodyPaths, m1, e1, m2, e2)
			}
			// The paths found by the hostile-JSON scan (r1: the filter
			// is the first to read the body) and searched for again
			// (r3: something else scanned it first) agree.
			r3 := filterRequest("application/json", body, nil, "")
			_ = r3.JSONRejection("test")
			if m3, e3 := lazy.Match(context.Background(), r3); m3 != m1 || (e3 == nil) != (e1 == nil) {
				t.Errorf("%s on %s: paths after another scan gave %v (%v), found by the scan %v (%v)", expr, body, m3, e3, m1, e1)
			}
		}
	}
	if p := compiledFilter(t, `body.head_commit.id == "x" && body.ref == "y"`).bodyPaths; len(p) != 2 {
		t.Fatalf("paths %v, want two static paths", p)
	}
	if p := compiledFilter(t, `body["ref"] == "y"`).bodyPaths; p != nil {
		t.Fatalf("an indexed body needs the full decode, got paths %v", p)
	}
}

func BenchmarkFilterLargePush(b *testing.B) {
	body := bigArrayBody(60000) // ~350 KB
	body = `{"ref":"refs/heads/main",` + body[1:]
	f := compiledFilter(b, `body.ref == "refs/heads/main" && headers["X-Github-Event"] == "push"`)
	b.Run("static-paths", func(b *testing.B) { benchFilter(b, f, body) })
	full := compiledFilter(b, `body.ref == "refs/heads/main" && headers["X-Github-Event"] == "push"`)
	full.bodyPaths = nil
	b.Run("full-decode", func(b *testing.B) { benchFilter(b, full, body) })
}

func benchFilter(b *testing.B, f *Filter, body string) {
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		r := filterRequest("application/json", body, http.Header{"X-Github-Event": {"push"}}, "")
		if ok, err := f.Match(context.Background(), r); !ok {
			b.Fatal(err)
		}
	}
}

// Binding only the header and query names an expression looks up by
// literal must give the same answers as binding them all.
func TestFilterStaticMapKeysMatchFullMaps(t *testing.T) {
	exprs := []string{
		`headers["X-Github-Event"] == "push"`,
		`headers[?"X-Github-Event"].orValue("none") == "none"`,
		`"X-Github-Event" in headers && headers["X-Github-Event"] == "push"`,
		`has(headers.Accept)`,
		`headers.Accept == "*/*"`,
		`size(headers) > 2`,
		`headers.exists(k, k.startsWith("X-"))`,
		`headers.all(headers, headers != "")`,
		`query["ref"] == "main" && query.mode == "fast"`,
		`"mode" in query`,
		`query.exists(k, query[k] == "x")`,
		`headers[method == "POST" ? "X-Github-Event" : "Accept"] == "push"`,
	}
	reqs := []*Request{
		filterRequest("application/json", githubPushMain, http.Header{"X-Github-Event": {"push"}, "Accept": {"*/*"}}, "ref=main&mode=fast"),
		filterRequest("application/json", githubPushMain, http.Header{"X-Github-Event": {"ping", "push"}}, "ref=dev&mode=x"),
		filterRequest("application/json", githubPushMain, nil, ""),
		filterRequest("", "", http.Header{"X-Other": {""}, "Accept": {}}, "mode=&mode=x"),
	}
	for _, expr := range exprs {
		static := compiledFilter(t, expr)
		full := compiledFilter(t, expr)
		full.headerNames, full.queryNames = nil, nil
		for i, r := range reqs {
			m1, e1 := static.Match(context.Background(), r)
			m2, e2 := full.Match(context.Background(), r)
			if m1 != m2 || (e1 == nil) != (e2 == nil) {
				t.Errorf("%s on request %d: names %v/%v gave %v (%v), full maps %v (%v)", expr, i, static.headerNames, static.queryNames, m1, e1, m2, e2)
			}
		}
	}
	if n := compiledFilter(t, `headers["X-Github-Event"] == "push" && "X-Github-Event" in headers`).headerNames; !slices.Equal(n, []string{"X-Github-Event"}) {
		t.Fatalf("header names %v, want the one literal", n)
	}
	if n := compiledFilter(t, `size(headers) > 0`).headerNames; n != nil {
		t.Fatalf("size(headers) needs every header, got names %v", n)
	}
	if n := compiledFilter(t, `body.ref == "x"`).headerNames; n == nil || len(n) != 0 {
		t.Fatalf("an expression without headers binds none, got %v", n)
	}
}

// Only an expression with a comprehension arms the evaluation timeout (CEL
// checks it nowhere else; TestFilterHostileBodyIsBounded shows it cuts a
// long one short).
func TestFilterTimeoutOnlyForLoops(t *testing.T) {
	if compiledFilter(t, `body.ref == "refs/heads/main" && headers["X-Github-Event"] == "push"`).loops {
		t.Fatal("no comprehension, but loops is set")
	}
	for _, expr := range []string{`body.items.exists(a, a == 1)`, `[1, 2].map(x, x * 2).size() == 2`, `headers.all(k, k != "")`} {
		if !compiledFilter(t, expr).loops {
			t.Fatalf("%s: a comprehension, but loops is not set", expr)
		}
	}
}
