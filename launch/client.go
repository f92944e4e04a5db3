package launch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hooklaunch/caddy-valohai/launch/convert"
)

// DefaultBaseURL is Valohai's hosted service, used when Client.BaseURL is empty.
const DefaultBaseURL = "https://app.valohai.com"

const (
	defaultUserAgent = "caddy-valohai"
	defaultTimeout   = 30 * time.Second
	// maxAnswerBytes bounds how much of an answer is read, so a misbehaving
	// server cannot make a worker buffer without limit.
	maxAnswerBytes = 4 << 20
	// maxErrorBody bounds the error body kept in an APIError: it ends up in
	// run records and logs.
	maxErrorBody = 2 << 10
)

// defaultHTTPClient is shared by every Client without its own, so
// connections are pooled across them.
var defaultHTTPClient = &http.Client{Timeout: defaultTimeout}

// ErrUnsupportedAction is wrapped by Perform for an action kind this version
// cannot send. It is permanent: retrying will not help.
var ErrUnsupportedAction = errors.New("not supported by this version")

// Client calls the Valohai REST API. The zero value, given a Token, talks to
// DefaultBaseURL. A Client is safe for concurrent use.
type Client struct {
	// BaseURL is the Valohai host, such as https://app.valohai.com, without
	// /api/v0 (a trailing slash or /api/v0 suffix is tolerated).
	BaseURL string
	// Token is sent as "Authorization: Token <token>". It never appears in
	// errors.
	Token string
	// HTTP sends the requests; nil means a shared client with a 30s timeout.
	HTTP *http.Client
	// UserAgent is the User-Agent header; empty means "caddy-valohai".
	UserAgent string
	// PayloadURL is the public base of payload URLs; Valohai's error text
	// is cut of any URL under it (they are signed) before it is kept.
	PayloadURL string

	// configs caches a commit's valohai.yaml by project and full
	// identifier: what a commit holds never changes.
	configs sync.Map
}

// APIError is an answer from Valohai other than the expected success: any
// non-2xx status, or (rarely) a 2xx other than the one the endpoint
// documents, which signals a misrouted request such as a redirect that
// turned a POST into a GET.
type APIError struct {
	// Status is the HTTP status code.
	Status int
	// Body is Valohai's answer (its Django-REST error document), cut to
	// 2 KiB and with the API token blanked out should it be echoed.
	Body string
	// RetryAfter is the server's Retry-After, zero when absent.
	RetryAfter time.Duration
	// Want is the status that was expected.
	Want int
}

// Error reads like "valohai: 400 Bad Request: {...}".
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("valohai: ")
	b.WriteString(strconv.Itoa(e.Status))
	if text := http.StatusText(e.Status); text != "" {
		b.WriteString(" ")
		b.WriteString(text)
	}
	if e.Status >= 200 && e.Status < 300 && e.Want != 0 {
		fmt.Fprintf(&b, " (expected %d)", e.Want)
	}
	if body := strings.TrimSpace(e.Body); body != "" {
		b.WriteString(": ")
		b.WriteString(body)
	}
	return b.String()
}

// transportError marks a failure to get an answer at all (connection
// refused, reset, DNS, timeout): the request may not have reached Valohai,
// so it is worth sending again.
type transportError struct{ err error }

func (e *transportError) Error() string { return "valohai: " + e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// Retryable reports whether an error from a Client is worth retrying:
// network errors and timeouts, 5xx and 429 answers. Other 4xx answers, bad
// requests built locally, unreadable success answers (Valohai already acted)
// and the caller cancelling its context are permanent.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.Status >= 500 || apiErr.Status == http.StatusTooManyRequests
	}
	var tErr *transportError
	return errors.As(err, &tErr)
}

// executionAnswer is the part of Valohai's execution (or pipeline) object
// that a run records.
type executionAnswer struct {
	ID      string `json:"id"`
	Counter int64  `json:"counter"`
	URL     string `json:"url"`
	URLs    struct {
		Display string `json:"display"`
	} `json:"urls"`
	Status string `json:"status"`
}

