// Package simulator is a local stand-in for the Valohai REST API, for demos
// and tests. It answers the endpoints the launch side calls (executions,
// pipelines, commits with their valohai.yaml, project fetch) with the shapes
// and Django-REST-style errors the real API uses, records every call it
// receives, and can be told to fail or slow down so retry paths can be
// exercised.
//
// A Simulator is a plain net/http Handler. It serves the API under any path
// that contains /api/v0/ (so it may be mounted below a prefix), and a few
// unauthenticated test helpers under /__simulator/:
//
//	GET  /__simulator/calls   every recorded API call, in order of arrival
//	POST /__simulator/fail    {"count":2,"status":503,"retry_after_seconds":2}
//	POST /__simulator/delay   {"delay":"500ms"}, or {"delay":"3s","after_create":true}
//	POST /__simulator/reset   forget calls and knobs
//
// API endpoints (all paths end in a slash, as in Valohai):
//
//	POST /api/v0/executions/                       create an execution (201)
//	GET  /api/v0/executions/{id}/                  also {project}:{counter} and {project}:latest
//	POST /api/v0/pipelines/                        create a pipeline (201)
//	GET  /api/v0/pipelines/{id}/                   also {project}:{counter} and {project}:latest
//	GET  /api/v0/commits/?project={id}&adhoc=false list commits ({"count","next","previous","results"})
//	GET  /api/v0/commits/{identifier}/             ?project={id} to scope, ?include=config for valohai.yaml
//	POST /api/v0/projects/{id}/fetch/              newly seen commits (201)
//
// Order of checks for an API call, as in Django REST framework: the delay,
// then a pending injected failure, then body size, then URL resolution (404),
// then authentication (401), then the method (405), then the body (415, 400,
// and 404 for an unknown project).
package simulator

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// MaxBodyBytes caps how much of one request body the simulator reads; a
// larger body is answered 413.
const MaxBodyBytes = 32 << 20

const (
	apiPrefix     = "/api/v0/"
	controlPrefix = "/__simulator/"

	// statusClientClosed is recorded for a call whose client went away during
	// the injected delay (nginx's convention; nothing is written back).
	statusClientClosed = 499
)

// Config is what a Simulator knows: the token it accepts and the projects,
// with their commits, that exist.
type Config struct {
	// Token is the API token accepted in "Authorization: Token <token>".
	// An empty Token accepts no request at all.
	Token string
	// Projects are the known projects by id (a UUID string in Valohai). The
	// map key is the id; Project.ID may be left empty.
	Projects map[string]*Project
	// BaseURL is the public base (scheme, host and optional path prefix, no
	// trailing slash needed) used in the url and urls.display fields. When
	// empty it is derived from each request: its scheme, Host and the path
	// prefix the simulator is mounted under.
	BaseURL string
}

// Project is one Valohai project the simulator knows.
type Project struct {
	// ID is the project id; when set it must equal the key in
	// Config.Projects.
	ID string
	// Name is the owner/name shown in display URLs, e.g. "acme/ml". It
	// defaults to the id.
	Name string
	// Commits are the project's commits, keyed by identifier (sha) and, if
	// wanted, by refs like "main" that map to the same commit. A commit
	// with an empty Identifier takes its key as identifier.
	Commits map[string]Commit
}

// Commit is one commit of a project and the valohai.yaml it holds.
type Commit struct {
	// Identifier is the commit sha (or "~<sha256>" for an ad-hoc commit).
	Identifier string
	// Ref is the branch or tag, e.g. "main".
	Ref string
	// Config is the parsed valohai.yaml (a list of {step: ...} and
	// {pipeline: ...} maps), as Valohai returns it with ?include=config. When
	// it is non-empty, executions and pipeline nodes must name one of its
	// steps. See ParseConfigYAML.
	Config []any
}

