package store

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hooklaunch/caddy-valohai/launch"
)

// Defaults of RedisOptions.
const (
	// DefaultRedisPrefix namespaces every key the store writes, so several
	// deployments (or other applications) can share one redis.
	DefaultRedisPrefix = "valohai:"
	// DefaultRedisOpenTimeout bounds the connection check of OpenRedis: a
	// wrong host must fail Caddy's provisioning visibly, not hang it.
	DefaultRedisOpenTimeout = 10 * time.Second
	// DefaultAckTimeout is how long a write waits for MinReplicasAck
	// replicas to acknowledge it (WAIT) before it counts as failed.
	DefaultAckTimeout = time.Second
)

// clockGrace is added to every real redis TTL. The store judges expiry by
// the caller's clock (the now arguments and RedisOptions.Now); redis expires
// keys by its own. The grace keeps a redis clock that runs a little ahead of
// Caddy's from dropping a key the caller still considers alive.
const clockGrace = time.Minute

// redactedPassword replaces a URL's password wherever the store shows it,
// the same marker net/url's Redacted uses.
const redactedPassword = "xxxxx"

// RedisOptions tunes OpenRedis. The zero value is the production setting.
type RedisOptions struct {
	// Prefix is put before every key (default DefaultRedisPrefix). Give
	// each deployment sharing a redis its own prefix; instances of one
	// deployment must use the same one.
	Prefix string
	// MaxRejections is how many rejection-log entries are kept, oldest
	// dropped first (default DefaultMaxRejections).
	MaxRejections int
	// Now is the clock payload expiry is judged by (default time.Now).
	// Methods that take a now argument use that instead.
	Now func() time.Time
	// OpenTimeout bounds the connection check of OpenRedis (default
	// DefaultRedisOpenTimeout).
	OpenTimeout time.Duration

	// Sentinel lists Redis Sentinel addresses (host:port); Master is the
	// name the sentinels monitor. The store then follows the master the
	// sentinels name, across failovers. Set instead of a URL.
	Sentinel []string
	Master   string
	// Cluster lists seed nodes (host:port) of a Redis Cluster. Set instead
	// of a URL. Every key then carries the prefix as its hash tag, so each
	// script's keys share one slot (docs/redis.md, "Hash tags").
	Cluster []string
	// Username and Password authenticate to every redis server (not to the
	// sentinels) of a Sentinel or Cluster deployment; a URL carries its own.
	Username, Password string
	// TLS, when set, is used for every connection of a Sentinel or Cluster
	// deployment (sentinels included); a URL says rediss:// instead.
	TLS *tls.Config
	// MinReplicasAck makes every write a 2xx rests on (a run, a quota
	// unit, a dedupe key) wait until that many replicas hold it (WAIT);
	// fewer within AckTimeout fails the write with ErrNotAcknowledged.
	MinReplicasAck int
	// AckTimeout bounds that wait (default DefaultAckTimeout).
	AckTimeout time.Duration
}

// Redis is the launch.Store shared by several Caddy instances: every
// instance connected to the same redis (and prefix) sees the same runs,
// queue, quotas, dedupe keys, payloads, trigger log and signing key.
//
// Every method returns after redis acknowledged its write, so a run is as
// durable as redis's persistence makes it (appendonly yes and
// maxmemory-policy noeviction are what a 2xx to a sender should rest on; see
// Persistence); with MinReplicasAck, the writes a 2xx rests on also wait
// until that many replicas hold them. The operations that must be exact
// across instances (CreateRun, ClaimRun, TakeQuota, RememberKey, ForgetKey,
// LogRejection, DeleteRunsBefore) are single Lua scripts, which redis runs
// atomically. It runs on one server (with replicas or not), on a Sentinel
// deployment, or on Redis Cluster, where the keys of a deployment share one
// hash tag so every script's keys are in one slot.
type Redis struct {
	rdb           redis.UniversalClient
	cluster       *redis.ClusterClient // set on Redis Cluster
	url           string               // where, password hidden
	prefix        string
	base          string // what every key starts with: prefix, or {prefix} on Cluster
	now           func() time.Time
	maxRejections int
	minAck        int
	ackTimeout    time.Duration

	closeOnce sync.Once
	closeErr  error
}

var _ launch.Store = (*Redis)(nil)

// ErrNotAcknowledged is wrapped by the error of a write that redis applied
// but fewer than RedisOptions.MinReplicasAck replicas acknowledged in time:
// a failover could still lose it, so the caller must not answer 2xx on it.
var ErrNotAcknowledged = errors.New("not acknowledged by enough replicas")