func (a *executionAnswer) result() *ActionResult {
	return &ActionResult{
		ID:         a.ID,
		Counter:    a.Counter,
		URL:        a.URL,
		DisplayURL: a.URLs.Display,
		Status:     a.Status,
	}
}

// CreateExecution starts an execution: POST /api/v0/executions/ with body,
// expecting 201 and the new execution's object.
func (c *Client) CreateExecution(ctx context.Context, body json.RawMessage) (*ActionResult, error) {
	var answer executionAnswer
	if err := c.postJSON(ctx, "/api/v0/executions/", body, http.StatusCreated, &answer); err != nil {
		return nil, err
	}
	return answer.result(), nil
}

// Perform sends one resolved action and returns Valohai's result.
// Action.Body is an ExecutionSpec, PipelineSpec, CopySpec or FetchSpec
// (see execution.go and actions.go). Kinds this version cannot send
// fail with an error wrapping ErrUnsupportedAction.
func (c *Client) Perform(ctx context.Context, a *Action) (*ActionResult, error) {
	if a == nil {
		return nil, errors.New("valohai: nil action")
	}
	switch a.Kind {
	case ActionRunExecution:
		return c.runExecution(ctx, a)
	case ActionRunPipeline:
		return c.runPipeline(ctx, a)
	case ActionCopyPipeline:
		return c.copyPipeline(ctx, a)
	case ActionFetchRepository:
		return c.fetchRepository(ctx, a)
	default:
		return nil, fmt.Errorf("action %s is %w", a.Kind, ErrUnsupportedAction)
	}
}

// Commit is a commit of a project's repository as Valohai knows it.
type Commit struct {
	// Identifier is the commit sha, or "~<sha256>" for ad-hoc code.
	Identifier string `json:"identifier"`
	// Ref is the branch or tag Valohai saw the commit on, e.g. "main".
	Ref string `json:"ref"`
	// CommitTime is Valohai's ISO 8601 timestamp of the commit.
	CommitTime string `json:"commit_time"`
	// URL is the commit's API address.
	URL string `json:"url"`
	// Adhoc marks ad-hoc code uploads.
	Adhoc bool `json:"adhoc"`
	// Config is the parsed valohai.yaml (a list of {step: ...},
	// {pipeline: ...} maps), present when asked for. Numbers are
	// json.Number, so values pass through exactly.
	Config []any `json:"config,omitempty"`
}

// commitAnswer is a commit as the API sends it, the config still raw.
type commitAnswer struct {
	Identifier string          `json:"identifier"`
	Ref        string          `json:"ref"`
	CommitTime string          `json:"commit_time"`
	URL        string          `json:"url"`
	Adhoc      bool            `json:"adhoc"`
	Config     json.RawMessage `json:"config"`
}

func (a *commitAnswer) commit() (*Commit, error) {
	c := &Commit{Identifier: a.Identifier, Ref: a.Ref, CommitTime: a.CommitTime, URL: a.URL, Adhoc: a.Adhoc}
	if len(a.Config) == 0 || string(a.Config) == "null" {
		return c, nil
	}
	var config any
	if err := decodeNumbers(a.Config, &config); err != nil {
		return nil, fmt.Errorf("valohai: commit %s: config: %v", a.Identifier, err)
	}
	list, ok := config.([]any)
	if !ok {
		return nil, fmt.Errorf("valohai: commit %s: config is not a list of valohai.yaml entries", a.Identifier)
	}
	c.Config = list
	return c, nil
}

