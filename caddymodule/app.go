package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/dustin/go-humanize"
	"go.uber.org/zap"

	"github.com/hooklaunch/caddy-valohai/launch"
	"github.com/hooklaunch/caddy-valohai/launch/store"
	"github.com/hooklaunch/caddy-valohai/validators"
)

func init() {
	caddy.RegisterModule(new(App))
}

// Defaults of the valohai app (README.md, "Global option `valohai`").
const (
	defaultAPIURL     = "https://app.valohai.com"
	defaultMaxBody    = 25 << 20 // GitHub's payload cap
	defaultPayloadTTL = 168 * time.Hour
	defaultWorkers    = 4
	defaultRetention  = 720 * time.Hour
	payloadKeyName    = "payload-url-signing-key"
)

// App is the `valohai` Caddy app: it owns the Valohai API client, the store
// (runs, queue, counters, dedupe keys, payloads), the launch workers and the
// payload-URL signing key. Handlers reach it through ctx.App("valohai").
type App struct {
	// APIURL is the Valohai base URL (default https://app.valohai.com).
	APIURL string `json:"api_url,omitempty"`
	// APIToken is the Valohai API token. Placeholders such as
	// {env.VALOHAI_API_TOKEN} are expanded at provision; empty after
	// expansion is a config error. Required once a valohai_launch exists.
	APIToken string `json:"api_token,omitempty"`
	// Store selects where runs, the queue and counters live.
	Store *StoreConfig `json:"store,omitempty"`
	// PayloadURL is the public base URL under which valohai_payloads serves
	// stored bodies to Valohai workers. Required by payload_input.
	PayloadURL string `json:"payload_url,omitempty"`
	// PayloadTTL is how long a stored body stays downloadable (default 168h).
	PayloadTTL caddy.Duration `json:"payload_ttl,omitempty"`
	// MaxBody is the default body cap of conditions and valohai_launch
	// (default 25 MiB).
	MaxBody int64 `json:"max_body,omitempty"`
	// MaxBodyInFlight caps the body bytes buffered at once over all
	// requests (default 256 MiB); a request that would pass it is answered
	// 503 with Retry-After. It must be at least max_body.
	MaxBodyInFlight int64 `json:"max_body_in_flight,omitempty"`
	// BodyTimeout is how long one request body may take to arrive
	// (default 60s), whatever the server's timeouts; past it, 408.
	BodyTimeout caddy.Duration `json:"body_timeout,omitempty"`
	// Workers is the number of launch workers (default 4).
	Workers int `json:"workers,omitempty"`
	// Retry bounds retries of failed Valohai calls (default 12 1s 10m).
	Retry *RetryConfig `json:"retry,omitempty"`
	// RunRetention is how long final runs are kept (default 720h).
	RunRetention caddy.Duration `json:"run_retention,omitempty"`
	// Notify is a URL that receives a JSON note (POST) when a run fails
	// for good.
	Notify string `json:"notify,omitempty"`

	apiToken   string
	apiURL     string
	storeKey   string
	store      launch.Store
	signer     launch.URLSigner
	client     *launch.Client
	dispatcher *launch.Dispatcher
	logger     *zap.Logger
	stop       chan struct{}
	rejections chan launch.Rejected
	metrics    *metrics
	notifyURL  string
	bodies     *bodyReader

	triggersMu sync.Mutex
	triggers   map[string]*Launch
}

// registerTrigger lets other handlers (webhook_dedupe) answer for a run the
// way its trigger does.
func (a *App) registerTrigger(l *Launch) {
	a.triggersMu.Lock()
	defer a.triggersMu.Unlock()
	if a.triggers == nil {
		a.triggers = map[string]*Launch{}
	}
	a.triggers[l.Trigger] = l
}

func (a *App) unregisterTrigger(l *Launch) {
	a.triggersMu.Lock()
	defer a.triggersMu.Unlock()
	if a.triggers[l.Trigger] == l {
		delete(a.triggers, l.Trigger)
	}
}