// OpenRedis connects to redis and checks it answers. rawURL names one server
// (redis://[user:password@]host:port/db, rediss:// for TLS,
// unix://[user:password@]/path/to/socket?db=N; go-redis's query options such
// as dial_timeout apply); it is empty when opts names sentinels or cluster
// nodes instead. Errors never contain a password: it is shown as "xxxxx". A
// redis that does not answer is an error wrapping ErrUnreachable.
func OpenRedis(rawURL string, opts RedisOptions) (*Redis, error) {
	timeout := opts.OpenTimeout
	if timeout <= 0 {
		timeout = DefaultRedisOpenTimeout
	}
	ackTimeout := opts.AckTimeout
	if ackTimeout <= 0 {
		ackTimeout = DefaultAckTimeout
	}
	if opts.MinReplicasAck < 0 {
		return nil, errors.New("store: redis: min_replicas_ack must be 0 or more")
	}
	// A pipeline of a write and WAIT is read within the client's read
	// timeout: leave WAIT room.
	readTimeout := max(3*time.Second, ackTimeout+2*time.Second)
	var (
		rdb     redis.UniversalClient
		cluster *redis.ClusterClient
		where   string
		scrub   func(string) string
	)
	switch {
	case len(opts.Sentinel) > 0 && len(opts.Cluster) > 0:
		return nil, errors.New("store: redis: give sentinel addresses or cluster addresses, not both")
	case rawURL != "" && (len(opts.Sentinel) > 0 || len(opts.Cluster) > 0):
		return nil, errors.New("store: redis: give a URL, or sentinel or cluster addresses, not both")
	case len(opts.Sentinel) > 0:
		if opts.Master == "" {
			return nil, errors.New("store: redis: sentinel needs the master name the sentinels monitor (master <name>)")
		}
		where = "sentinel " + strings.Join(opts.Sentinel, " ") + " master " + opts.Master
		scrub = scrubber("", opts.Password)
		rdb = redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:    opts.Master,
			SentinelAddrs: opts.Sentinel,
			Username:      opts.Username,
			Password:      opts.Password,
			Dialer:        tlsDialer(opts.TLS),
			ReadTimeout:   readTimeout,
		})
	case len(opts.Cluster) > 0:
		if opts.Master != "" {
			return nil, errors.New("store: redis: master names a Sentinel master; a cluster has none (drop master)")
		}
		if strings.ContainsAny(opts.Prefix, "{}") {
			return nil, fmt.Errorf("store: redis: on Redis Cluster the key prefix becomes the hash tag and may not contain { or } (got %q)", opts.Prefix)
		}
		where = "cluster " + strings.Join(opts.Cluster, " ")
		scrub = scrubber("", opts.Password)
		cluster = redis.NewClusterClient(&redis.ClusterOptions{
			Addrs:       opts.Cluster,
			Username:    opts.Username,
			Password:    opts.Password,
			Dialer:      tlsDialer(opts.TLS),
			ReadTimeout: readTimeout,
		})
		rdb = cluster
	default:
		if opts.Master != "" {
			return nil, errors.New("store: redis: master goes with sentinel addresses (sentinel <host:port>...)")
		}
		ropts, err := parseRedisURL(rawURL)
		if err != nil {
			return nil, err
		}
		where = HideURLPassword(rawURL)
		scrub = scrubber(rawURL, ropts.Password)
		ropts.ReadTimeout = max(ropts.ReadTimeout, readTimeout)
		// The store is the durable queue of webhooks already answered
		// 2xx: it must not read the client-side cache, and the default
		// RESP3 handshake works with every redis the store supports
		// (6.0+).
		rdb = redis.NewClient(ropts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if len(opts.Sentinel) > 0 {
		// Ask the sentinels first: "no sentinel answers" and "the
		// sentinels know no master of that name" are different fixes,
		// which the failover client's own error would not tell apart.
		if err := askSentinels(ctx, opts); err != nil {
			rdb.Close()
			return nil, &unreachableError{msg: scrub(fmt.Sprintf("store: redis %s does not answer: %v", where, err))}
		}
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, &unreachableError{msg: scrub(fmt.Sprintf("store: redis %s does not answer: %v", where, err))}
	}
	r := &Redis{
		rdb:           rdb,
		cluster:       cluster,
		url:           where,
		prefix:        opts.Prefix,
		now:           opts.Now,
		maxRejections: DefaultMaxRejections,
		minAck:        opts.MinReplicasAck,
		ackTimeout:    ackTimeout,
	}
	if r.prefix == "" {
		r.prefix = DefaultRedisPrefix
	}
	r.base = r.prefix
	if cluster != nil {
		r.base = "{" + r.prefix + "}"
	}
	if r.now == nil {
		r.now = time.Now
	}
	if opts.MaxRejections > 0 {
		r.maxRejections = opts.MaxRejections
	}
	return r, nil
}

// tlsDialer dials TLS with cfg, verifying each node's certificate for the
// host it is dialled at (go-redis's own TLSConfig would need one ServerName
// for every node of a cluster or sentinel set); nil cfg dials plain TCP
// (go-redis's default then).
func tlsDialer(cfg *tls.Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if cfg == nil {
		return nil
	}
	nd := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 5 * time.Minute}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c := cfg.Clone()
		if c.ServerName == "" {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			c.ServerName = host
		}
		return (&tls.Dialer{NetDialer: nd, Config: c}).DialContext(ctx, network, addr)
	}
}

// askSentinels succeeds when a sentinel names the master opts.Master.
func askSentinels(ctx context.Context, opts RedisOptions) error {
	var errs []string
	for _, addr := range opts.Sentinel {
		c := redis.NewSentinelClient(&redis.Options{Addr: addr, Dialer: tlsDialer(opts.TLS), MaxRetries: -1, DialTimeout: 2 * time.Second})
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, err := c.GetMasterAddrByName(actx, opts.Master).Result()
		cancel()
		c.Close()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, redis.Nil):
			errs = append(errs, fmt.Sprintf("sentinel %s monitors no master named %q (check master)", addr, opts.Master))
		default:
			errs = append(errs, fmt.Sprintf("sentinel %s: %v", addr, err))
		}
	}
	return errors.New(strings.Join(errs, "; "))
}