// decodeNumbers decodes JSON keeping numbers as json.Number, so that ids
// and values copied into a new body are sent exactly as Valohai sent them.
func decodeNumbers(data []byte, out any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// pathSegment escapes one path segment of an API URL; "" and dot segments
// are refused so that a value cannot point the request at another route.
func pathSegment(what, v string) (string, error) {
	if v == "" || v == "." || v == ".." {
		return "", fmt.Errorf("valohai: %s %q is not a valid id", what, v)
	}
	return url.PathEscape(v), nil
}

// GetCommit reads a commit: GET /api/v0/commits/<identifier>/, scoped to
// project when it is not empty, with the parsed valohai.yaml when
// withConfig (?include=config). The identifier is a sha (or "~<sha256>");
// to accept a branch name too, use ResolveCommit.
func (c *Client) GetCommit(ctx context.Context, project, identifier string, withConfig bool) (*Commit, error) {
	seg, err := pathSegment("commit", identifier)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	if project != "" {
		q.Set("project", project)
	}
	if withConfig {
		q.Set("include", "config")
	}
	path := "/api/v0/commits/" + seg + "/"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var answer commitAnswer
	if err := c.getJSON(ctx, path, &answer); err != nil {
		return nil, err
	}
	return answer.commit()
}

// commitListLimit is the page size the CLI asks for when it resolves
// commits; one page is all that is read.
const commitListLimit = 9000

// ListCommits lists a project's commits other than ad-hoc code, newest
// first: GET /api/v0/commits/?project=&adhoc=false, one page of up to 9000
// as the CLI reads it.
func (c *Client) ListCommits(ctx context.Context, project string) ([]Commit, error) {
	if project == "" {
		return nil, errors.New("valohai: listing commits needs a project")
	}
	q := url.Values{"project": {project}, "adhoc": {"false"}, "limit": {strconv.Itoa(commitListLimit)}}
	var answer struct {
		Results []commitAnswer `json:"results"`
	}
	if err := c.getJSON(ctx, "/api/v0/commits/?"+q.Encode(), &answer); err != nil {
		return nil, err
	}
	out := make([]Commit, 0, len(answer.Results))
	for i := range answer.Results {
		commit, err := answer.Results[i].commit()
		if err != nil {
			return nil, err
		}
		out = append(out, *commit)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].CommitTime > out[j].CommitTime })
	return out, nil
}

// ResolveCommit reads the commit a trigger names, with its valohai.yaml.
// ref is a full commit identifier, a branch or tag such as "main", or an
// abbreviated sha, resolved the way valohai-cli resolves --commit: the
// project's commit list (newest first) is searched for the exact
// identifier, then the newest commit on a branch or tag of that name
// (what `git rev-parse` gives the CLI locally), then the newest commit
// whose identifier starts with ref. When nothing matches, the repository
// is fetched once (POST /api/v0/projects/<id>/fetch/) and the list read
// again before it fails. Ad-hoc identifiers ("~...") are taken as they
// are. The config is read by full identifier and cached: a commit's
// valohai.yaml never changes, while a branch is resolved on every call.
func (c *Client) ResolveCommit(ctx context.Context, project, ref string) (*Commit, error) {
	key := project + "\x00" + ref
	if cached, ok := c.configs.Load(key); ok {
		commit := *cached.(*Commit)
		return &commit, nil
	}
	ident := ref
	if isFullSha(ref) {
		// A full identifier is read directly; only when Valohai does not
		// know it does the list (and the fetch) follow.
		commit, err := c.GetCommit(ctx, project, ref, true)
		var apiErr *APIError
		if err == nil {
			c.cacheCommit(project, commit)
			return commit, nil
		}
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
			return nil, err
		}
	}
	if !strings.HasPrefix(ref, "~") {
		commits, err := c.ListCommits(ctx, project)
		if err != nil {
			return nil, err
		}
		match := matchCommit(commits, ref)
		if match == nil && ctx.Value(noFetchKey{}) != nil {
			return nil, fmt.Errorf("valohai: commit or branch %q is not known to project %s (a dry run does not fetch the repository)", ref, project)
		}
		if match == nil {
			if _, err := c.FetchRepository(ctx, project); err != nil {
				return nil, err
			}
			if commits, err = c.ListCommits(ctx, project); err != nil {
				return nil, err
			}
			if match = matchCommit(commits, ref); match == nil {
				return nil, fmt.Errorf("valohai: commit or branch %q is not known to project %s, even after fetching the repository: is it pushed?", ref, project)
			}
		}
		ident = match.Identifier
	}
	if cached, ok := c.configs.Load(project + "\x00" + ident); ok {
		commit := *cached.(*Commit)
		return &commit, nil
	}
	commit, err := c.GetCommit(ctx, project, ident, true)
	if err != nil {
		return nil, err
	}
	if commit.Identifier == ident {
		c.cacheCommit(project, commit)
	}
	return commit, nil
}

