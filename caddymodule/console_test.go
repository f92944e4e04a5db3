package caddymodule

import (
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"golang.org/x/crypto/bcrypt"
)

// The console is tested the way README.md deploys it: behind Caddy's
// basic_auth, under handle_path, in a real Caddy with the simulator as
// Valohai. The browser tests (console_browser_test.go) drive the same pages
// in Chromium.

const (
	consoleUser     = "ops"
	consolePassword = "console-test-password"
	payloadMarker   = "PAYLOAD-CONTENT-7f3a9c"
)

func consoleRoutes(t *testing.T) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(consolePassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	auth := "basic_auth {\n\t\t\t" + consoleUser + " " + string(hash) + "\n\t\t}"
	return `
	handle /ops {
		webhook_token ops-token
		valohai_launch ops {
			project ` + testProject + `
			execution train {
				commit main
				payload_input dataset
			}
			wait 5s
		}
	}
	handle /other {
		webhook_token other-token
		valohai_launch other {
			project ` + testProject + `
			fetch_repository
			wait 5s
		}
	}
	handle /nightly {
		webhook_token nightly-token
		valohai_launch nightly {
			project ` + testProject + `
			fetch_repository
			execution train {
				commit main
			}
			execution train {
				commit {webhook.json.ref}
			}
			wait 5s
		}
	}
	handle_path /console/* {
		` + auth + `
		valohai_console
	}
	handle_path /ops-console/* {
		` + auth + `
		valohai_console ops
	}
	handle_path /ro-console/* {
		` + auth + `
		valohai_console {
			read_only
		}
	}
`
}

// consoleClient is a person at the console: basic auth and a cookie jar.
type consoleClient struct {
	t    *testing.T
	base string // e.g. http://127.0.0.1:1234/console/
	hc   *http.Client
}