// parseRedisURL parses a redis URL with go-redis, without ever letting the
// password into an error: a parse error is reported for the redacted URL.
func parseRedisURL(rawURL string) (*redis.Options, error) {
	const syntax = "use redis://[user:password@]host:port/db, rediss:// for TLS or unix:///path/to/redis.sock"
	if strings.TrimSpace(rawURL) == "" {
		return nil, fmt.Errorf("store: empty redis URL: %s", syntax)
	}
	o, err := redis.ParseURL(rawURL)
	if err == nil {
		return o, nil
	}
	red := HideURLPassword(rawURL)
	scrub := scrubber(rawURL, "")
	if _, rerr := redis.ParseURL(red); rerr != nil {
		return nil, errors.New(scrub(fmt.Sprintf("store: bad redis URL %s: %v; %s", red, unwrapURLError(rerr), syntax)))
	}
	// Only the password made it unparsable.
	return nil, errors.New(scrub(fmt.Sprintf("store: bad redis URL %s: the password contains characters that must be percent-encoded (%% as %%25, / as %%2F, ? as %%3F, # as %%23, @ as %%40)", red)))
}

// unwrapURLError drops net/url's quoting of the whole URL from a parse error
// (the caller already shows the redacted URL).
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}

// HideURLPassword returns rawURL with the password of its user info replaced by
// "xxxxx", for logs and errors. It does not need rawURL to be a valid URL:
// everything between the first ':' of the user info and the last '@' is the
// password, so an unencoded '/', '?', '#' or '@' in it is hidden too (at
// worst a little more than the password is).
func HideURLPassword(rawURL string) string {
	scheme, rest := "", rawURL
	if i := strings.Index(rawURL, "://"); i >= 0 {
		scheme, rest = rawURL[:i+3], rawURL[i+3:]
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return rawURL
	}
	userinfo := rest[:at]
	colon := strings.Index(userinfo, ":")
	if colon < 0 {
		return rawURL // a user name alone: no password to hide
	}
	return scheme + userinfo[:colon+1] + redactedPassword + rest[at:]
}

// urlPassword is the part of rawURL that HideURLPassword hides.
func urlPassword(rawURL string) string {
	rest := rawURL
	if i := strings.Index(rawURL, "://"); i >= 0 {
		rest = rawURL[i+3:]
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return ""
	}
	userinfo := rest[:at]
	colon := strings.Index(userinfo, ":")
	if colon < 0 {
		return ""
	}
	return userinfo[colon+1:]
}

// scrubber returns a function that hides every spelling of the URL's
// password in a message: defence in depth for errors that come from a
// library and might quote what it was given.
func scrubber(rawURL, parsed string) func(string) string {
	var secrets []string
	add := func(s string) {
		if s != "" && s != redactedPassword {
			secrets = append(secrets, s)
		}
	}
	pw := urlPassword(rawURL)
	add(pw)
	add(parsed)
	if dec, err := url.PathUnescape(pw); err == nil {
		add(dec)
	}
	return func(msg string) string {
		for _, s := range secrets {
			msg = strings.ReplaceAll(msg, s, redactedPassword)
		}
		return msg
	}
}

// URL is the redis URL the store was opened with, password redacted: what
// logs may show.
func (r *Redis) URL() string { return r.url }

// Prefix is the key prefix the store writes under.
func (r *Redis) Prefix() string { return r.prefix }

// Close closes the connection pool. Calling it again is harmless.
func (r *Redis) Close() error {
	r.closeOnce.Do(func() { r.closeErr = r.rdb.Close() })
	return r.closeErr
}

// Persistence reports whether redis keeps what the store writes: an
// append-only file (appendonly yes) so a run survives a redis restart, and
// maxmemory-policy noeviction so redis never drops a run, payload or dedupe
// key to make room. On Redis Cluster every master is asked, and durable only
// when all are so. settings describes them for a log line. err is set when
// the server does not allow CONFIG GET (managed services often do not); the
// caller then cannot tell.
func (r *Redis) Persistence(ctx context.Context) (durable bool, settings string, err error) {
	if r.cluster == nil {
		return persistence(ctx, r.rdb)
	}
	var mu sync.Mutex
	durable = true
	var all []string
	err = r.cluster.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		d, set, err := persistence(ctx, c)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		durable = durable && d
		all = append(all, c.Options().Addr+": "+set)
		return nil
	})
	if err != nil {
		return false, "", err
	}
	slices.Sort(all)
	return durable, strings.Join(all, "; "), nil
}

func persistence(ctx context.Context, c redis.Cmdable) (durable bool, settings string, err error) {
	cfg := map[string]string{}
	for _, name := range []string{"appendonly", "appendfsync", "save", "maxmemory-policy"} {
		v, err := c.ConfigGet(ctx, name).Result()
		if err != nil {
			return false, "", fmt.Errorf("store: redis CONFIG GET %s: %w", name, err)
		}
		cfg[name] = v[name]
	}
	durable = cfg["appendonly"] == "yes" && cfg["maxmemory-policy"] == "noeviction"
	settings = fmt.Sprintf("appendonly %s, appendfsync %s, save %q, maxmemory-policy %s",
		cfg["appendonly"], cfg["appendfsync"], cfg["save"], cfg["maxmemory-policy"])
	return durable, settings, nil
}