// cacheCommit keeps a commit read by its full identifier. The cached
// Commit is shared read-only: the converter and the body builder copy
// what they take from the config.
func (c *Client) cacheCommit(project string, commit *Commit) {
	if commit.Identifier == "" || commit.Config == nil {
		return
	}
	stored := *commit
	c.configs.Store(project+"\x00"+commit.Identifier, &stored)
}

// isFullSha reports whether ref is a full git sha (40 or 64 hex digits).
func isFullSha(ref string) bool {
	return (len(ref) == 40 || len(ref) == 64) && isHex(ref)
}

// matchCommit picks ref among commits (newest first): exact identifier,
// then branch or tag, then identifier prefix; nil when none matches.
func matchCommit(commits []Commit, ref string) *Commit {
	if ref == "" {
		return nil
	}
	for i := range commits {
		if commits[i].Identifier == ref {
			return &commits[i]
		}
	}
	for i := range commits {
		if commits[i].Ref == ref {
			return &commits[i]
		}
	}
	if isHex(ref) {
		for i := range commits {
			if strings.HasPrefix(commits[i].Identifier, ref) {
				return &commits[i]
			}
		}
	}
	return nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune("0123456789abcdefABCDEF", rune(s[i])) {
			return false
		}
	}
	return s != ""
}

// CreatePipeline starts a pipeline: POST /api/v0/pipelines/ with body (a
// *PipelineBody, a json.RawMessage or anything json.Marshal takes),
// expecting 201 and the new pipeline's object.
func (c *Client) CreatePipeline(ctx context.Context, body any) (*ActionResult, error) {
	if body == nil {
		return nil, errors.New("valohai: no pipeline body")
	}
	var answer executionAnswer
	if err := c.postJSON(ctx, "/api/v0/pipelines/", body, http.StatusCreated, &answer); err != nil {
		return nil, err
	}
	return answer.result(), nil
}

// Pipeline is a pipeline as GET /api/v0/pipelines/<id>/ describes it
// (see convert.Pipeline, which also rebuilds it for copy_pipeline).
type Pipeline = convert.Pipeline

// GetPipeline reads a pipeline by its id or by "<project-id>:<counter>"
// (also "<project-id>:latest"): GET /api/v0/pipelines/<ref>/.
func (c *Client) GetPipeline(ctx context.Context, idOrProjectCounter string) (*Pipeline, error) {
	seg, err := pathSegment("pipeline", idOrProjectCounter)
	if err != nil {
		return nil, err
	}
	var raw json.RawMessage
	if err := c.getJSON(ctx, "/api/v0/pipelines/"+seg+"/", &raw); err != nil {
		return nil, err
	}
	var answer struct {
		ID      string          `json:"id"`
		Counter int64           `json:"counter"`
		Status  string          `json:"status"`
		Title   string          `json:"title"`
		Project json.RawMessage `json:"project"`
		Tags    []string        `json:"tags"`
		URL     string          `json:"url"`
		URLs    struct {
			Display string `json:"display"`
		} `json:"urls"`
		Nodes      []map[string]any `json:"nodes"`
		Edges      []map[string]any `json:"edges"`
		Parameters map[string]any   `json:"parameters"`
	}
	if err := decodeNumbers(raw, &answer); err != nil {
		return nil, fmt.Errorf("valohai: pipeline %s: undecodable answer: %v", idOrProjectCounter, err)
	}
	p := &Pipeline{
		ID: answer.ID, Counter: answer.Counter, Status: answer.Status, Title: answer.Title,
		Tags: answer.Tags, URL: answer.URL, DisplayURL: answer.URLs.Display,
		Nodes: answer.Nodes, Edges: answer.Edges, Parameters: answer.Parameters,
	}
	var project struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(answer.Project, &p.Project) != nil && json.Unmarshal(answer.Project, &project) == nil {
		p.Project = project.ID
	}
	return p, nil
}

