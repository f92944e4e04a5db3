package caddymodule

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
	"go.uber.org/zap"

	"github.com/hooklaunch/caddy-valohai/launch"
)

func init() {
	registerHandler[Console]()
	httpcaddyfile.RegisterDirectiveOrder("valohai_console", httpcaddyfile.Before, "respond")
}

// Console is the `valohai_console` handler: the trigger log as web pages for
// people (README.md, "Operations: the console"). It lists runs and
// rejections with filters and paging, shows a run with each action's result,
// Valohai links, timings and the payload's size and type (never its
// content), and retries a failed run on a POST that carries a CSRF token.
// The pages are server-rendered and work without JavaScript; the operator
// protects the route (e.g. with basic_auth).
//
// Every page is addressed by its query string (`?run=<id>` for a run), so
// the console works under any path, with or without handle_path.
type Console struct {
	// Triggers limits the console to these triggers' runs (default: every
	// run and every rejection).
	Triggers []string `json:"triggers,omitempty"`
	// ReadOnly hides the retry button and refuses retries.
	ReadOnly bool `json:"read_only,omitempty"`

	app     *App
	logger  *zap.Logger
	csrfKey []byte
}

// CaddyModule returns the Caddy module information.
func (*Console) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.valohai_console", New: func() caddy.Module { return new(Console) }}
}

const (
	consoleCSRFKeyName = "console-csrf-key"
	consoleCookie      = "valohai_console_csrf"
	// consoleMaxForm caps a retry form's body: it holds two short fields.
	consoleMaxForm = 8 << 10
)

// Provision binds the handler to the valohai app and reads the CSRF key
// from the store (shared by every instance using it, like the payload key).
func (c *Console) Provision(ctx caddy.Context) error {
	for _, t := range c.Triggers {
		if strings.TrimSpace(t) == "" {
			return errors.New(`valohai_console: an empty trigger name; list trigger names (as in valohai_launch <name>) or none for every trigger`)
		}
	}
	app, err := loadApp(ctx)
	if err != nil {
		return err
	}
	c.app = app
	c.logger = ctx.Logger()
	key, err := app.store.Secret(ctx, consoleCSRFKeyName, launch.NewSigningKey)
	if err != nil {
		return fmt.Errorf("valohai_console: reading the CSRF key from the store: %w", err)
	}
	c.csrfKey = key
	return nil
}

// ServeHTTP serves the list (GET), a run (GET ?run=<id>) and retries (POST
// ?run=<id>).
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	setConsoleHeaders(w.Header())
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if r.URL.Query().Has("run") {
			return c.serveRun(w, r)
		}
		return c.serveList(w, r)
	case http.MethodPost:
		return c.serveRetry(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		return c.renderError(w, r, http.StatusMethodNotAllowed, "Method not allowed", fmt.Sprintf("The console answers GET and HEAD, and POST for a retry; not %s.", r.Method))
	}
}