// runAcked runs a script whose write a 2xx rests on (a run, a quota unit, a
// dedupe key), or whose loss in a failover could launch a run twice (a
// claim's lease, a run's progress). With MinReplicasAck
// set, the script and WAIT go down one connection in one round trip (WAIT
// counts the replicas holding what that connection wrote), and fewer
// acknowledgements than asked within AckTimeout fail the call with an error
// wrapping ErrNotAcknowledged; the write itself stays on the primary
// (docs/redis.md, "min_replicas_ack"). keys[0] picks the node on Cluster,
// where every key of the store shares one slot.
func (r *Redis) runAcked(ctx context.Context, s *redis.Script, keys []string, args ...any) *redis.Cmd {
	if r.minAck == 0 {
		return s.Run(ctx, r.rdb, keys, args...)
	}
	var node redis.Cmdable = r.rdb
	if r.cluster != nil {
		c, err := r.cluster.MasterForKey(ctx, keys[0])
		if err != nil {
			cmd := redis.NewCmd(ctx)
			cmd.SetErr(err)
			return cmd
		}
		node = c
	}
	try := func(eval func(redis.Pipeliner) *redis.Cmd) (*redis.Cmd, *redis.Cmd) {
		pipe := node.Pipeline()
		cmd := eval(pipe)
		wait := pipe.Do(ctx, "WAIT", r.minAck, max(r.ackTimeout.Milliseconds(), 1))
		_, _ = pipe.Exec(ctx)
		return cmd, wait
	}
	cmd, wait := try(func(p redis.Pipeliner) *redis.Cmd { return s.EvalSha(ctx, p, keys, args...) })
	if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
		cmd, wait = try(func(p redis.Pipeliner) *redis.Cmd { return s.Eval(ctx, p, keys, args...) })
	}
	if err := cmd.Err(); err != nil && !errors.Is(err, redis.Nil) {
		if r.cluster != nil && !isScriptError(err) {
			// MOVED, a dead node: ask the cluster where the slot is now.
			r.cluster.ReloadState(ctx)
		}
		return cmd
	}
	n, err := wait.Int64()
	switch {
	case err != nil:
		cmd.SetErr(fmt.Errorf("waiting for %d replica(s) to acknowledge (WAIT): %w", r.minAck, err))
	case n < int64(r.minAck):
		cmd.SetErr(fmt.Errorf("%d of %d replica(s) acknowledged the write within %s: %w", n, r.minAck, r.ackTimeout, ErrNotAcknowledged))
	}
	return cmd
}

// Keys. Every key starts with the prefix (on Redis Cluster wrapped in braces,
// {valohai:}run:<id>, so the prefix is every key's hash tag and any set of a
// deployment's keys is in one slot: no script or MGET is refused with
// CROSSSLOT); run ids and caller keys come last so no caller text can
// imitate another kind of key, nor change the hash tag (redis takes the
// first {...} of a key).
func (r *Redis) kRun(id string) string     { return r.base + "run:" + id }
func (r *Redis) kPayload(id string) string { return r.base + "payload:" + id }
func (r *Redis) kRuns() string             { return r.base + "runs" }        // zset, score 0, member = hex created stamp + id
func (r *Redis) kRunMembers() string       { return r.base + "run_members" } // hash id → its member of runs
func (r *Redis) kQueue() string            { return r.base + "queue" }       // zset id scored by due time (µs)
func (r *Redis) kDedupe(key string) string { return r.base + "dedupe:" + boundKey(key) }
func (r *Redis) kRejections() string       { return r.base + "rejections" }     // zset "seq:json" scored by seq
func (r *Redis) kRejectionSeq() string     { return r.base + "rejections_seq" } // counter
func (r *Redis) kSecret(name string) string {
	return r.base + "secret:" + name
}

// kQuota names one fixed window of one quota: the period is part of the
// identity (a key may carry both a 1h and a 24h quota) and so is the
// window's end, so a new window starts from a fresh counter.
func (r *Redis) kQuota(key string, period time.Duration, end uint64) string {
	return r.base + "quota:" + strconv.FormatInt(int64(period), 10) + ":" + strconv.FormatUint(end, 10) + ":" + boundKey(key)
}

// runMember is a run's entry in the listing index: every member has score
// 0, so redis orders them by bytes, i.e. by the fixed-width hex creation
// stamp (nanoseconds, like the bbolt index) and then by id.
func runMember(created time.Time, id string) string {
	return fmt.Sprintf("%016x", stamp(created)) + id
}

// usec is a time as whole microseconds since the Unix epoch: a sorted-set
// score (a float64) holds it exactly until the year 2255, nanoseconds it
// would round.
func usec(t time.Time) int64 { return int64(stamp(t) / 1000) }

// ttlMillis is a redis TTL in milliseconds of at least d plus the clock
// grace, never below 1ms.
func ttlMillis(d time.Duration) int64 {
	ms := (d + clockGrace + time.Millisecond - 1) / time.Millisecond
	return max(int64(ms), 1)
}

// syncScript is the harmless write behind Sync.
var syncScript = redis.NewScript(`return redis.call('INCR', KEYS[1])`)

// Sync returns once MinReplicasAck replicas hold everything written to the
// primary before the call (at once without MinReplicasAck): a write of its
// own followed by WAIT, which waits for the replicas to reach that point of
// the replication stream. A duplicate delivery answered with an earlier run
// rests on this, since that run's own write may not have been acknowledged.
func (r *Redis) Sync(ctx context.Context) error {
	if r.minAck == 0 {
		return nil
	}
	if err := r.runAcked(ctx, syncScript, []string{r.base + "sync"}).Err(); err != nil {
		return fmt.Errorf("store: redis: %w", err)
	}
	return nil
}

// isScriptError reports a script's own error reply (as opposed to one of
// the connection or of the cluster's routing).
func isScriptError(err error) bool {
	return redis.HasErrorPrefix(err, "ERR") && strings.Contains(err.Error(), "script")
}