// FetchResult is Valohai's answer to a repository fetch.
type FetchResult struct {
	// Commits are the commits this fetch saw for the first time.
	Commits []Commit
	// Errors are Valohai's fetch errors (such as a repository it could not
	// reach); the fetch itself still answered 201.
	Errors []string
}

// FetchRepository makes Valohai fetch the project's repository: POST
// /api/v0/projects/<id>/fetch/ (no body), expecting 201 with the new
// commits and any fetch errors.
func (c *Client) FetchRepository(ctx context.Context, project string) (*FetchResult, error) {
	seg, err := pathSegment("project", project)
	if err != nil {
		return nil, err
	}
	var answer struct {
		Commits []commitAnswer    `json:"commits"`
		Errors  []json.RawMessage `json:"errors"`
	}
	if err := c.do(ctx, http.MethodPost, "/api/v0/projects/"+seg+"/fetch/", nil, http.StatusCreated, &answer); err != nil {
		return nil, err
	}
	res := &FetchResult{Commits: []Commit{}, Errors: []string{}}
	for i := range answer.Commits {
		commit, err := answer.Commits[i].commit()
		if err != nil {
			return nil, err
		}
		res.Commits = append(res.Commits, *commit)
	}
	for _, e := range answer.Errors {
		var s string
		if json.Unmarshal(e, &s) != nil {
			s = string(e) // an error object, kept as its JSON
		}
		res.Errors = append(res.Errors, s)
	}
	return res, nil
}

// postJSON POSTs body (a json.RawMessage or anything json.Marshal accepts)
// to path and decodes the answer into out (nil to discard it). want is the
// success status the endpoint documents.
func (c *Client) postJSON(ctx context.Context, path string, body any, want int, out any) error {
	var data []byte
	switch b := body.(type) {
	case json.RawMessage:
		// Compact validates too: a broken body is our bug, not Valohai's 400.
		var buf bytes.Buffer
		if err := json.Compact(&buf, b); err != nil {
			return fmt.Errorf("valohai: request body for %s: %w", path, err)
		}
		data = buf.Bytes()
	default:
		var err error
		if data, err = json.Marshal(body); err != nil {
			return fmt.Errorf("valohai: request body for %s: %w", path, err)
		}
	}
	return c.do(ctx, http.MethodPost, path, data, want, out)
}

// getJSON GETs path, expecting 200, and decodes the answer into out.
func (c *Client) getJSON(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, nil, http.StatusOK, out)
}

// endpoint joins the base URL and an /api/v0/... path.
func (c *Client) endpoint(path string) (string, error) {
	base := c.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	base = strings.TrimRight(base, "/")
	base = strings.TrimSuffix(base, "/api/v0")
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("valohai: base URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("valohai: base URL %q is not an http(s) URL with a host", c.BaseURL)
	}
	return base + path, nil
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, want int, out any) error {
	target, err := c.endpoint(path)
	if err != nil {
		return err
	}
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, reader)
	if err != nil {
		return fmt.Errorf("valohai: building %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	ua := c.UserAgent
	if ua == "" {
		ua = defaultUserAgent
	}
	req.Header.Set("User-Agent", ua)
	if c.Token != "" {
		req.Header.Set("Authorization", "Token "+c.Token)
	}

	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTPClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return &transportError{err: err}
	}
	defer resp.Body.Close()

	data, readErr := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if resp.StatusCode != want {
		// An error answer cut short is still an error answer: keep what
		// arrived and classify by status.
		return &APIError{
			Status:     resp.StatusCode,
			Body:       c.errorBody(data),
			RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
			Want:       want,
		}
	}
	// From here on Valohai has acted on the request, so no failure is
	// retryable: sending it again would launch a second run. Errors are
	// formatted with %v for that reason, hiding the network error type.
	if readErr != nil {
		return fmt.Errorf("valohai: %s %s answered %d but reading the answer failed: %v", method, path, resp.StatusCode, readErr)
	}
	if len(data) > maxAnswerBytes {
		return fmt.Errorf("valohai: %s %s answered %d with more than %d bytes", method, path, resp.StatusCode, maxAnswerBytes)
	}
	if out == nil || len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("valohai: %s %s answered %d with an undecodable body: %v", method, path, resp.StatusCode, err)
	}
	return nil
}