// answerRun writes the answer run's trigger would give now (the trigger's
// response block, or the default JSON), for a request vr.
func (a *App) answerRun(w http.ResponseWriter, r *http.Request, vr *validators.Request, run *launch.Run) error {
	a.triggersMu.Lock()
	l := a.triggers[run.Trigger]
	a.triggersMu.Unlock()
	if l == nil {
		return writeRunResponse(w, run, 0)
	}
	return l.answer(w, run, requestLookup(r, vr, run.ID))
}

// StoreConfig selects the store backend (README.md, "Global option
// `valohai`"; docs/redis.md).
type StoreConfig struct {
	// Type is "file" (embedded, the default, one Caddy instance) or
	// "redis" (shared by every Caddy instance pointed at the same redis).
	Type string `json:"type,omitempty"`
	// Path is the directory of the embedded store (type file).
	Path string `json:"path,omitempty"`
	// Engine of the embedded store (type file): "pebble" (the default) or
	// "bbolt". A directory holding the bbolt store of an earlier version
	// is copied into pebble on first start (README.md, "The durable write path").
	Engine string `json:"engine,omitempty"`
	// URL is the redis URL of one server (type redis):
	// redis://[user:password@]host:6379/0, rediss:// for TLS. Placeholders
	// such as {env.REDIS_URL} are expanded at provision, so the password
	// need not be written in the config; it is never logged. Leave it
	// empty for Sentinel or Cluster.
	URL string `json:"url,omitempty"`
	// Prefix is put before every redis key (type redis; default
	// "valohai:"). Deployments sharing one redis need different prefixes;
	// the instances of one deployment the same.
	Prefix string `json:"prefix,omitempty"`
	// Sentinel lists the addresses (host:port) of the Redis Sentinels
	// watching the master named by Master; the store follows the master
	// they name across failovers.
	Sentinel []string `json:"sentinel,omitempty"`
	// Master is the master name the sentinels monitor.
	Master string `json:"master,omitempty"`
	// Cluster lists seed nodes (host:port) of a Redis Cluster, instead of
	// Sentinel.
	Cluster []string `json:"cluster,omitempty"`
	// Username and Password authenticate to the redis servers of a
	// Sentinel or Cluster deployment (placeholders expanded; never logged).
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// TLS turns on TLS to every node (sentinels included), verified
	// against the system's roots.
	TLS bool `json:"tls,omitempty"`
	// MinReplicasAck makes every write a 2xx rests on wait until that many
	// replicas hold it (redis WAIT); fewer within AckTimeout answers 503.
	MinReplicasAck int `json:"min_replicas_ack,omitempty"`
	// AckTimeout bounds that wait (default 1s).
	AckTimeout caddy.Duration `json:"ack_timeout,omitempty"`
}