// The Lua scripts. redis runs each atomically; go-redis sends EVALSHA and
// falls back to EVAL once after a redis restart emptied the script cache.
var (
	// createRunScript stores a run, its index entries and payload, takes
	// the claims that admit it and queues it: one script, so one round
	// trip and one atomic step per accepted request, exact across
	// instances. KEYS[6..] are the claims' keys; each claim has four
	// ARGV from ARGV[8]: 'q', limit, ttl ms, '' for a quota unit; 'k',
	// now µs, expiry µs, ttl ms for a delivery key. Every claim is judged,
	// in order, before anything is written; the first that fails is
	// answered {2, index[, holder]} and nothing changes. An identical run
	// already stored counts as success, so a client retry after a lost
	// reply does not turn into an error.
	createRunScript = redis.NewScript(`
local old = redis.call('GET', KEYS[1])
if old then
	if old == ARGV[1] then return {1} end
	return {0}
end
local n = #KEYS - 5
local pend = {}
for i = 1, n do
	local k, o = KEYS[5 + i], 8 + (i - 1) * 4
	if ARGV[o] == 'q' then
		local c = tonumber(redis.call('GET', k) or '0') + (pend[k] or 0)
		if c >= tonumber(ARGV[o + 1]) then return {2, i - 1} end
		pend[k] = (pend[k] or 0) + 1
	else
		local v = redis.call('GET', k)
		if v then
			local j = string.find(v, ':', 1, true)
			if j and tonumber(string.sub(v, 1, j - 1)) > tonumber(ARGV[o + 1]) then
				return {2, i - 1, string.sub(v, j + 1)}
			end
		end
	end
end
for i = 1, n do
	local k, o = KEYS[5 + i], 8 + (i - 1) * 4
	if ARGV[o] == 'q' then
		redis.call('INCR', k)
		if redis.call('PTTL', k) < 0 then redis.call('PEXPIRE', k, ARGV[o + 2]) end
	else
		redis.call('SET', k, ARGV[o + 2] .. ':' .. ARGV[2], 'PX', ARGV[o + 3])
	end
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], 0, ARGV[3])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
if ARGV[5] == '1' then
	redis.call('SET', KEYS[5], ARGV[6])
	if ARGV[7] ~= '0' then redis.call('PEXPIREAT', KEYS[5], ARGV[7]) end
else
	redis.call('DEL', KEYS[5])
end
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[2])
return {1}`)

	// updateRunScript replaces a stored run, moving its listing entry
	// when the creation time changed.
	updateRunScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local old = redis.call('HGET', KEYS[3], ARGV[2])
if old ~= ARGV[3] then
	if old then redis.call('ZREM', KEYS[2], old) end
	redis.call('ZADD', KEYS[2], 0, ARGV[3])
	redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
end
redis.call('SET', KEYS[1], ARGV[1])
return 1`)

	// deleteRunScript removes a run the sweep judged final, unless it
	// changed since it was read (ARGV[1] is the JSON the sweep decided on;
	// empty for an index entry whose run is gone). Returns 1 if a run
	// was removed.
	deleteRunScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '' then
	if cur then return 0 end
else
	if cur ~= ARGV[1] then return 0 end
	redis.call('DEL', KEYS[1], KEYS[5])
	redis.call('ZREM', KEYS[4], ARGV[3])
end
redis.call('ZREM', KEYS[2], ARGV[2])
if redis.call('HGET', KEYS[3], ARGV[3]) == ARGV[2] then redis.call('HDEL', KEYS[3], ARGV[3]) end
if cur then return 1 end
return 0`)

	// claimRunScript leases the first run due at ARGV[1] until ARGV[2]:
	// one script, so two instances never get the same run.
	claimRunScript = redis.NewScript(`
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1)
if #due == 0 then return false end
redis.call('ZADD', KEYS[1], ARGV[2], due[1])
return due[1]`)

	// requeueRunScript queues a stored run at ARGV[1]; 0 if there is no run.
	requeueRunScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
return 1`)

	// takeQuotaScript counts one unit against a window's limit, never
	// past it, and lets redis drop the counter after the window.
	takeQuotaScript = redis.NewScript(`
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then return 0 end
redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1`)

	// rememberKeyScript holds "expiry(µs):value" under a dedupe key. The
	// expiry inside the value is what counts (the caller's clock); the
	// redis TTL only cleans up.
	rememberKeyScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then
	local i = string.find(v, ':', 1, true)
	if i and tonumber(string.sub(v, 1, i - 1)) > tonumber(ARGV[1]) then
		return {0, string.sub(v, i + 1)}
	end
end
redis.call('SET', KEYS[1], ARGV[2] .. ':' .. ARGV[3], 'PX', ARGV[4])
return {1, ARGV[3]}`)

	// forgetKeyScript deletes a dedupe key only while it holds ARGV[1].
	forgetKeyScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then
	local i = string.find(v, ':', 1, true)
	if i and string.sub(v, i + 1) == ARGV[1] then redis.call('DEL', KEYS[1]) end
end
return 0`)

	// logRejectionScript appends to the capped trigger log.
	logRejectionScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], n, n .. ':' .. ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[2]) + 1))
return n`)
)