// Call is one API call the simulator received and what it answered.
type Call struct {
	// Method is the HTTP method.
	Method string `json:"method"`
	// Path is the request path as received, including any mount prefix.
	Path string `json:"path"`
	// Query is the raw query string, without "?".
	Query string `json:"query"`
	// Body is the request body: the JSON itself when it is valid JSON, else
	// the bytes as a JSON string; null when empty or over MaxBodyBytes.
	Body json.RawMessage `json:"body"`
	// Status is the status answered; 0 while the call is still being
	// answered, 499 when the client went away during an injected delay.
	Status int `json:"status"`
	// At is when the call arrived.
	At time.Time `json:"at"`
	// Response is the JSON body answered.
	Response json.RawMessage `json:"response"`
}

// Simulator is the Valohai API stand-in. It implements http.Handler and is
// safe for concurrent use. Create one with New.
type Simulator struct {
	tokenSum [sha256.Size]byte
	hasToken bool
	baseURL  string
	projects map[string]*project
	ids      []string // project ids, sorted

	mu             sync.Mutex
	calls          []*Call
	failLeft       int
	failStatus     int
	failRetryAfter time.Duration
	delay          time.Duration
	delayAfter     bool // the delay comes after the call took effect

	executions    map[string]map[string]any // by id
	execCounter   map[string]int            // project id -> last counter
	dropLeft      int                       // creates whose answer is dropped
	execByCounter map[string]string         // "project:counter" -> id
	pipelines     map[string]map[string]any // by id
	pipeCounter   map[string]int
	pipeByCounter map[string]string
	nodeProject   map[string]string          // pipeline node id -> project id
	fetched       map[string]map[string]bool // project id -> identifiers reported by fetch
}

// project is a Project prepared for lookups.
type project struct {
	id, name   string
	repository int                    // stands in for Valohai's repository id
	byKey      map[string]*commitInfo // Project.Commits keys
	byIdent    map[string]*commitInfo
	byRef      map[string]*commitInfo // first commit (by identifier) with that ref
	commits    []*commitInfo          // unique, sorted by identifier
}

// commitInfo is a Commit prepared for lookups.
type commitInfo struct {
	identifier, ref string
	config          []any           // normalized to JSON-compatible values
	steps           map[string]bool // nil when the commit has no config
	time            time.Time
}

// New returns a Simulator serving cfg. The configuration is copied; later
// changes to cfg have no effect. Call Config.Validate first to catch
// mistakes New tolerates (it picks defaults instead).
func New(cfg Config) *Simulator {
	s := &Simulator{
		hasToken: cfg.Token != "",
		tokenSum: sha256.Sum256([]byte(cfg.Token)),
		baseURL:  strings.TrimSuffix(cfg.BaseURL, "/"),
		projects: make(map[string]*project, len(cfg.Projects)),
	}
	s.initState()
	created := time.Now().UTC()
	for id := range cfg.Projects {
		s.ids = append(s.ids, id)
	}
	sort.Strings(s.ids)
	for i, id := range s.ids {
		src := cfg.Projects[id]
		p := &project{
			id:         id,
			name:       id,
			repository: i + 1,
			byKey:      map[string]*commitInfo{},
			byIdent:    map[string]*commitInfo{},
			byRef:      map[string]*commitInfo{},
		}
		if src != nil && src.Name != "" {
			p.name = src.Name
		}
		if src != nil {
			keys := make([]string, 0, len(src.Commits))
			for k := range src.Commits {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				c := src.Commits[k]
				ident := c.Identifier
				if ident == "" {
					ident = k
				}
				ci := p.byIdent[ident]
				if ci == nil {
					ci = &commitInfo{identifier: ident, ref: c.Ref, time: created}
					ci.config, _ = normalizeConfig(c.Config)
					ci.steps = stepNames(ci.config)
					p.byIdent[ident] = ci
					p.commits = append(p.commits, ci)
				}
				p.byKey[k] = ci
			}
		}
		sort.Slice(p.commits, func(a, b int) bool { return p.commits[a].identifier < p.commits[b].identifier })
		for _, c := range p.commits {
			if c.ref != "" && p.byRef[c.ref] == nil {
				p.byRef[c.ref] = c
			}
		}
		s.projects[id] = p
	}
	return s
}

