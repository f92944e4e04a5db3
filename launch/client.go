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

// Perform sends one resolved action and returns Valohai's result. Kinds
// this version cannot send fail with an error wrapping ErrUnsupportedAction.
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
	default:
		return nil, fmt.Errorf("action %s is %w", a.Kind, ErrUnsupportedAction)
	}
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