// CreateRun stores run and payload, takes its claims and queues the run,
// due at run.NextAttemptAt (a zero time is due at once), in one script:
// one round trip, atomic across every instance sharing the redis. When a
// claim cannot be had nothing is written and the error is a
// *launch.ClaimDenied. The payload key expires in redis at
// payload.ExpiresAt (plus a grace for clock differences; GetPayload judges
// expiry exactly).
func (r *Redis) CreateRun(ctx context.Context, run *launch.Run, payload *launch.Payload, claims ...launch.Claim) error {
	if run == nil || run.ID == "" {
		return errors.New("store: CreateRun needs a run with an id")
	}
	data, err := launch.MarshalRun(run)
	if err != nil {
		return fmt.Errorf("store: encoding run %q: %w", run.ID, err)
	}
	has, pdata, exp := "0", []byte{}, "0"
	if payload != nil {
		has, pdata = "1", encodePayload(payload)
		if !payload.ExpiresAt.IsZero() {
			exp = strconv.FormatInt(payload.ExpiresAt.Add(clockGrace).UnixMilli(), 10)
		}
	}
	keys := make([]string, 5, 5+len(claims))
	keys[0], keys[1], keys[2], keys[3], keys[4] = r.kRun(run.ID), r.kRuns(), r.kRunMembers(), r.kQueue(), r.kPayload(run.ID)
	args := make([]any, 7, 7+4*len(claims))
	args[0], args[1], args[2], args[3], args[4], args[5], args[6] = data, run.ID, runMember(run.CreatedAt, run.ID), usec(run.NextAttemptAt), has, pdata, exp
	retryAfter := make([]time.Duration, len(claims))
	for i, c := range claims {
		if err := c.Check(); err != nil {
			return err
		}
		if c.IsQuota() {
			at, p := stamp(c.At), uint64(c.Period)
			end := at - at%p + p
			retryAfter[i] = time.Duration(end - at)
			keys = append(keys, r.kQuota(c.Key, c.Period, end))
			args = append(args, "q", max(c.Limit, 0), ttlMillis(retryAfter[i]), "")
			continue
		}
		keys = append(keys, r.kDedupe(c.Key))
		args = append(args, "k", usec(c.At), usec(c.At.Add(c.Window)), ttlMillis(c.Window))
	}
	res, err := r.runAcked(ctx, createRunScript, keys, args...).Slice()
	if err != nil {
		return fmt.Errorf("store: redis: storing run %q: %w", run.ID, err)
	}
	var code int64
	if len(res) > 0 {
		code, _ = res[0].(int64)
	}
	switch code {
	case 1:
		return nil
	case 2:
		var i64 int64 = -1
		if len(res) > 1 {
			i64, _ = res[1].(int64)
		}
		i := int(i64)
		if i < 0 || i >= len(claims) {
			return fmt.Errorf("store: redis: storing run %q: unexpected reply %v", run.ID, res)
		}
		d := &launch.ClaimDenied{Index: i, RetryAfter: retryAfter[i]}
		if len(res) > 2 {
			d.Held, _ = res[2].(string)
		}
		return d
	}
	return fmt.Errorf("store: run %q already exists", run.ID)
}