// Validate reports configuration mistakes that New would paper over: an
// empty token, a project whose ID differs from its key, a commit without an
// identifier, or a Config that cannot be encoded as JSON.
func (c Config) Validate() error {
	var errs []error
	if c.Token == "" {
		errs = append(errs, errors.New("simulator: token is empty, no request would be accepted"))
	}
	for key, p := range c.Projects {
		if key == "" {
			errs = append(errs, errors.New("simulator: project with an empty id"))
		}
		if p == nil {
			continue
		}
		if p.ID != "" && p.ID != key {
			errs = append(errs, fmt.Errorf("simulator: project %q has ID %q", key, p.ID))
		}
		for ck, commit := range p.Commits {
			if ck == "" && commit.Identifier == "" {
				errs = append(errs, fmt.Errorf("simulator: project %q: commit without identifier", key))
			}
			if _, err := normalizeConfig(commit.Config); err != nil {
				errs = append(errs, fmt.Errorf("simulator: project %q commit %q: %w", key, ck, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (s *Simulator) initState() {
	s.executions = map[string]map[string]any{}
	s.execCounter = map[string]int{}
	s.execByCounter = map[string]string{}
	s.pipelines = map[string]map[string]any{}
	s.pipeCounter = map[string]int{}
	s.pipeByCounter = map[string]string{}
	s.nodeProject = map[string]string{}
	s.fetched = map[string]map[string]bool{}
}

// Calls returns a copy of every API call received since New or the last
// Reset, in order of arrival. Calls to /__simulator/ are not recorded.
func (s *Simulator) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Call, len(s.calls))
	for i, c := range s.calls {
		out[i] = *c
		out[i].Body = bytes.Clone(c.Body)
		out[i].Response = bytes.Clone(c.Response)
	}
	return out
}

// Fail makes the next n API calls answer status with a JSON
// {"detail": "..."} body, before authentication or validation; they are
// recorded like any other call. When retryAfter > 0 the answers carry a
// Retry-After header in whole seconds (rounded up). Each Fail replaces the
// previous one; n <= 0 cancels pending failures. A status outside 400-599
// is taken as 503.
func (s *Simulator) Fail(n int, status int, retryAfter time.Duration) {
	if status < 400 || status > 599 {
		status = http.StatusServiceUnavailable
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failLeft = max(n, 0)
	s.failStatus = status
	s.failRetryAfter = max(retryAfter, 0)
}

// DropAfterCreate makes the next n successful creates (POST answered 201)
// take effect and then lose their answer: the connection is closed without
// a response, as when a proxy or the network cuts it after Valohai acted.
func (s *Simulator) DropAfterCreate(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropLeft = max(n, 0)
}

func (s *Simulator) takeDrop() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dropLeft == 0 {
		return false
	}
	s.dropLeft--
	return true
}

// SetDelay makes every API call wait d before it is answered. A client that
// gives up meanwhile gets nothing; its call is recorded with status 499.
// d <= 0 removes the delay.
func (s *Simulator) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay, s.delayAfter = max(d, 0), false
}

// SetDelayAfterCreate makes every create take effect at once and wait d
// before its answer is written: a create Valohai performed while its
// client was cut off (killed, timed out). Other calls are answered at
// once. d <= 0 removes the delay.
func (s *Simulator) SetDelayAfterCreate(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay, s.delayAfter = max(d, 0), d > 0
}

// Reset forgets the recorded calls, pending failures and the delay. Created
// executions and pipelines, their counters and what fetch has reported are
// kept, as they would be on a real server.
func (s *Simulator) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
	s.failLeft, s.failStatus, s.failRetryAfter = 0, 0, 0
	s.delay, s.delayAfter = 0, false
}

// reply is an answer before it is written.
type reply struct {
	status int
	body   any
	header map[string]string
}

func detail(status int, msg string) reply {
	return reply{status: status, body: map[string]any{"detail": msg}}
}

func notFound() reply { return detail(http.StatusNotFound, "Not found.") }

// ServeHTTP serves the API and the /__simulator/ helpers.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	api := strings.Index(path, apiPrefix)
	ctl := strings.Index(path, controlPrefix)
	switch {
	case ctl >= 0 && (api < 0 || ctl < api):
		s.serveControl(w, r, path[ctl+len(controlPrefix):])
	case api >= 0:
		s.serveAPI(w, r, path[:api], path[api+len(apiPrefix):])
	default:
		writeReply(w, notFound())
	}
}

// serveAPI records the call, applies the knobs and answers it. mount is the
// path before /api/v0/, rest the path after it.
func (s *Simulator) serveAPI(w http.ResponseWriter, r *http.Request, mount, rest string) {
	call := &Call{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, At: time.Now().UTC()}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	tooLarge := false
	if err != nil {
		var mbe *http.MaxBytesError
		if !errors.As(err, &mbe) {
			// The client broke off while sending; there is no one to answer.
			s.record(call, statusClientClosed, []byte(`{"detail":"Client closed request."}`))
			return
		}
		tooLarge, body = true, nil
	}
	call.Body = recordedBody(body)

	s.mu.Lock()
	s.calls = append(s.calls, call)
	delay, after := s.delay, s.delayAfter
	s.mu.Unlock()

	if delay > 0 && after {
		rep := s.answerAPI(r, mount, rest, body, tooLarge)
		if rep.status != http.StatusCreated {
			s.finish(call, rep.status, writeReply(w, rep))
			return
		}
		data, _ := encodeJSON(rep.body)
		t := time.NewTimer(delay)
		select {
		case <-r.Context().Done():
			t.Stop()
			s.finish(call, statusClientClosed, data)
			return
		case <-t.C:
		}
		s.finish(call, rep.status, writeReply(w, rep))
		return
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-r.Context().Done():
			t.Stop()
			s.finish(call, statusClientClosed, []byte(`{"detail":"Client closed request."}`))
			return
		case <-t.C:
		}
	}

	rep := s.answerAPI(r, mount, rest, body, tooLarge)
	if rep.status == http.StatusCreated && r.Method == http.MethodPost && s.takeDrop() {
		// The create happened; the answer is lost (a proxy timeout, a
		// connection cut): close the connection without a response.
		data, _ := encodeJSON(rep.body)
		s.finish(call, statusClientClosed, data)
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	data := writeReply(w, rep)
	s.finish(call, rep.status, data)
}

// record appends a finished call.
func (s *Simulator) record(call *Call, status int, response []byte) {
	call.Status, call.Response = status, response
	s.mu.Lock()
	s.calls = append(s.calls, call)
	s.mu.Unlock()
}

// finish fills in the answer of a recorded call.
func (s *Simulator) finish(call *Call, status int, response []byte) {
	s.mu.Lock()
	call.Status, call.Response = status, response
	s.mu.Unlock()
}

// recordedBody keeps valid JSON as is and turns anything else into a JSON
// string, so a Call always encodes.
func recordedBody(body []byte) json.RawMessage {
	if len(body) == 0 {
		return nil
	}
	if utf8.Valid(body) && json.Valid(body) {
		return bytes.Clone(body)
	}
	b, _ := json.Marshal(string(body)) // invalid UTF-8 becomes U+FFFD
	return b
}

// route is one API endpoint: the handlers by method.
type route map[string]func(r *http.Request, base, arg string, body []byte) reply

// match resolves the path after /api/v0/ to a route and its argument.
func (s *Simulator) match(rest string) (route, string) {
	if !strings.HasSuffix(rest, "/") {
		return nil, ""
	}
	seg := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	for _, x := range seg {
		if x == "" {
			return nil, ""
		}
	}
	switch {
	case len(seg) == 1 && seg[0] == "executions":
		return route{http.MethodPost: s.createExecution, http.MethodGet: s.listExecutions}, ""
	case len(seg) == 2 && seg[0] == "executions":
		return route{http.MethodGet: s.getExecution}, seg[1]
	case len(seg) == 1 && seg[0] == "pipelines":
		return route{http.MethodPost: s.createPipeline, http.MethodGet: s.listPipelines}, ""
	case len(seg) == 2 && seg[0] == "pipelines":
		return route{http.MethodGet: s.getPipeline}, seg[1]
	case len(seg) == 1 && seg[0] == "commits":
		return route{http.MethodGet: s.listCommits}, ""
	case len(seg) == 2 && seg[0] == "commits":
		return route{http.MethodGet: s.getCommit}, seg[1]
	case len(seg) == 3 && seg[0] == "projects" && seg[2] == "fetch":
		return route{http.MethodPost: s.fetchProject}, seg[1]
	}
	return nil, ""
}

func (s *Simulator) answerAPI(r *http.Request, mount, rest string, body []byte, tooLarge bool) reply {
	if rep, ok := s.takeFailure(); ok {
		return rep
	}
	if tooLarge {
		return detail(http.StatusRequestEntityTooLarge, "Request body is larger than the simulator's limit.")
	}
	rt, arg := s.match(rest)
	if rt == nil {
		return notFound()
	}
	if rep, ok := s.authenticate(r); !ok {
		return rep
	}
	handle, ok := rt[r.Method]
	if !ok {
		allowed := make([]string, 0, len(rt))
		for m := range rt {
			allowed = append(allowed, m)
		}
		sort.Strings(allowed)
		rep := detail(http.StatusMethodNotAllowed, fmt.Sprintf("Method %q not allowed.", r.Method))
		rep.header = map[string]string{"Allow": strings.Join(allowed, ", ")}
		return rep
	}
	return handle(r, s.base(r, mount), arg, body)
}

// takeFailure consumes one injected failure, if any is pending.
func (s *Simulator) takeFailure() (reply, bool) {
	s.mu.Lock()
	if s.failLeft == 0 {
		s.mu.Unlock()
		return reply{}, false
	}
	s.failLeft--
	status, after := s.failStatus, s.failRetryAfter
	s.mu.Unlock()

	secs := int64(math.Ceil(after.Seconds()))
	var msg string
	switch status {
	case http.StatusTooManyRequests:
		msg = "Request was throttled."
		if secs > 0 {
			msg = fmt.Sprintf("Request was throttled. Expected available in %d second%s.", secs, plural(secs))
		}
	case http.StatusServiceUnavailable:
		msg = "Service temporarily unavailable, try again later."
	case http.StatusInternalServerError:
		msg = "A server error occurred."
	default:
		msg = http.StatusText(status) + "."
		if msg == "." {
			msg = "Simulated failure."
		}
	}
	rep := detail(status, msg)
	if secs > 0 {
		rep.header = map[string]string{"Retry-After": strconv.FormatInt(secs, 10)}
	}
	return rep, true
}

func plural(n int64) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// authenticate checks "Authorization: Token <token>" the way Django REST
// framework's TokenAuthentication does, comparing in constant time.
func (s *Simulator) authenticate(r *http.Request) (reply, bool) {
	fail := func(msg string) (reply, bool) {
		rep := detail(http.StatusUnauthorized, msg)
		rep.header = map[string]string{"WWW-Authenticate": "Token"}
		return rep, false
	}
	parts := strings.Fields(r.Header.Get("Authorization"))
	switch {
	case len(parts) == 0 || !strings.EqualFold(parts[0], "Token"):
		return fail("Authentication credentials were not provided.")
	case len(parts) == 1:
		return fail("Invalid token header. No credentials provided.")
	case len(parts) > 2:
		return fail("Invalid token header. Token string should not contain spaces.")
	}
	// Hashing first keeps the comparison constant-time in the length too.
	got := sha256.Sum256([]byte(parts[1]))
	if !s.hasToken || subtle.ConstantTimeCompare(got[:], s.tokenSum[:]) != 1 {
		return fail("Invalid token.")
	}
	return reply{}, true
}

// base is the public URL prefix for url fields.
func (s *Simulator) base(r *http.Request, mount string) string {
	if s.baseURL != "" {
		return s.baseURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + mount
}

// writeReply writes rep as JSON and returns the body written (without the
// trailing newline).
func writeReply(w http.ResponseWriter, rep reply) []byte {
	data, err := encodeJSON(rep.body)
	if err != nil {
		rep = detail(http.StatusInternalServerError, "A server error occurred.")
		data, _ = encodeJSON(rep.body)
	}
	h := w.Header()
	for k, v := range rep.header {
		h.Set(k, v)
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(data)+1))
	w.WriteHeader(rep.status)
	_, _ = w.Write(append(data, '\n'))
	return data
}

// encodeJSON marshals without HTML escaping, so URLs stay readable.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Interface guard.
var _ http.Handler = (*Simulator)(nil)
