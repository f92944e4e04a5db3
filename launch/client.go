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
	"time"
	"unicode/utf8"
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

// Perform sends one resolved action and returns Valohai's result. For
// run_execution, Action.Body is the execution body itself; for
// run_pipeline, copy_pipeline and fetch_repository it is a PipelineSpec,
// CopySpec or FetchSpec (see actions.go). Kinds this version cannot send
// fail with an error wrapping ErrUnsupportedAction.
func (c *Client) Perform(ctx context.Context, a *Action) (*ActionResult, error) {
	if a == nil {
		return nil, errors.New("valohai: nil action")
	}
	switch a.Kind {
	case ActionRunExecution:
		if len(a.Body) == 0 {
			return nil, fmt.Errorf("valohai: action %s has no body", a.Kind)
		}
		return c.CreateExecution(ctx, a.Body)
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
// ref is a commit identifier, a branch or tag such as "main", or an
// abbreviated sha. It asks for the identifier first; when Valohai does not
// know it (404), it lists the project's commits and takes the newest commit
// on that branch, else the one commit whose sha starts with ref. A commit
// Valohai has not fetched yet is an error that is not retryable: fetch the
// repository first (a fetch_repository action before this one).
func (c *Client) ResolveCommit(ctx context.Context, project, ref string) (*Commit, error) {
	commit, err := c.GetCommit(ctx, project, ref, true)
	var apiErr *APIError
	if err == nil || !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound || strings.HasPrefix(ref, "~") {
		return commit, err
	}
	commits, err := c.ListCommits(ctx, project)
	if err != nil {
		return nil, err
	}
	var match *Commit
	for i := range commits { // newest first
		if commits[i].Ref == ref {
			match = &commits[i]
			break
		}
	}
	if match == nil && isHex(ref) && len(ref) >= 4 {
		for i := range commits {
			if strings.HasPrefix(commits[i].Identifier, ref) {
				if match != nil && match.Identifier != commits[i].Identifier {
					return nil, fmt.Errorf("valohai: commit %q of project %s is ambiguous: %s and %s both start with it",
						ref, project, match.Identifier, commits[i].Identifier)
				}
				match = &commits[i]
			}
		}
	}
	if match == nil {
		return nil, fmt.Errorf("valohai: commit or branch %q is not known to project %s: is it pushed, and fetched by Valohai (fetch_repository)?", ref, project)
	}
	return c.GetCommit(ctx, project, match.Identifier, true)
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

// Pipeline is a pipeline as GET /api/v0/pipelines/<id>/ describes it: what
// a copy needs (nodes with their templates, edges, parameters) and what a
// run records. Nodes, edges and parameters keep numbers as json.Number.
type Pipeline struct {
	// ID is the pipeline's UUID.
	ID string
	// Counter is the pipeline's number within its project.
	Counter int64
	// Status is Valohai's pipeline status, such as "started" or "complete".
	Status string
	// Title is the pipeline's title.
	Title string
	// Project is the project id (Valohai sends the project as an object or
	// as its id; both are read).
	Project string
	// Tags are the pipeline's tags.
	Tags []string
	// URL is the pipeline's API address.
	URL string
	// DisplayURL is its web UI address.
	DisplayURL string
	// Nodes are the node objects as sent, including server fields such as
	// id, status and execution.
	Nodes []map[string]any
	// Edges are the edge objects as sent, including id and pipeline.
	Edges []map[string]any
	// Parameters are the pipeline parameters by name, as sent.
	Parameters map[string]any
}

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