// UpdateRun replaces a stored run. It does not touch the queue: workers move
// a run there with RequeueRun and CompleteRun.
func (r *Redis) UpdateRun(ctx context.Context, run *launch.Run) error {
	if run == nil {
		return errors.New("store: UpdateRun needs a run")
	}
	data, err := launch.MarshalRun(run)
	if err != nil {
		return fmt.Errorf("store: encoding run %q: %w", run.ID, err)
	}
	keys := []string{r.kRun(run.ID), r.kRuns(), r.kRunMembers()}
	n, err := r.runAcked(ctx, updateRunScript, keys, data, run.ID, runMember(run.CreatedAt, run.ID)).Int()
	if err != nil {
		return fmt.Errorf("store: redis: updating run %q: %w", run.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("store: run %q: %w", run.ID, launch.ErrNotFound)
	}
	return nil
}

// GetRun returns a run or an error wrapping launch.ErrNotFound.
func (r *Redis) GetRun(ctx context.Context, id string) (*launch.Run, error) {
	data, err := r.rdb.Get(ctx, r.kRun(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("store: run %q: %w", id, launch.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: redis: reading run %q: %w", id, err)
	}
	return decodeRun(id, data)
}

// listPage is how many index entries one round trip of ListRuns,
// DeleteRunsBefore and ListRejections reads.
const listPage = 256

// ListRuns returns the runs matching f, newest first, at most f.Limit
// (DefaultListLimit when unset). It pages through the index by member, not
// by rank, so runs created meanwhile neither repeat nor shift the listing.
func (r *Redis) ListRuns(ctx context.Context, f launch.RunFilter) ([]*launch.Run, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	page := int64(listPage)
	if f.Trigger == "" && f.Path == "" && f.Status == "" {
		page = int64(limit) // no filter: exactly what is needed
	}
	out := []*launch.Run{}
	upper := "+"
	for len(out) < limit {
		members, err := r.rdb.ZRevRangeByLex(ctx, r.kRuns(), &redis.ZRangeBy{Max: upper, Min: "-", Count: page}).Result()
		if err != nil {
			return nil, fmt.Errorf("store: redis: listing runs: %w", err)
		}
		if len(members) == 0 {
			break
		}
		upper = "(" + members[len(members)-1]
		keys := make([]string, len(members))
		for i, m := range members {
			keys[i] = r.kRun(memberID(m))
		}
		vals, err := r.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			return nil, fmt.Errorf("store: redis: listing runs: %w", err)
		}
		for i, v := range vals {
			s, ok := v.(string)
			if !ok || len(out) >= limit {
				continue // a run deleted since the index was read
			}
			run, err := decodeRun(memberID(members[i]), []byte(s))
			if err != nil {
				return nil, err
			}
			if (f.Trigger != "" && run.Trigger != f.Trigger) ||
				(f.Path != "" && run.Path != f.Path) ||
				(f.Status != "" && run.Status != f.Status) {
				continue
			}
			out = append(out, run)
		}
		if int64(len(members)) < page {
			break
		}
	}
	return out, nil
}

// memberID is the run id of a listing-index member.
func memberID(m string) string {
	if len(m) < 16 {
		return ""
	}
	return m[16:]
}

// DeleteRunsBefore removes final runs created before t, with their payloads
// and queue entries, and returns how many it removed. A run that changes
// while the sweep looks at it is left for the next sweep. Expired payloads
// need no sweep here: redis drops them at their expiry.
func (r *Redis) DeleteRunsBefore(ctx context.Context, t time.Time) (int, error) {
	cut := "(" + fmt.Sprintf("%016x", stamp(t))
	lower := "-"
	removed := 0
	for {
		members, err := r.rdb.ZRangeByLex(ctx, r.kRuns(), &redis.ZRangeBy{Min: lower, Max: cut, Count: listPage}).Result()
		if err != nil {
			return removed, fmt.Errorf("store: redis: listing old runs: %w", err)
		}
		if len(members) == 0 {
			return removed, nil
		}
		lower = "(" + members[len(members)-1]
		keys := make([]string, len(members))
		for i, m := range members {
			keys[i] = r.kRun(memberID(m))
		}
		vals, err := r.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			return removed, fmt.Errorf("store: redis: reading old runs: %w", err)
		}
		pipe := r.rdb.Pipeline()
		var cmds []*redis.Cmd
		for i, v := range vals {
			id := memberID(members[i])
			data, _ := v.(string)
			if data != "" {
				var run struct {
					Status launch.RunStatus `json:"status"`
				}
				if err := json.Unmarshal([]byte(data), &run); err != nil {
					return removed, fmt.Errorf("store: decoding run %q: %w", id, err)
				}
				if !run.Status.Final() {
					continue
				}
			}
			dkeys := []string{r.kRun(id), r.kRuns(), r.kRunMembers(), r.kQueue(), r.kPayload(id)}
			cmds = append(cmds, deleteRunScript.Eval(ctx, pipe, dkeys, data, members[i], id))
		}
		if len(cmds) > 0 {
			if _, err := pipe.Exec(ctx); err != nil {
				return removed, fmt.Errorf("store: redis: deleting old runs: %w", err)
			}
			for _, c := range cmds {
				if n, _ := c.Int(); n == 1 {
					removed++
				}
			}
		}
		if len(members) < listPage {
			return removed, nil
		}
	}
}

// GetPayload returns the stored payload of a run, or an error wrapping
// launch.ErrNotFound when there is none or it expired (by RedisOptions.Now).
// A payload with a zero ExpiresAt never expires.
func (r *Redis) GetPayload(ctx context.Context, runID string) (*launch.Payload, error) {
	data, err := r.rdb.Get(ctx, r.kPayload(runID)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("store: payload %q: %w", runID, launch.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: redis: reading payload %q: %w", runID, err)
	}
	p, err := decodePayload(data)
	if err != nil {
		return nil, fmt.Errorf("store: payload %q: %w", runID, err)
	}
	if !p.ExpiresAt.IsZero() && !r.now().Before(p.ExpiresAt) {
		return nil, fmt.Errorf("store: payload %q expired: %w", runID, launch.ErrNotFound)
	}
	return p, nil
}

// ClaimRun hands the first run due at now to one caller, across every
// instance sharing the redis, and leases it: its queue score moves to
// now+lease, so if the worker dies the run becomes due again.
func (r *Redis) ClaimRun(ctx context.Context, now time.Time, lease time.Duration) (string, bool, error) {
	if lease <= 0 {
		return "", false, errors.New("store: ClaimRun needs a positive lease")
	}
	id, err := r.runAcked(ctx, claimRunScript, []string{r.kQueue()}, usec(now), usec(now.Add(lease))).Text()
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("store: redis: claiming a run: %w", err)
	}
	return id, true, nil
}

// RequeueRun puts a run on the queue due at the given time, whether it was
// claimed or already completed (a manual retry), replacing any lease.
func (r *Redis) RequeueRun(ctx context.Context, runID string, at time.Time) error {
	n, err := requeueRunScript.Run(ctx, r.rdb, []string{r.kRun(runID), r.kQueue()}, usec(at), runID).Int()
	if err != nil {
		return fmt.Errorf("store: redis: requeueing run %q: %w", runID, err)
	}
	if n == 0 {
		return fmt.Errorf("store: run %q: %w", runID, launch.ErrNotFound)
	}
	return nil
}

// CompleteRun removes a run from the queue. Completing a run that is not
// queued succeeds, so a worker may safely repeat it.
func (r *Redis) CompleteRun(ctx context.Context, runID string) error {
	if err := r.rdb.ZRem(ctx, r.kQueue(), runID).Err(); err != nil {
		return fmt.Errorf("store: redis: completing run %q: %w", runID, err)
	}
	return nil
}

// QueueDepth counts queued runs, including those leased to a worker: they
// stay queued until CompleteRun.
func (r *Redis) QueueDepth(ctx context.Context) (int, error) {
	n, err := r.rdb.ZCard(ctx, r.kQueue()).Result()
	if err != nil {
		return 0, fmt.Errorf("store: redis: counting the queue: %w", err)
	}
	return int(n), nil
}

// TakeQuota consumes one unit of key's quota in the fixed window of length
// period that contains now. Windows are aligned to multiples of period since
// the Unix epoch, so every instance agrees on them; the counter is one redis
// key checked and incremented by one script, so the limit is exact however
// many instances take at once.
func (r *Redis) TakeQuota(ctx context.Context, key string, limit int, period time.Duration, now time.Time) (bool, time.Duration, error) {
	if period <= 0 {
		return false, 0, errors.New("store: TakeQuota needs a positive period")
	}
	at, p := stamp(now), uint64(period)
	end := at - at%p + p
	retryAfter := time.Duration(end - at)
	if limit <= 0 {
		return false, retryAfter, ctx.Err()
	}
	n, err := r.runAcked(ctx, takeQuotaScript, []string{r.kQuota(key, period, end)}, limit, ttlMillis(retryAfter)).Int()
	if err != nil {
		return false, 0, fmt.Errorf("store: redis: taking quota: %w", err)
	}
	if n == 0 {
		return false, retryAfter, nil
	}
	return true, 0, nil
}

// RememberKey records value under key until now+window unless an unexpired
// value is held; it returns the held value and whether this call stored it.
// Expiry is judged by now, so instances agree however redis's clock runs.
func (r *Redis) RememberKey(ctx context.Context, key, value string, window time.Duration, now time.Time) (string, bool, error) {
	if key == "" || window <= 0 {
		return "", false, errors.New("store: RememberKey needs a key and a positive window")
	}
	res, err := r.runAcked(ctx, rememberKeyScript, []string{r.kDedupe(key)},
		usec(now), usec(now.Add(window)), value, ttlMillis(window)).Slice()
	if err != nil {
		return "", false, fmt.Errorf("store: redis: remembering a key: %w", err)
	}
	if len(res) != 2 {
		return "", false, fmt.Errorf("store: redis: remembering a key: unexpected reply %v", res)
	}
	first, _ := res[0].(int64)
	held, _ := res[1].(string)
	return held, first == 1, nil
}

// ForgetKey deletes key when it still holds value (compare and delete in one
// script, so a value another delivery stored meanwhile survives).
func (r *Redis) ForgetKey(ctx context.Context, key, value string) error {
	if err := forgetKeyScript.Run(ctx, r.rdb, []string{r.kDedupe(key)}, value).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("store: redis: forgetting a key: %w", err)
	}
	return nil
}