// errorBody prepares an error answer for keeping: cut to maxErrorBody on a
// rune boundary, and without the token in case a proxy echoed the request.
func (c *Client) errorBody(data []byte) string {
	s := string(data)
	if c.Token != "" {
		s = strings.ReplaceAll(s, c.Token, "[token]")
	}
	s = RedactPayloadURLs(s, c.PayloadURL)
	if len(s) > maxErrorBody {
		cut := maxErrorBody
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…(truncated)"
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP date.
// Anything unreadable, or a date in the past, is zero.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if isDigits(v) {
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil || secs > int64(maxRetryAfter/time.Second) {
			// Overflowing values mean "a very long time"; the caller caps
			// it with its own maximum backoff.
			return maxRetryAfter
		}
		return time.Duration(secs) * time.Second
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	return min(max(at.Sub(now), 0), maxRetryAfter)
}

// maxRetryAfter keeps a huge Retry-After from overflowing time.Duration.
const maxRetryAfter = 365 * 24 * time.Hour

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// RedactPayloadURLs replaces every URL under base (a payload URL: signed,
// so it grants reading the webhook's body) in text with "[payload-url]".
// Valohai echoes the inputs it refuses in its error text; that text is
// logged, stored and answered, so it must not carry the signature.
func RedactPayloadURLs(text, base string) string {
	base = strings.TrimRight(base, "/")
	if base == "" {
		return text
	}
	for _, b := range []string{base, strings.ReplaceAll(base, "/", `\/`)} {
		for {
			i := strings.Index(text, b)
			if i < 0 {
				break
			}
			end := i + len(b)
			for end < len(text) && !strings.ContainsRune("\"' \t\r\n<>,]}", rune(text[end])) {
				end++
			}
			text = text[:i] + "[payload-url]" + text[end:]
		}
	}
	return text
}

// createOnce POSTs a create (execution or pipeline) so that one action
// creates at most one object. A retry (a.Attempts > 1: the previous try
// timed out, lost its connection or got a 5xx, so Valohai may have acted)
// first lists the project's newest objects and takes the one tagged with
// the action's marker instead of posting again.
func (c *Client) createOnce(ctx context.Context, a *Action, path string, body any) (*ActionResult, error) {
	if a.Marker != "" && a.Attempts > 1 {
		project := ""
		switch b := body.(type) {
		case *ExecutionBody:
			project = b.Project
		case *PipelineBody:
			project = b.Project
		}
		if res, err := c.findCreated(ctx, path, project, a.Marker); err != nil {
			return nil, err
		} else if res != nil {
			return res, nil
		}
	}
	var answer executionAnswer
	if err := c.postJSON(ctx, path, body, http.StatusCreated, &answer); err != nil {
		return nil, err
	}
	return answer.result(), nil
}

// findCreatedLimit is how many of the project's newest executions or
// pipelines a retry looks through for its marker.
const findCreatedLimit = 100

// findCreated looks among the project's newest objects at path for one
// tagged marker.
func (c *Client) findCreated(ctx context.Context, path, project, marker string) (*ActionResult, error) {
	if project == "" {
		return nil, nil
	}
	q := url.Values{"project": {project}, "ordering": {"-counter"}, "limit": {strconv.Itoa(findCreatedLimit)}}
	var answer struct {
		Results []struct {
			executionAnswer
			Tags []json.RawMessage `json:"tags"`
		} `json:"results"`
	}
	if err := c.getJSON(ctx, path+"?"+q.Encode(), &answer); err != nil {
		return nil, err
	}
	for _, r := range answer.Results {
		for _, raw := range r.Tags {
			var tag string
			if json.Unmarshal(raw, &tag) != nil {
				var obj struct {
					Name string `json:"name"`
				}
				_ = json.Unmarshal(raw, &obj)
				tag = obj.Name
			}
			if tag == marker {
				return r.executionAnswer.result(), nil
			}
		}
	}
	return nil, nil
}