// setConsoleHeaders: no script may run (there is none), no other origin may
// frame the pages (the retry button) or receive their address, and nothing
// is cached (the pages change, and some hold a CSRF token).
func setConsoleHeaders(h http.Header) {
	h.Set("Content-Security-Policy", consoleCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// consoleBase is what every page shows around its content.
type consoleBase struct {
	Title      string
	CSS        template.CSS
	Triggers   []string // the console's restriction, if any
	QueueDepth int
	QueueKnown bool
}

func (c *Console) base(r *http.Request, title string) consoleBase {
	b := consoleBase{Title: title, CSS: template.CSS(consoleCSS), Triggers: c.Triggers}
	if n, err := c.app.store.QueueDepth(r.Context()); err == nil {
		b.QueueDepth, b.QueueKnown = n, true
	}
	return b
}

type consoleListPage struct {
	consoleBase
	Query        consoleQuery
	Since, Until string // as the datetime-local inputs show them
	Statuses     []string
	Windows      []string
	TriggerNames []string // suggestions for the trigger filter
	List         consoleList
	Runs         int
	Rejections   int
	Filtered     bool
	NextHref     template.URL
	FirstHref    template.URL
	Now          time.Time
}

func (c *Console) serveList(w http.ResponseWriter, r *http.Request) error {
	now := time.Now().UTC()
	cq, err := parseConsoleQuery(r.URL.Query(), now)
	if err != nil {
		return c.renderError(w, r, http.StatusBadRequest, "Bad filter", err.Error())
	}
	list, err := listConsole(r.Context(), c.app.store, cq, c.allowed())
	if err != nil {
		c.logger.Error("console: reading the trigger log", zap.Error(err))
		return c.renderError(w, r, http.StatusInternalServerError, "The trigger log cannot be read", "The store did not answer; see Caddy's log.")
	}
	p := consoleListPage{
		consoleBase: c.base(r, "Trigger log"),
		Query:       cq,
		Statuses:    []string{string(launch.StatusPending), string(launch.StatusCompleted), string(launch.StatusError), string(launch.StatusCompleteWithError), statusRejected},
		Windows:     []string{"1h", "24h", "7d", "30d"},
		List:        list,
		Now:         now,
	}
	if cq.Last != "" && !slices.Contains(p.Windows, cq.Last) {
		p.Windows = append(p.Windows, cq.Last)
	}
	if !cq.Since.IsZero() {
		p.Since = cq.Since.Format("2006-01-02T15:04:05")
	}
	if !cq.Until.IsZero() {
		p.Until = cq.Until.Format("2006-01-02T15:04:05")
	}
	p.TriggerNames = c.triggerNames()
	for _, e := range list.Entries {
		if e.Run != nil {
			p.Runs++
		} else {
			p.Rejections++
		}
	}
	v := cq.values()
	p.Filtered = len(v) > 0
	if list.Next != nil {
		v.Set("before", list.Next.String())
		p.NextHref = template.URL("?" + v.Encode())
		v.Del("before")
	}
	if cq.Cursor != nil {
		p.FirstHref = template.URL("?" + v.Encode())
	}
	return c.render(w, http.StatusOK, consoleListTmpl, p)
}

// triggerNames suggests trigger names for the filter: the console's own
// list, or the triggers of the running config.
func (c *Console) triggerNames() []string {
	if c.Triggers != nil {
		return c.Triggers
	}
	c.app.triggersMu.Lock()
	names := slices.Sorted(maps.Keys(c.app.triggers))
	c.app.triggersMu.Unlock()
	return names
}

// allowed is the console's trigger restriction, nil for none.
func (c *Console) allowed() []string {
	if len(c.Triggers) == 0 {
		return nil
	}
	return c.Triggers
}

func (c *Console) visible(run *launch.Run) bool {
	return len(c.Triggers) == 0 || slices.Contains(c.Triggers, run.Trigger)
}

type consoleRunPage struct {
	consoleBase
	Run      runView
	Duration time.Duration // from creation to the final status; 0 while pending
	Payload  *consolePayload
	CanRetry bool
	ReadOnly bool
	CSRF     string
	Retried  bool
	RetryURL template.URL
}

// consolePayload describes a stored body without showing it.
type consolePayload struct {
	Size        int
	ContentType string
	ExpiresAt   time.Time
}

func (c *Console) serveRun(w http.ResponseWriter, r *http.Request) error {
	id := r.URL.Query().Get("run")
	run, err := c.lookupRun(r, id)
	if err != nil {
		return c.renderLookupError(w, r, id, err)
	}
	p := consoleRunPage{
		consoleBase: c.base(r, "Run "+run.ID),
		Run:         viewRun(run),
		ReadOnly:    c.ReadOnly,
		Retried:     r.URL.Query().Get("retried") == "1",
		CanRetry:    !c.ReadOnly && (run.Status == launch.StatusError || run.Status == launch.StatusCompleteWithError),
		RetryURL:    template.URL("?run=" + url.QueryEscape(run.ID)),
	}
	if run.Status.Final() {
		p.Duration = run.UpdatedAt.Sub(run.CreatedAt)
	}
	switch pl, err := c.app.store.GetPayload(r.Context(), run.ID); {
	case err == nil:
		p.Payload = &consolePayload{Size: len(pl.Body), ContentType: pl.ContentType, ExpiresAt: pl.ExpiresAt}
	case !errors.Is(err, launch.ErrNotFound):
		c.logger.Warn("console: reading a payload's size", zap.String("run_id", run.ID), zap.Error(err))
	}
	if p.CanRetry {
		p.CSRF = c.csrfToken(csrfCookie(w, r), run.ID)
	}
	return c.render(w, http.StatusOK, consoleRunTmpl, p)
}

// lookupRun returns a run this console may show.
func (c *Console) lookupRun(r *http.Request, id string) (*launch.Run, error) {
	if id == "" || len(id) > 256 {
		return nil, launch.ErrNotFound
	}
	run, err := c.app.store.GetRun(r.Context(), id)
	if err == nil && !c.visible(run) {
		return nil, launch.ErrNotFound
	}
	return run, err
}

func (c *Console) renderLookupError(w http.ResponseWriter, r *http.Request, id string, err error) error {
	if errors.Is(err, launch.ErrNotFound) {
		return c.renderError(w, r, http.StatusNotFound, "No such run", fmt.Sprintf("There is no run %s in this console (removed after run_retention, or another trigger's).", quoteForMessage(id)))
	}
	c.logger.Error("console: reading a run", zap.Error(err))
	return c.renderError(w, r, http.StatusInternalServerError, "The trigger log cannot be read", "The store did not answer; see Caddy's log.")
}

// serveRetry retries a failed run for a same-origin POST with a valid CSRF
// token, and answers 303 to the run's page.
func (c *Console) serveRetry(w http.ResponseWriter, r *http.Request) error {
	// A browser says where a request comes from (Sec-Fetch-Site, Origin):
	// refuse any other origin before reading anything.
	if err := consoleOriginCheck.Check(r); err != nil {
		return c.renderError(w, r, http.StatusForbidden, "Cross-site request refused", "A retry must be sent from this console's own page.")
	}
	if c.ReadOnly {
		w.Header().Set("Allow", "GET, HEAD")
		return c.renderError(w, r, http.StatusMethodNotAllowed, "Read-only console", "This console is read_only: it does not retry runs.")
	}
	r.Body = http.MaxBytesReader(w, r.Body, consoleMaxForm)
	if err := r.ParseForm(); err != nil {
		return c.renderError(w, r, http.StatusBadRequest, "Bad form", "The retry form could not be read.")
	}
	id := r.URL.Query().Get("run")
	if r.PostForm.Get("action") != "retry" {
		return c.renderError(w, r, http.StatusBadRequest, "Bad form", `The console's only POST is a retry (action=retry).`)
	}
	cookie, err := r.Cookie(consoleCookie)
	if err != nil || !c.validCSRF(cookie.Value, id, r.PostForm.Get("csrf")) {
		return c.renderError(w, r, http.StatusForbidden, "Missing or invalid CSRF token", "Reload the run's page and press Retry again.")
	}
	run, err := c.lookupRun(r, id)
	if err != nil {
		return c.renderLookupError(w, r, id, err)
	}
	if run.Status == launch.StatusCompleted {
		return c.renderError(w, r, http.StatusConflict, "Nothing to retry", "Every action of this run is done.")
	}
	_, err = c.app.dispatcher.RetryRun(r.Context(), id)
	switch {
	case errors.Is(err, launch.ErrNotFound):
		return c.renderLookupError(w, r, id, err)
	case errors.Is(err, launch.ErrRunPending):
		return c.renderError(w, r, http.StatusConflict, "Run still pending", "Only a run that failed for good can be retried; this one is still being launched.")
	case err != nil:
		c.logger.Error("console: retrying a run", zap.String("run_id", id), zap.Error(err))
		return c.renderError(w, r, http.StatusInternalServerError, "Retry failed", "The run could not be queued again; see Caddy's log.")
	}
	// Who retried what, for the audit trail: the user basic_auth (or any
	// Caddy authentication) let in, if any.
	user := ""
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		user, _ = repl.GetString("http.auth.user.id")
	}
	c.logger.Info("console: run retried", zap.String("run_id", id), zap.String("trigger", run.Trigger), zap.String("user", user), zap.String("remote_addr", r.RemoteAddr))
	// Relative to the request's own URL, so it works under any prefix
	// (handle_path strips it from r.URL).
	w.Header().Set("Location", "?run="+url.QueryEscape(id)+"&retried=1")
	w.WriteHeader(http.StatusSeeOther)
	return nil
}

// consoleOriginCheck refuses requests that a browser marks as coming from
// another origin (Sec-Fetch-Site, else Origin against Host).
var consoleOriginCheck = http.NewCrossOriginProtection()

// csrfCookie returns the browser's CSRF cookie value, setting a new one when
// it has none. The cookie is HttpOnly and SameSite=Strict: another site can
// neither read it nor make the browser send it.
func csrfCookie(w http.ResponseWriter, r *http.Request) string {
	if ck, err := r.Cookie(consoleCookie); err == nil && len(ck.Value) == 43 {
		return ck.Value
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	v := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{
		Name: consoleCookie, Value: v, Path: "/",
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
	return v
}

// csrfToken binds a retry to the browser (its cookie) and to the run, under
// a key only the server holds: a token cannot be made elsewhere, nor reused
// for another run or from another browser.
func (c *Console) csrfToken(cookie, runID string) string {
	m := hmac.New(sha256.New, c.csrfKey)
	m.Write([]byte("valohai_console retry\x00"))
	m.Write([]byte(cookie))
	m.Write([]byte{0})
	m.Write([]byte(runID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (c *Console) validCSRF(cookie, runID, token string) bool {
	if cookie == "" || token == "" {
		return false
	}
	return hmac.Equal([]byte(token), []byte(c.csrfToken(cookie, runID)))
}

type consoleErrorPage struct {
	consoleBase
	Status  int
	Heading string
	Detail  string
}

func (c *Console) renderError(w http.ResponseWriter, r *http.Request, status int, heading, detail string) error {
	b := consoleBase{Title: heading, CSS: template.CSS(consoleCSS), Triggers: c.Triggers}
	return c.render(w, status, consoleErrorTmpl, consoleErrorPage{consoleBase: b, Status: status, Heading: heading, Detail: detail})
}

// render executes the page into a buffer first, so a template error is a
// 500 and never half a page.
func (c *Console) render(w http.ResponseWriter, status int, t *template.Template, data any) error {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "page", data); err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, fmt.Errorf("valohai_console: rendering: %w", err))
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, err := io.Copy(w, &buf)
	return err
}

// UnmarshalCaddyfile parses
//
//	valohai_console [<trigger>...] {
//		read_only
//	}
func (c *Console) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	c.Triggers = d.RemainingArgs()
	return parseBlock(d, 0, subTable{
		"read_only": func(l subLine) error {
			if len(l.args) > 0 {
				return l.errf("read_only takes no value")
			}
			c.ReadOnly = true
			return nil
		},
	})
}

// The pages: one layout, a template per page, the stylesheet inline (its
// hash is in the Content-Security-Policy, so no other style applies).
var (
	//go:embed console_assets
	consoleAssets embed.FS

	consoleCSS       = mustReadAsset("console_assets/console.css")
	consoleCSP       = "default-src 'none'; style-src '" + cspHash(consoleCSS) + "'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	consoleListTmpl  = consoleTemplate("list.html")
	consoleRunTmpl   = consoleTemplate("run.html")
	consoleErrorTmpl = consoleTemplate("error.html")
)

func mustReadAsset(name string) string {
	b, err := consoleAssets.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func cspHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}

var consoleFuncs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
	"ago": func(t, now time.Time) string { return humanize.RelTime(t, now, "ago", "from now") },
	"dur": func(d time.Duration) string {
		if d < time.Second {
			return d.Round(time.Millisecond).String()
		}
		return d.Round(100 * time.Millisecond).String()
	},
	"bytes": func(n int) string { return humanize.IBytes(uint64(n)) },
	"deref": func(t *time.Time) time.Time {
		if t == nil {
			return time.Time{}
		}
		return *t
	},
	// extra lists an action's other results (fetched commits, ...) as
	// name and value text.
	"extra": func(m map[string]any) [][2]string {
		var out [][2]string
		for _, k := range slices.Sorted(maps.Keys(m)) {
			v := fmt.Sprint(m[k])
			if b, err := json.Marshal(m[k]); err == nil {
				v = string(b)
			}
			out = append(out, [2]string{k, v})
		}
		return out
	},
	"now": func() time.Time { return time.Now().UTC() },
}

func consoleTemplate(page string) *template.Template {
	return template.Must(template.New(page).Funcs(consoleFuncs).ParseFS(consoleAssets, "console_assets/layout.html", "console_assets/"+page))
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Console)(nil)
	_ caddyhttp.MiddlewareHandler = (*Console)(nil)
	_ caddyfile.Unmarshaler       = (*Console)(nil)
)