// LogRejection appends rej to the trigger log, dropping the oldest entries
// beyond RedisOptions.MaxRejections.
func (r *Redis) LogRejection(ctx context.Context, rej launch.Rejected) error {
	data, err := json.Marshal(rej)
	if err != nil {
		return fmt.Errorf("store: encoding rejection: %w", err)
	}
	if err := logRejectionScript.Run(ctx, r.rdb, []string{r.kRejectionSeq(), r.kRejections()}, data, r.maxRejections).Err(); err != nil {
		return fmt.Errorf("store: redis: logging a rejection: %w", err)
	}
	return nil
}

// ListRejections returns rejections newest first; f.Path and f.Limit apply.
func (r *Redis) ListRejections(ctx context.Context, f launch.RunFilter) ([]launch.Rejected, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	page := int64(listPage)
	if f.Path == "" {
		page = int64(limit)
	}
	out := []launch.Rejected{}
	upper := "+inf"
	for len(out) < limit {
		entries, err := r.rdb.ZRevRangeByScoreWithScores(ctx, r.kRejections(), &redis.ZRangeBy{Max: upper, Min: "-inf", Count: page}).Result()
		if err != nil {
			return nil, fmt.Errorf("store: redis: listing rejections: %w", err)
		}
		if len(entries) == 0 {
			break
		}
		upper = "(" + strconv.FormatFloat(entries[len(entries)-1].Score, 'f', -1, 64)
		for _, e := range entries {
			m, _ := e.Member.(string)
			i := strings.IndexByte(m, ':')
			if i < 0 {
				continue
			}
			var rej launch.Rejected
			if err := json.Unmarshal([]byte(m[i+1:]), &rej); err != nil {
				return nil, fmt.Errorf("store: decoding rejection: %w", err)
			}
			if (f.Path == "" || rej.Path == f.Path) && len(out) < limit {
				out = append(out, rej)
			}
		}
		if int64(len(entries)) < page {
			break
		}
	}
	return out, nil
}

// Secret returns the named secret, generating and storing it the first time.
// gen runs only when redis holds no secret of that name; if instances race,
// SET NX lets the first writer win and every caller returns its bytes.
func (r *Redis) Secret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error) {
	if name == "" {
		return nil, errors.New("store: Secret needs a name")
	}
	k := r.kSecret(name)
	held, err := r.rdb.Get(ctx, k).Bytes()
	if err == nil {
		return held, nil
	}
	if !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("store: redis: reading secret %q: %w", name, err)
	}
	fresh, err := gen()
	if err != nil {
		return nil, fmt.Errorf("store: generating secret %q: %w", name, err)
	}
	if len(fresh) == 0 {
		return nil, fmt.Errorf("store: generating secret %q: empty secret", name)
	}
	won, err := r.rdb.SetNX(ctx, k, fresh, 0).Result()
	if err != nil {
		return nil, fmt.Errorf("store: redis: storing secret %q: %w", name, err)
	}
	if won {
		return fresh, nil
	}
	held, err = r.rdb.Get(ctx, k).Bytes()
	if err != nil {
		return nil, fmt.Errorf("store: redis: reading secret %q: %w", name, err)
	}
	return held, nil
}
