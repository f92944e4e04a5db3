package caddymodule

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"html"
	"image/png"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The console in a real browser: headless Chromium from Debian's packages,
// driven over the DevTools protocol (chromedp). scripts/test.sh installs
// chromium when it is missing, so these tests run in the test command; they
// fail, never skip, when no browser is found.

// EnvChromium names the variable that may point at the browser binary.
const envChromium = "VALOHAI_TEST_CHROMIUM"

// envUpdateScreenshots, set to 1, makes the browser test write the
// screenshots README.md links to (docs/console-*.png).
const envUpdateScreenshots = "VALOHAI_UPDATE_SCREENSHOTS"

func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(envChromium); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found: run the tests through `make test`, which installs it (Debian: apt-get install chromium), or set " + envChromium)
	return ""
}

type browserOpts struct {
	noScript      bool // the page's JavaScript off: the console must work without it
	width, height int64
	mobile        bool
}

// newBrowser starts a fresh headless Chromium (its own profile) whose every
// request carries the console's basic-auth credentials.
func newBrowser(t *testing.T, o browserOpts) context.Context {
	t.Helper()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless,
		chromedp.NoSandbox, // root in CI
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(int(o.width), int(o.height)),
	)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(consoleUser+":"+consolePassword))
	steps := []chromedp.Action[chromedp.Void]{
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
				return err
			}
			_, err := cdp.Call(ctx, tg, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}})
			return err
		}),
		chromedp.EmulateViewport(o.width, o.height, func(p *emulation.SetDeviceMetricsOverrideParams, tp *emulation.SetTouchEmulationEnabledParams) {
			p.Mobile = o.mobile
			if o.mobile {
				p.DeviceScaleFactor = 2
				tp.Enabled = true
			}
		}),
	}
	if o.noScript {
		steps = append(steps, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
			return err
		}))
	}
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// browse runs steps with a timeout (the browser itself lives on).
func browse(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(c, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func browserEval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

func browserLocation(t *testing.T, ctx context.Context) string {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	loc, err := chromedp.Run(c, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// screenshot takes a full-page PNG. With VALOHAI_UPDATE_SCREENSHOTS=1 it is
// written to docs/<name> (the README's pictures); otherwise to a temporary
// directory, and the checked-in one must still be a valid PNG.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	shot, err := chromedp.Run(c, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil || img.Bounds().Dx() < 300 || img.Bounds().Dy() < 300 {
		t.Fatalf("screenshot %s is not a page-sized PNG: %v", name, err)
	}
	dst := filepath.Join(t.TempDir(), name)
	if os.Getenv(envUpdateScreenshots) == "1" {
		dst = filepath.Join("..", "docs", name)
	}
	if err := os.WriteFile(dst, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	kept, err := os.ReadFile(filepath.Join("..", "docs", name))
	if err != nil {
		t.Fatalf("docs/%s (linked from README.md) is missing: run this test with %s=1", name, envUpdateScreenshots)
	}
	if _, err := png.Decode(bytes.NewReader(kept)); err != nil {
		t.Fatalf("docs/%s is not a PNG: %v", name, err)
	}
}

// TestConsoleBrowserRetryFlow: a person with JavaScript off filters the list
// for failed runs, opens one, presses Retry, and sees it completed. The list
// and the run page are photographed for README.md.
func TestConsoleBrowserRetryFlow(t *testing.T) {
	f := startConsoleFixture(t)
	ctx := newBrowser(t, browserOpts{noScript: true, width: 1280, height: 800})
	base := f.env.hook + "/console/"

	// A run with two actions, one done and one failed for good: the run
	// page's picture shows both kinds of result.
	partial := f.env.post("/nightly", []byte(`{"ref":"release-2"}`), map[string]string{"Authorization": "Bearer nightly-token"})
	if partial.status != http.StatusBadGateway {
		t.Fatalf("nightly run: %d %s", partial.status, partial.body)
	}
	partialID := decodeLaunch(t, partial).RunID

	browse(t, ctx, "opening the list", chromedp.Navigate(base), chromedp.WaitVisible(chromedp.CSS("table.log")))
	screenshot(t, ctx, "console-list.png")
	if n := browserEval[int](t, ctx, `document.querySelectorAll('a.runlink').length`); n != 4 {
		t.Fatalf("the list links %d runs, want 4", n)
	}

	browse(t, ctx, "opening the partly failed run", chromedp.Navigate(base+"?run="+url.QueryEscape(partialID)), chromedp.WaitVisible(chromedp.CSS("form.retry button")))
	if got := browserEval[string](t, ctx, `document.querySelector('.facts .badge').textContent`); got != "complete_with_error" {
		t.Fatalf("the partly failed run shows status %q", got)
	}
	// Only the launched execution links to Valohai (its page and its API
	// object, at the simulator standing in for Valohai).
	if links := browserEval[[]string](t, ctx, `[...document.querySelectorAll('a.vh, a.vh-api')].map(a => a.href)`); len(links) != 2 || !strings.HasPrefix(links[0], f.env.sim+"/") || !strings.HasPrefix(links[1], f.env.sim+"/api/v0/executions/") {
		t.Fatalf("Valohai links %v", links)
	}
	if errText := browserEval[string](t, ctx, `document.querySelector('.action.act-failed pre.err').textContent`); !strings.Contains(errText, "release-2") {
		t.Fatalf("the failed action's error: %q", errText)
	}
	screenshot(t, ctx, "console-run.png")
	browse(t, ctx, "back to the list", chromedp.Navigate(base), chromedp.WaitVisible(chromedp.CSS("table.log")))

	// Filter with the form: status error.
	browse(t, ctx, "filtering for failed runs",
		chromedp.SetValue(chromedp.CSS(`select[name="status"]`), "error"),
		chromedp.Click(chromedp.CSS(`form.filters button[type="submit"]`)),
	)
	waitFor(t, "the filtered list", 10*time.Second, func() bool {
		return strings.Contains(browserLocation(t, ctx), "status=error")
	})
	browse(t, ctx, "the filtered list", chromedp.WaitVisible(chromedp.CSS("table.log")))
	if ids := browserEval[[]string](t, ctx, `[...document.querySelectorAll('a.runlink')].map(a => a.textContent)`); len(ids) != 1 || ids[0] != f.failedID {
		t.Fatalf("filtered list shows %v, want only %s", ids, f.failedID)
	}

	// Open the run and retry it.
	browse(t, ctx, "opening the failed run",
		chromedp.Click(chromedp.CSS("a.runlink")),
		chromedp.WaitVisible(chromedp.CSS("form.retry button")),
	)
	if got := browserEval[string](t, ctx, `document.querySelector('.facts .badge').textContent`); got != "error" {
		t.Fatalf("the run page shows status %q", got)
	}
	executions := len(f.env.executionCalls())
	browse(t, ctx, "pressing Retry",
		chromedp.Click(chromedp.CSS("form.retry button")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	if got := browserEval[string](t, ctx, `document.querySelector('.flash').textContent`); !strings.Contains(got, "Retry started") {
		t.Fatalf("after Retry the page says %q", got)
	}
	if loc := browserLocation(t, ctx); !strings.HasPrefix(loc, base+"?run=") {
		t.Fatalf("after Retry the browser is at %s", loc)
	}
	waitFor(t, "the retried run to complete", 10*time.Second, func() bool { return adminRunStatus(t, f.failedID) == "completed" })
	browse(t, ctx, "reloading the run", chromedp.Navigate(base+"?run="+url.QueryEscape(f.failedID)), chromedp.WaitVisible(chromedp.CSS(".facts .badge")))
	if got := browserEval[string](t, ctx, `document.querySelector('.facts .badge').textContent`); got != "completed" {
		t.Fatalf("after the retry the run shows %q", got)
	}
	if n := browserEval[int](t, ctx, `document.querySelectorAll('form.retry').length`); n != 0 {
		t.Fatal("a completed run still offers Retry")
	}
	if n := len(f.env.executionCalls()); n != executions+1 {
		t.Fatalf("the retry launched %d executions, want 1", n-executions)
	}
}

// TestConsoleBrowserPhone: on a phone-sized screen the pages fit the width
// (no sideways scrolling) and the list turns into cards.
func TestConsoleBrowserPhone(t *testing.T) {
	f := startConsoleFixture(t)
	ctx := newBrowser(t, browserOpts{noScript: true, width: 390, height: 844, mobile: true})
	base := f.env.hook + "/console/"
	for _, page := range []string{"", "?run=" + url.QueryEscape(f.failedID), "?run=" + url.QueryEscape(f.okID)} {
		browse(t, ctx, "opening "+page, chromedp.Navigate(base+page), chromedp.WaitVisible(chromedp.CSS("main h1")))
		sw := browserEval[int](t, ctx, `document.documentElement.scrollWidth`)
		iw := browserEval[int](t, ctx, `window.innerWidth`)
		if iw > 400 || sw > iw {
			t.Errorf("%q on a 390px screen: page %dpx wide in a %dpx viewport", page, sw, iw)
		}
		if page == "" {
			if d := browserEval[string](t, ctx, `getComputedStyle(document.querySelector('table.log thead')).display`); d != "none" {
				t.Errorf("the list keeps its table header on a phone (display %s)", d)
			}
			screenshot(t, ctx, "console-phone.png")
		}
	}
}

// The hostile inputs of the XSS test: each would run script or inject an
// element if it reached the page unescaped.
const (
	hostileTrigger     = `<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>`
	hostileCommit      = `"><svg onload="window.__xss=3"></svg><script>window.__xss=4</script>`
	hostileContentType = `text/html"><script>window.__xss=5</script><b onmouseover="window.__xss=6">`
	hostilePath        = `/x/<iframe src="javascript:window.__xss=7"></iframe>'"><a href="javascript:window.__xss=8">`
)

// TestConsoleBrowserXSS: a hostile trigger name (config), request path and
// Content-Type header (sender), and a JSON field of the body that reaches
// Valohai's error text stay inert text in the browser, with JavaScript on.
func TestConsoleBrowserXSS(t *testing.T) {
	routes := consoleRoutes(t) + `
	handle /x/* {
		webhook_token xss-token
		valohai_launch ` + "`" + hostileTrigger + "`" + ` {
			project ` + testProject + `
			execution train {
				commit {webhook.json.ref}
				payload_input dataset
			}
			wait 5s
		}
	}
`
	env := startEnv(t, routes, "retry 2 50ms 100ms")
	escapedPath := (&url.URL{Path: hostilePath}).EscapedPath()
	r := env.post(escapedPath, []byte(`{"ref":`+jsonQuote(hostileCommit)+`}`), map[string]string{
		"Authorization": "Bearer xss-token",
		"Content-Type":  hostileContentType,
	})
	if r.status != http.StatusBadGateway {
		t.Fatalf("hostile run: %d %s", r.status, r.body)
	}
	runID := decodeLaunch(t, r).RunID
	if r := env.post(escapedPath, []byte(`{}`), map[string]string{"Authorization": "Bearer wrong"}); r.status != http.StatusBadRequest {
		t.Fatalf("hostile rejection: %d", r.status)
	}
	c := newConsoleClient(t, env.hook+"/console/")
	waitFor(t, "the hostile rejection in the console", 5*time.Second, func() bool { return countRows(c.get(""), "rejection") == 1 })

	// The raw HTML holds the hostile text escaped, never as markup.
	for _, ref := range []string{"", "?run=" + url.QueryEscape(runID), "?status=rejected", "?trigger=" + url.QueryEscape(hostileTrigger), "?path=" + url.QueryEscape(hostilePath)} {
		page := c.get(ref)
		for _, raw := range []string{"<script>window", "<img src=x", "<svg", "<iframe", "onmouseover=\"window", `href="javascript:`} {
			if strings.Contains(page, raw) {
				t.Fatalf("page %q holds %q unescaped", ref, raw)
			}
		}
	}
	if page := c.get("?run=" + url.QueryEscape(runID)); !strings.Contains(page, html.EscapeString(hostileTrigger)) || !strings.Contains(page, html.EscapeString(hostileContentType)) {
		t.Fatal("the run page does not show the hostile trigger name and content type as text")
	}

	ctx := newBrowser(t, browserOpts{width: 1280, height: 800}) // JavaScript on
	pages := map[string][]string{
		"":                               {hostileTrigger, hostilePath},
		"?run=" + url.QueryEscape(runID): {hostileTrigger, hostilePath, hostileContentType, strings.TrimPrefix(jsonQuote(hostileCommit), `"`)[:20]},
		"?trigger=" + url.QueryEscape(hostileTrigger): {hostileTrigger},
		"?path=" + url.QueryEscape(hostilePath):       {hostilePath},
	}
	for ref, texts := range pages {
		browse(t, ctx, "opening "+ref, chromedp.Navigate(env.hook+"/console/"+ref), chromedp.WaitVisible(chromedp.CSS("main h1")))
		// Nothing ran, and nothing the inputs carry became an element or an
		// attribute: the page has no script, image, frame, svg or handler,
		// and no javascript: link.
		if v := browserEval[string](t, ctx, `String(window.__xss)`); v != "undefined" {
			t.Fatalf("%q: injected script ran (window.__xss = %s)", ref, v)
		}
		injected := browserEval[[]string](t, ctx, `[...document.querySelectorAll('*')].filter(e =>
			['SCRIPT','IMG','IFRAME','SVG','svg','OBJECT','EMBED'].includes(e.tagName) ||
			[...e.attributes].some(a => a.name.startsWith('on') || /^\s*javascript:/i.test(a.value))
		).map(e => e.outerHTML.slice(0, 120))`)
		if len(injected) > 0 {
			t.Fatalf("%q: injected elements %q", ref, injected)
		}
		body := browserEval[string](t, ctx, `document.body.innerText`)
		for _, want := range texts {
			if !strings.Contains(body, want) {
				t.Errorf("%q does not show %q as text", ref, want)
			}
		}
		for _, link := range browserEval[[]string](t, ctx, `[...document.querySelectorAll('a[href]')].map(a => a.href)`) {
			if !strings.HasPrefix(link, env.hook+"/console/") && !strings.HasPrefix(link, env.sim) {
				t.Errorf("%q links to %s", ref, link)
			}
		}
	}
}

func jsonQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// TestConsoleBrowserCSRF: another site's page that POSTs the retry form to
// the console is refused, even with the victim's valid token in it (leaked,
// say) and the victim's basic-auth credentials sent along; the run is not
// retried.
func TestConsoleBrowserCSRF(t *testing.T) {
	f := startConsoleFixture(t)
	ctx := newBrowser(t, browserOpts{width: 1280, height: 800})
	runPage := f.env.hook + "/console/?run=" + url.QueryEscape(f.failedID)
	browse(t, ctx, "opening the failed run", chromedp.Navigate(runPage), chromedp.WaitVisible(chromedp.CSS("form.retry button")))
	token := browserEval[string](t, ctx, `document.querySelector('input[name="csrf"]').value`)
	if token == "" {
		t.Fatal("no token on the run page")
	}

	// The attacker's site: another host name (localhost, not 127.0.0.1),
	// hence another site for the browser.
	evil := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!DOCTYPE html><title>win a prize</title>
<form id="f" method="post" action="%s">
<input type="hidden" name="action" value="retry">
<input type="hidden" name="csrf" value="%s">
<button id="go" type="submit">Claim</button>
</form>`, html.EscapeString(runPage), html.EscapeString(token))
	}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	evil.Listener = l
	evil.Start()
	defer evil.Close()
	evilURL := fmt.Sprintf("http://localhost:%d/", l.Addr().(*net.TCPAddr).Port)

	executions := len(f.env.executionCalls())
	browse(t, ctx, "the victim submits the forged form",
		chromedp.Navigate(evilURL),
		chromedp.WaitVisible(chromedp.CSS("#go")),
		chromedp.Click(chromedp.CSS("#go")),
		chromedp.WaitVisible(chromedp.CSS("section.error")),
	)
	if got := browserEval[string](t, ctx, `document.querySelector('section.error h1').textContent`); got != "403 · Cross-site request refused" {
		t.Fatalf("the forged POST got %q", got)
	}
	time.Sleep(300 * time.Millisecond) // a retry, had it happened, would be under way
	if s := adminRunStatus(t, f.failedID); s != "error" {
		t.Fatalf("the forged POST retried the run: %s", s)
	}
	if n := len(f.env.executionCalls()); n != executions {
		t.Fatalf("the forged POST launched %d executions", n-executions)
	}

	// The same form on the console's own page is accepted: the refusal was
	// the site check, not a broken form.
	browse(t, ctx, "the real Retry",
		chromedp.Navigate(runPage),
		chromedp.Click(chromedp.CSS("form.retry button")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	waitFor(t, "the retried run to complete", 10*time.Second, func() bool { return adminRunStatus(t, f.failedID) == "completed" })
}