// RetryConfig is the retry policy for failed Valohai calls: the
// `retry <attempts> <first backoff> <max backoff>` line (README.md,
// "Global option `valohai`"). Network errors, 5xx and 429 are retried;
// other 4xx fail the action for good.
type RetryConfig struct {
	// Attempts is the number of tries of one action, the first included
	// (at least 1).
	Attempts int `json:"attempts,omitempty"`
	// First is the backoff before the second try; each later one doubles,
	// with jitter, up to Max. A longer Retry-After from Valohai wins.
	First caddy.Duration `json:"first,omitempty"`
	// Max caps the backoff (at least First).
	Max caddy.Duration `json:"max,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "valohai", New: func() caddy.Module { return new(App) }}
}

// stores shares one open store per backend location across config reloads
// (an embedded store allows one opener per process).
var stores = caddy.NewUsagePool()

type pooledStore struct{ launch.Store }

func (p pooledStore) Destruct() error { return p.Close() }

// Provision expands the app's placeholders, opens the store and prepares the
// API client and workers.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	repl := caddy.NewReplacer()

	a.apiURL = defaultAPIURL
	if a.APIURL != "" {
		u, err := expandURL(repl, "api_url", a.APIURL, a.logger)
		if err != nil {
			return err
		}
		a.apiURL = u
	}
	if a.APIToken != "" {
		tok, err := repl.ReplaceOrErr(a.APIToken, true, true)
		if err != nil || strings.TrimSpace(tok) == "" {
			return errors.New("valohai: api_token is empty after expanding placeholders; set the variable it names (e.g. VALOHAI_API_TOKEN) or write the token in the valohai global option")
		}
		a.apiToken = tok
	}
	if a.PayloadURL != "" {
		u, err := expandURL(repl, "payload_url", a.PayloadURL, a.logger)
		if err != nil {
			return err
		}
		a.PayloadURL = strings.TrimRight(u, "/")
	}
	if a.PayloadTTL <= 0 {
		a.PayloadTTL = caddy.Duration(defaultPayloadTTL)
	}
	if a.MaxBody <= 0 {
		a.MaxBody = defaultMaxBody
	}
	if a.MaxBodyInFlight <= 0 {
		a.MaxBodyInFlight = defaultMaxBodyInFlight
	}
	if a.MaxBodyInFlight < a.MaxBody {
		return fmt.Errorf("valohai: max_body_in_flight (%d bytes) is smaller than max_body (%d bytes): no body of the largest allowed size could be read; raise max_body_in_flight", a.MaxBodyInFlight, a.MaxBody)
	}
	if a.BodyTimeout <= 0 {
		a.BodyTimeout = caddy.Duration(defaultBodyTimeout)
	}
	a.bodies = &bodyReader{budget: a.MaxBodyInFlight, timeout: time.Duration(a.BodyTimeout)}
	if a.Workers <= 0 {
		a.Workers = defaultWorkers
	}
	if a.RunRetention <= 0 {
		a.RunRetention = caddy.Duration(defaultRetention)
	}
	retry := launch.DefaultRetry
	if a.Retry != nil {
		if a.Retry.Attempts < 1 || a.Retry.First <= 0 || a.Retry.Max < a.Retry.First {
			return errors.New("valohai: retry needs <attempts> >= 1, <first backoff> > 0 and <max backoff> >= first, e.g. retry 12 1s 10m")
		}
		retry = launch.RetryPolicy{Attempts: a.Retry.Attempts, First: time.Duration(a.Retry.First), Max: time.Duration(a.Retry.Max)}
	}

	if a.Notify != "" {
		u, err := expandURL(repl, "notify", a.Notify, a.logger)
		if err != nil {
			return err
		}
		a.notifyURL = u
	}

	if err := a.openStore(repl); err != nil {
		return err
	}
	key, err := a.store.Secret(ctx, payloadKeyName, launch.NewSigningKey)
	if err != nil {
		return fmt.Errorf("valohai: reading the payload signing key from the store: %w", err)
	}
	a.signer = launch.NewURLSigner(key, a.PayloadURL)
	a.client = &launch.Client{BaseURL: a.apiURL, Token: a.apiToken, PayloadURL: a.PayloadURL}
	a.dispatcher = &launch.Dispatcher{
		Store:     a.store,
		Performer: a.client,
		Logger:    a.logger.Named("launch"),
		Retry:     retry,
		Workers:   a.Workers,
		OnFinal:   a.onFinal,
	}
	_, embedded := a.store.(store.CommitObservable)
	a.metrics = newMetrics(ctx.GetMetricsRegistry(), queueDepthFunc(a), embedded)
	a.dispatcher.Observe = func(kind launch.ActionKind, result string, took time.Duration) {
		a.metrics.launches.WithLabelValues(string(kind), result).Inc()
		a.metrics.launchDuration.Observe(took.Seconds())
	}
	a.rejections = make(chan launch.Rejected, 1024)
	return nil
}

func expandURL(repl *caddy.Replacer, name, raw string, logger *zap.Logger) (string, error) {
	s, err := repl.ReplaceOrErr(raw, true, true)
	if err != nil {
		return "", fmt.Errorf("valohai: %s: %v", name, err)
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", fmt.Errorf("valohai: %s is not an absolute http(s) URL, e.g. https://app.valohai.com", name)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		logger.Warn("plain http URL to a non-loopback host: use https in production", zap.String("option", name), zap.String("url", urlForLog(u)))
	}
	return s, nil
}

// urlForLog shows where a configured URL points without what may be a
// credential in it: notify URLs such as Slack's incoming webhooks carry
// their secret in the path, others in the query or user info.
func urlForLog(u *url.URL) string {
	out := u.Scheme + "://" + u.Host
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		out += "/…"
	}
	return out
}

func isLoopback(host string) bool {
	return host == "localhost" || strings.HasPrefix(host, "127.") || host == "::1"
}

// openStore opens (or shares, across config reloads) the configured store.
// Opening and its policy are launch/store's (store.Open); here only the
// placeholders are expanded and errors worded for the Caddyfile.
func (a *App) openStore(repl *caddy.Replacer) error {
	cfg, err := storeConfig(repl, a.Store)
	if err != nil {
		return err
	}
	if err := cfg.Check(); err != nil {
		return fmt.Errorf("valohai: %v", err)
	}
	cfg.Logger = a.logger
	if cfg.Type != "redis" {
		if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
			return fmt.Errorf("valohai: store file %q: %v", cfg.Dir, err)
		}
	}
	a.storeKey = cfg.Key()
	val, _, err := stores.LoadOrNew(a.storeKey, func() (caddy.Destructor, error) {
		ctx, cancel := context.WithTimeout(context.Background(), store.DefaultRedisOpenTimeout)
		defer cancel()
		s, err := store.Open(ctx, cfg)
		if err != nil {
			return nil, err
		}
		return pooledStore{s}, nil
	})
	if err != nil {
		a.storeKey = ""
		if cfg.Type != "redis" {
			return fmt.Errorf("valohai: store file %q: %v", cfg.Dir, err)
		}
		msg := strings.TrimPrefix(strings.TrimPrefix(err.Error(), "store: "), "redis ")
		if errors.Is(err, store.ErrUnreachable) {
			fix := "fix the URL (e.g. store redis redis://user:password@host:6379/0 or store redis {env.REDIS_URL})"
			if cfg.URL == "" {
				fix = "fix the sentinel/master or cluster addresses, username and password"
			}
			return fmt.Errorf("valohai: store redis: %s; start redis or make it reachable from Caddy, or %s", msg, fix)
		}
		return fmt.Errorf("valohai: store redis: %s", msg)
	}
	a.store = val.(pooledStore).Store
	return nil
}

// storeConfig expands the placeholders of the store option into what
// store.Open takes. Nothing here is shown with a password in it: a
// placeholder that expands to nothing is named as written (a URL's password
// hidden), a password never.
func storeConfig(repl *caddy.Replacer, sc *StoreConfig) (store.Config, error) {
	c := StoreConfig{Type: "file"}
	if sc != nil {
		c = *sc
	}
	switch c.Type {
	case "", "file":
		dir := c.Path
		if dir == "" {
			dir = filepath.Join(caddy.AppDataDir(), "valohai")
		}
		dir = repl.ReplaceKnown(dir, "")
		abs, err := filepath.Abs(dir)
		if err != nil {
			return store.Config{}, fmt.Errorf("valohai: store file %q: %v", dir, err)
		}
		return store.Config{Type: "file", Dir: abs, Engine: c.Engine}, nil
	case "redis":
	default:
		return store.Config{}, fmt.Errorf("valohai: unknown store type %q; use: store file <dir>, or store redis <url>, or store redis { sentinel ... | cluster ... }", c.Type)
	}
	cfg := store.Config{Type: "redis", Master: c.Master, TLS: c.TLS, MinReplicasAck: c.MinReplicasAck, AckTimeout: time.Duration(c.AckTimeout)}
	expand := func(what, v string, secret bool) (string, error) {
		out, err := repl.ReplaceOrErr(v, true, true)
		if err != nil || strings.TrimSpace(out) == "" {
			shown := store.HideURLPassword(v)
			if secret && !strings.Contains(v, "{") {
				shown = "(as written)"
			}
			return "", fmt.Errorf("valohai: store redis: %s %s expands to nothing; set the variable it names", what, shown)
		}
		return strings.TrimSpace(out), nil
	}
	var err error
	if strings.TrimSpace(c.URL) != "" {
		if cfg.URL, err = expand("the URL", c.URL, true); err != nil {
			return cfg, fmt.Errorf("%v, e.g. store redis redis://user:password@host:6379/0 or store redis {env.REDIS_URL}", err)
		}
	}
	for _, list := range []struct {
		in  []string
		out *[]string
		dir string
	}{{c.Sentinel, &cfg.Sentinel, "sentinel"}, {c.Cluster, &cfg.Cluster, "cluster"}} {
		for _, v := range list.in {
			x, err := expand(list.dir+" address", v, false)
			if err != nil {
				return cfg, err
			}
			*list.out = append(*list.out, strings.Fields(x)...)
		}
	}
	if c.Master != "" {
		if cfg.Master, err = expand("master", c.Master, false); err != nil {
			return cfg, err
		}
	}
	if c.Username != "" {
		if cfg.Username, err = expand("username", c.Username, false); err != nil {
			return cfg, err
		}
	}
	if c.Password != "" {
		if cfg.Password, err = expand("password", c.Password, true); err != nil {
			return cfg, err
		}
	}
	cfg.Prefix = repl.ReplaceKnown(c.Prefix, "")
	return cfg, nil
}

// Start starts the launch workers, the trigger-log writer and retention.
func (a *App) Start() error {
	a.stop = make(chan struct{})
	// An embedded store's commits go to this config's metrics from now on
	// (the store may be shared with the config this one replaces; Start
	// runs only once the whole config is provisioned).
	if o, ok := a.store.(store.CommitObservable); ok {
		o.ObserveCommits(a.metrics.commit)
	}
	a.dispatcher.Start()
	go a.background()
	return nil
}

// Stop stops the workers; queued runs stay in the store for the next start.
func (a *App) Stop() error {
	close(a.stop)
	a.dispatcher.Stop()
	return nil
}

// Cleanup releases the store (closed when no config uses it any more).
func (a *App) Cleanup() error {
	if a.storeKey != "" {
		_, err := stores.Delete(a.storeKey)
		return err
	}
	return nil
}

// background writes rejections to the trigger log off the request path (a
// flood of forged requests must not turn into a flood of fsyncs) and
// removes runs older than the retention.
func (a *App) background() {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	a.cleanupRuns()
	for {
		select {
		case <-a.stop:
			return
		case r := <-a.rejections:
			if err := a.store.LogRejection(context.Background(), r); err != nil {
				a.logger.Warn("writing the trigger log failed", zap.Error(err))
			}
		case <-t.C:
			a.cleanupRuns()
		}
	}
}

func (a *App) cleanupRuns() {
	n, err := a.store.DeleteRunsBefore(context.Background(), time.Now().Add(-time.Duration(a.RunRetention)))
	if err != nil {
		a.logger.Warn("removing old runs failed", zap.Error(err))
	} else if n > 0 {
		a.logger.Info("removed old runs", zap.Int("count", n))
	}
}

// recordRejection queues a trigger-log entry; when the queue is full the
// entry is dropped (it is still logged and counted).
func (a *App) recordRejection(r launch.Rejected) {
	select {
	case a.rejections <- r:
	default:
	}
}

// requireLaunch reports what a valohai_launch handler needs from the app.
func (a *App) requireLaunch(usesPayload bool) error {
	if a.apiToken == "" {
		return errors.New("valohai_launch needs a Valohai API token: add `api_token {env.VALOHAI_API_TOKEN}` to the valohai global option")
	}
	if usesPayload && a.PayloadURL == "" {
		return errors.New("valohai_launch: payload_input needs the public base URL of valohai_payloads: add `payload_url https://<your host>/_valohai/payloads` to the valohai global option")
	}
	return nil
}

func parseSize(s string) (int64, error) {
	n, err := humanize.ParseBytes(s)
	if err != nil {
		return 0, err
	}
	return int64(n), nil
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