func newConsoleClient(t *testing.T, base string) *consoleClient {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &consoleClient{t: t, base: base, hc: &http.Client{
		Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// do sends a request to the console; ref is relative to its base (e.g.
// "?run=x").
func (c *consoleClient) do(method, ref string, form url.Values, header map[string]string) response {
	c.t.Helper()
	u, err := url.Parse(c.base)
	if err != nil {
		c.t.Fatal(err)
	}
	u, err = u.Parse(ref)
	if err != nil {
		c.t.Fatal(err)
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u.String(), body)
	if err != nil {
		c.t.Fatal(err)
	}
	req.SetBasicAuth(consoleUser, consolePassword)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{res.StatusCode, res.Header, string(b)}
}

func (c *consoleClient) get(ref string) string {
	c.t.Helper()
	r := c.do(http.MethodGet, ref, nil, nil)
	if r.status != http.StatusOK {
		c.t.Fatalf("GET %s: %d %s", ref, r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		c.t.Fatalf("GET %s: Content-Type %q", ref, ct)
	}
	return r.body
}

var (
	runLinkRe = regexp.MustCompile(`class="runlink" href="\?run=([^"]+)"`)
	olderRe   = regexp.MustCompile(`rel="next" href="([^"]+)"`)
	csrfRe    = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	rowRe     = regexp.MustCompile(`<tr class="(run|rejection)[^"]*">`)
)

// listedRuns returns the run ids a list page links to, in order.
func listedRuns(page string) []string {
	var ids []string
	for _, m := range runLinkRe.FindAllStringSubmatch(page, -1) {
		id, _ := url.QueryUnescape(html.UnescapeString(m[1]))
		ids = append(ids, id)
	}
	return ids
}

func countRows(page, kind string) int {
	n := 0
	for _, m := range rowRe.FindAllStringSubmatch(page, -1) {
		if m[1] == kind {
			n++
		}
	}
	return n
}

// adminRun reads a run as the admin API would show it, from the store.
func adminRunStatus(t *testing.T, id string) string {
	t.Helper()
	app, err := activeApp()
	if err != nil {
		t.Fatal(err)
	}
	run, err := app.store.GetRun(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return string(run.Status)
}

// consoleFixture is a Caddy with the console and a trigger log holding a
// completed run with a payload, a failed run, a run of another trigger and
// a rejection.
type consoleFixture struct {
	env                         *testEnv
	okID, failedID, otherID     string
	okResult                    launchResponse
	console, opsConsole, roCons *consoleClient
}

func startConsoleFixture(t *testing.T) *consoleFixture {
	t.Helper()
	env := startEnv(t, consoleRoutes(t), "retry 2 50ms 100ms")
	f := &consoleFixture{env: env}
	ok := env.post("/ops", []byte(`{"marker":"`+payloadMarker+`"}`), map[string]string{"Authorization": "Bearer ops-token", "Content-Type": "application/json"})
	if ok.status != http.StatusOK {
		t.Fatalf("ok run: %d %s", ok.status, ok.body)
	}
	f.okResult = decodeLaunch(t, ok)
	f.okID = f.okResult.RunID
	if r := env.post("/ops", []byte(`{}`), map[string]string{"Authorization": "Bearer not-the-token"}); r.status != http.StatusBadRequest {
		t.Fatalf("bad token: %d", r.status)
	}
	env.simControl("fail", `{"count":1,"status":400}`)
	failed := env.post("/ops", []byte(`{"b":2}`), map[string]string{"Authorization": "Bearer ops-token"})
	if failed.status != http.StatusBadGateway {
		t.Fatalf("failing run: %d %s", failed.status, failed.body)
	}
	f.failedID = decodeLaunch(t, failed).RunID
	other := env.post("/other", []byte(`{}`), map[string]string{"Authorization": "Bearer other-token"})
	if other.status != http.StatusOK {
		t.Fatalf("other run: %d %s", other.status, other.body)
	}
	f.otherID = decodeLaunch(t, other).RunID
	f.console = newConsoleClient(t, env.hook+"/console/")
	f.opsConsole = newConsoleClient(t, env.hook+"/ops-console/")
	f.roCons = newConsoleClient(t, env.hook+"/ro-console/")
	// Rejections reach the trigger log off the request path.
	waitFor(t, "the rejection in the console", 5*time.Second, func() bool {
		return countRows(f.console.get(""), "rejection") == 1
	})
	return f
}

// forbiddenInPages is what no console page may contain: secrets, the
// payload's content and the signed payload links.
var forbiddenInPages = []string{"ops-token", "other-token", testToken, consolePassword, payloadMarker, "signature=", "_valohai/payloads"}

func assertNoSecrets(t *testing.T, where, page string) {
	t.Helper()
	for _, s := range forbiddenInPages {
		if strings.Contains(page, s) {
			t.Fatalf("%s shows %q", where, s)
		}
	}
}

func TestConsolePages(t *testing.T) {
	f := startConsoleFixture(t)
	c := f.console

	t.Run("behind basic_auth", func(t *testing.T) {
		r := f.env.do(http.MethodGet, f.env.hook+"/console/", nil, nil)
		if r.status != http.StatusUnauthorized {
			t.Fatalf("without credentials: %d", r.status)
		}
		assertNoSecrets(t, "the 401", r.body)
	})

	t.Run("list shows runs and rejections, newest first", func(t *testing.T) {
		r := c.do(http.MethodGet, "", nil, nil)
		page := r.body
		if got, want := listedRuns(page), []string{f.otherID, f.failedID, f.okID}; strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("runs listed %v, want %v", got, want)
		}
		if countRows(page, "rejection") != 1 {
			t.Fatal("the rejection is not listed")
		}
		for _, want := range []string{"webhook_token", "token mismatch", ">ops<", ">other<", "st-error", "st-completed", "queue: <b>0</b>"} {
			mustContain(t, page, want)
		}
		assertNoSecrets(t, "the list", page)
		for h, want := range map[string]string{
			"X-Frame-Options":        "DENY",
			"X-Content-Type-Options": "nosniff",
			"Cache-Control":          "no-store",
		} {
			if got := r.header.Get(h); got != want {
				t.Errorf("%s: %q, want %q", h, got, want)
			}
		}
		if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "script-src") {
			t.Errorf("Content-Security-Policy %q", csp)
		}
	})

	t.Run("filters", func(t *testing.T) {
		for _, tc := range []struct {
			query      string
			runs       []string
			rejections int
		}{
			{"?status=error", []string{f.failedID}, 0},
			{"?status=completed", []string{f.otherID, f.okID}, 0},
			{"?status=rejected", nil, 1},
			{"?trigger=other", []string{f.otherID}, 0},
			{"?trigger=nobody", nil, 0},
			{"?path=/other", []string{f.otherID}, 0},
			{"?path=/ops", []string{f.failedID, f.okID}, 1},
			{"?path=/ops&status=error", []string{f.failedID}, 0},
			{"?last=1h", []string{f.otherID, f.failedID, f.okID}, 1},
			{"?until=2001-01-01T00:00", nil, 0},
			{"?since=2001-01-01", []string{f.otherID, f.failedID, f.okID}, 1},
			{"?since=" + time.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04"), nil, 0},
		} {
			page := c.get(tc.query)
			if got := listedRuns(page); strings.Join(got, ",") != strings.Join(tc.runs, ",") {
				t.Errorf("%s: runs %v, want %v", tc.query, got, tc.runs)
			}
			if got := countRows(page, "rejection"); got != tc.rejections {
				t.Errorf("%s: %d rejections, want %d", tc.query, got, tc.rejections)
			}
		}
		// The form shows the filters in force.
		page := c.get("?status=error&path=/ops")
		mustContain(t, page, `<option value="error" selected>`)
		mustContain(t, page, `name="path" value="/ops"`)
	})

	t.Run("paging walks every entry once", func(t *testing.T) {
		full := c.get("")
		var want []string
		for _, m := range regexp.MustCompile(`<tr class="(run|rejection)[^"]*">\s*<td data-label="When"><time datetime="([^"]+)"`).FindAllStringSubmatch(full, -1) {
			want = append(want, m[1]+"@"+m[2])
		}
		if len(want) != 4 {
			t.Fatalf("the full list has %d entries, want 4", len(want))
		}
		var got []string
		ref := "?limit=1"
		for pages := 0; ref != ""; pages++ {
			if pages > 10 {
				t.Fatal("paging does not end")
			}
			page := c.get(ref)
			for _, m := range regexp.MustCompile(`<tr class="(run|rejection)[^"]*">\s*<td data-label="When"><time datetime="([^"]+)"`).FindAllStringSubmatch(page, -1) {
				got = append(got, m[1]+"@"+m[2])
			}
			ref = ""
			if m := olderRe.FindStringSubmatch(page); m != nil {
				ref = html.UnescapeString(m[1])
			}
			if hasNewest := strings.Contains(page, "« Newest"); hasNewest != (pages > 0) {
				t.Fatalf("page %d links to the newest page: %v", pages, hasNewest)
			}
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("paged through\n%v\nwant\n%v", got, want)
		}
	})

	t.Run("a completed run's page", func(t *testing.T) {
		page := c.get("?run=" + f.okID)
		mustContain(t, page, f.okID)
		mustContain(t, page, "<code>run_execution</code> <span class=\"name\">train</span>")
		mustContain(t, page, `badge act-done">done`)
		res := f.okResult.Result[0]
		mustContain(t, page, "<code>"+res.ExecutionID+"</code>")
		mustContain(t, page, "#"+jsonNumberString(res.ExecutionCounter))
		mustContain(t, page, `class="vh" href="`+html.EscapeString(res.URL)+`"`)
		// The payload's size and type, never its content.
		body := `{"marker":"` + payloadMarker + `"}`
		mustContain(t, page, "("+jsonNumberString(int64(len(body)))+" bytes), <code class=\"ctype\">application/json</code>")
		mustContain(t, page, "Took")
		if strings.Contains(page, `name="csrf"`) {
			t.Fatal("a completed run offers a retry")
		}
		assertNoSecrets(t, "the run page", page)
	})

	t.Run("a failed run's page", func(t *testing.T) {
		page := c.get("?run=" + f.failedID)
		mustContain(t, page, `badge st-error">error`)
		mustContain(t, page, `<pre class="err">`)
		mustContain(t, page, "400")
		if !csrfRe.MatchString(page) {
			t.Fatal("a failed run offers no retry")
		}
		assertNoSecrets(t, "the failed run's page", page)
		// A read-only console shows it without the button.
		if ro := f.roCons.get("?run=" + f.failedID); strings.Contains(ro, `name="csrf"`) || !strings.Contains(ro, f.failedID) {
			t.Fatal("the read_only console offers a retry")
		}
	})

	t.Run("a console limited to triggers", func(t *testing.T) {
		oc := f.opsConsole
		page := oc.get("")
		if got, want := listedRuns(page), []string{f.failedID, f.okID}; strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("ops console lists %v, want %v", got, want)
		}
		if countRows(page, "rejection") != 0 {
			t.Fatal("a console limited to triggers lists rejections")
		}
		mustContain(t, page, "Rejections are not listed here")
		if got := listedRuns(oc.get("?trigger=other")); len(got) != 0 {
			t.Fatalf("trigger=other on the ops console lists %v", got)
		}
		if r := oc.do(http.MethodGet, "?run="+f.otherID, nil, nil); r.status != http.StatusNotFound || strings.Contains(r.body, ">other<") {
			t.Fatalf("another trigger's run: %d", r.status)
		}
		oc.get("?run=" + f.okID)
	})

	t.Run("bad input gets a 4xx with a reason", func(t *testing.T) {
		for _, tc := range []struct {
			method, ref string
			status      int
			reason      string
		}{
			{http.MethodGet, "?status=exploded", 400, "status: &#34;exploded&#34; is not a status"},
			{http.MethodGet, "?since=yesterday", 400, "since: &#34;yesterday&#34; is not a time"},
			{http.MethodGet, "?last=forever", 400, "last: &#34;forever&#34; is not a time window"},
			{http.MethodGet, "?limit=0", 400, "limit: &#34;0&#34; is not a page size"},
			{http.MethodGet, "?before=xyz", 400, "malformed page cursor"},
			{http.MethodGet, "?since=2026-01-02&until=2026-01-01", 400, "until must be later than since"},
			{http.MethodGet, "?run=no-such-run", 404, "No such run"},
			{http.MethodPut, "", 405, "not PUT"},
		} {
			r := c.do(tc.method, tc.ref, nil, nil)
			if r.status != tc.status || !strings.Contains(r.body, tc.reason) {
				t.Errorf("%s %s: %d %q, want %d with %q", tc.method, tc.ref, r.status, r.body, tc.status, tc.reason)
			}
		}
		if r := c.do(http.MethodPut, "", nil, nil); r.header.Get("Allow") != "GET, HEAD, POST" {
			t.Errorf("405 Allow: %q", r.header.Get("Allow"))
		}
		if r := c.do(http.MethodHead, "?run="+f.okID, nil, nil); r.status != http.StatusOK || r.body != "" {
			t.Errorf("HEAD: %d %q", r.status, r.body)
		}
	})
}

func jsonNumberString(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestConsoleRetryCSRF: a retry is a same-origin POST with a token bound to
// the browser's cookie and to the run; anything else changes nothing.
func TestConsoleRetryCSRF(t *testing.T) {
	f := startConsoleFixture(t)
	c := f.console
	page := c.get("?run=" + f.failedID)
	m := csrfRe.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no CSRF token on the failed run's page")
	}
	token := html.UnescapeString(m[1])
	// The token of another run, from the same browser.
	otherToken := ""
	{
		env := f.env
		env.simControl("fail", `{"count":1,"status":400}`)
		r := env.post("/ops", []byte(`{}`), map[string]string{"Authorization": "Bearer ops-token"})
		second := decodeLaunch(t, r).RunID
		otherToken = html.UnescapeString(csrfRe.FindStringSubmatch(c.get("?run=" + second))[1])
		if otherToken == token {
			t.Fatal("two runs share a CSRF token")
		}
	}
	// A browser without the console's cookie (another person's, or a
	// forging site's request that carries no cookie).
	stranger := newConsoleClient(t, c.base)
	stranger.get("?run=" + f.failedID) // it has a cookie of its own now
	executions := len(f.env.executionCalls())

	retry := url.Values{"action": {"retry"}, "csrf": {token}}
	for _, tc := range []struct {
		name   string
		client *consoleClient
		form   url.Values
		header map[string]string
		status int
		reason string
	}{
		{"no token", c, url.Values{"action": {"retry"}}, nil, 403, "Missing or invalid CSRF token"},
		{"a wrong token", c, url.Values{"action": {"retry"}, "csrf": {strings.Repeat("A", len(token))}}, nil, 403, "Missing or invalid CSRF token"},
		{"another run's token", c, url.Values{"action": {"retry"}, "csrf": {otherToken}}, nil, 403, "Missing or invalid CSRF token"},
		{"the token from another browser", stranger, retry, nil, 403, "Missing or invalid CSRF token"},
		{"a cross-site POST (Sec-Fetch-Site)", c, retry, map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"}, 403, "Cross-site request refused"},
		{"a cross-origin POST (Origin only)", c, retry, map[string]string{"Origin": "http://evil.example"}, 403, "Cross-site request refused"},
		{"a same-site but other-origin POST", c, retry, map[string]string{"Sec-Fetch-Site": "same-site"}, 403, "Cross-site request refused"},
		{"another action", c, url.Values{"action": {"delete"}, "csrf": {token}}, nil, 400, "only POST is a retry"},
		{"on the read-only console", f.roCons, retry, nil, 405, "read_only"},
	} {
		r := tc.client.do(http.MethodPost, "?run="+f.failedID, tc.form, tc.header)
		if r.status != tc.status || !strings.Contains(r.body, tc.reason) {
			t.Errorf("%s: %d %q, want %d with %q", tc.name, r.status, r.body, tc.status, tc.reason)
		}
		assertNoSecrets(t, tc.name, r.body)
		if strings.Contains(r.body, token) {
			t.Errorf("%s: the refusal shows the token", tc.name)
		}
	}
	if s := adminRunStatus(t, f.failedID); s != "error" {
		t.Fatalf("a refused retry changed the run: %s", s)
	}
	if n := len(f.env.executionCalls()); n != executions {
		t.Fatalf("a refused retry launched %d executions", n-executions)
	}

	// A console limited to triggers cannot retry another trigger's run,
	// even with a valid token for it from the same browser.
	f.env.simControl("fail", `{"count":1,"status":400}`)
	otherFailed := decodeLaunch(t, f.env.post("/other", []byte(`{}`), map[string]string{"Authorization": "Bearer other-token"})).RunID
	otherFailedToken := html.UnescapeString(csrfRe.FindStringSubmatch(c.get("?run=" + otherFailed))[1])
	opsSameBrowser := &consoleClient{t: t, base: f.env.hook + "/ops-console/", hc: c.hc}
	if r := opsSameBrowser.do(http.MethodPost, "?run="+otherFailed, url.Values{"action": {"retry"}, "csrf": {otherFailedToken}}, nil); r.status != http.StatusNotFound {
		t.Fatalf("ops console retry of another trigger's run: %d %s", r.status, r.body)
	}
	if s := adminRunStatus(t, otherFailed); s != "error" {
		t.Fatalf("the other trigger's run was retried: %s", s)
	}
	// The real thing: same origin, the page's token.
	r := c.do(http.MethodPost, "?run="+f.failedID, retry, map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": strings.TrimSuffix(f.env.hook, "/")})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "?run="+url.QueryEscape(f.failedID)+"&retried=1" {
		t.Fatalf("retry: %d Location %q %s", r.status, r.header.Get("Location"), r.body)
	}
	waitFor(t, "the retried run to complete", 10*time.Second, func() bool { return adminRunStatus(t, f.failedID) == "completed" })
	if n := len(f.env.executionCalls()); n != executions+1 {
		t.Fatalf("the retry launched %d executions, want 1", n-executions)
	}
	page = c.get(r.header.Get("Location"))
	mustContain(t, page, "Retry started")
	mustContain(t, page, `badge st-completed">completed`)
	if strings.Contains(page, `name="csrf"`) {
		t.Fatal("a completed run still offers a retry")
	}
	// Sent again (a double click, a reload that re-posts): the run is
	// completed now, there is nothing to retry.
	executions = len(f.env.executionCalls())
	if r := c.do(http.MethodPost, "?run="+f.failedID, retry, nil); r.status != http.StatusConflict || !strings.Contains(r.body, "Nothing to retry") {
		t.Fatalf("retry of a completed run: %d %s", r.status, r.body)
	}
	if n := len(f.env.executionCalls()); n != executions {
		t.Fatalf("retrying a completed run launched %d executions", n-executions)
	}
}

func TestConsoleConfigErrors(t *testing.T) {
	for _, tc := range []struct{ directive, want string }{
		{"valohai_console {\n\t\tretry_all\n\t}", `parsing caddyfile tokens for 'valohai_console': unknown sub-directive "retry_all"; this block takes read_only`},
		{"valohai_console {\n\t\tread_only yes\n\t}", "parsing caddyfile tokens for 'valohai_console': read_only takes no value"},
		{`valohai_console ""`, "valohai_console: an empty trigger name"},
	} {
		cf := `{
	admin off
	valohai {
		api_token t
		store file ` + t.TempDir() + `
	}
}
http://127.0.0.1:` + jsonNumberString(int64(freePort(t))) + ` {
	` + tc.directive + `
}`
		err := loadCaddyfile(cf)
		if err == nil {
			_ = caddy.Stop()
			t.Fatalf("%s: loaded", tc.directive)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.directive, err, tc.want)
		}
	}
}

// TestConsoleReadmeConfig: the console config README.md shows (behind
// basic_auth, limited to triggers, read_only) is accepted by Caddy.
func TestConsoleReadmeConfig(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "## Operations: the console\n")
	if !ok {
		t.Fatal("README.md has no console section")
	}
	_, block, ok := strings.Cut(section, "```caddyfile\n")
	if !ok {
		t.Fatal("the console section shows no Caddyfile")
	}
	block, _, _ = strings.Cut(block, "```")
	hash, err := bcrypt.GenerateFromPassword([]byte(consolePassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	block = strings.ReplaceAll(block, "$2a$14$...", string(hash))
	cf := `{
	admin off
	auto_https off
	valohai {
		api_token t
		store file ` + t.TempDir() + `
	}
}
` + block
	cfg, err := adapt(cf)
	if err != nil {
		t.Fatalf("README's console config does not adapt: %v\n%s", err, cf)
	}
	for _, want := range []string{`"handler":"valohai_console"`, `"triggers":["github-push","nightly"]`, `"read_only":true`, `"handler":"authentication"`} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("adapted config lacks %s", want)
		}
	}
	var c caddy.Config
	if err := json.Unmarshal(cfg, &c); err != nil {
		t.Fatal(err)
	}
	if err := caddy.Validate(&c); err != nil {
		t.Fatalf("README's console config does not provision: %v", err)
	}
}
