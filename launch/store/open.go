package store

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/hooklaunch/caddy-valohai/launch"
)

// ErrUnreachable is wrapped by Open's error when the store's server does
// not answer (down, unreachable, or refusing the credentials): a problem of
// where the store runs, not of the configuration's syntax.
var ErrUnreachable = errors.New("store unreachable")

// unreachableError carries a message already scrubbed of passwords and
// answers errors.Is(err, ErrUnreachable).
type unreachableError struct{ msg string }

func (e *unreachableError) Error() string        { return e.msg }
func (e *unreachableError) Is(target error) bool { return target == ErrUnreachable }

// Config says which store to open: the `store` option of the valohai app
// (README.md, "Global option `valohai`"; docs/redis.md), placeholders
// already expanded.
type Config struct {
	// Type is "file" (embedded, one process) or "redis".
	Type string
	// Dir is the directory of the embedded store (type file).
	Dir string
	// Engine is the embedded engine (type file): EnginePebble (the
	// default) or EngineBolt (README.md, "The durable write path").
	Engine string

	// URL names one redis server (type redis), or is empty when Sentinel
	// or Cluster name the servers.
	URL string
	// Sentinel lists sentinel addresses, Master the monitored master's name.
	Sentinel []string
	Master   string
	// Cluster lists seed nodes of a Redis Cluster.
	Cluster []string
	// Username and Password authenticate to the redis servers of a
	// Sentinel or Cluster deployment.
	Username, Password string
	// TLS turns TLS on for every connection of a Sentinel or Cluster
	// deployment, verified against the system's roots (or TLSConfig's).
	TLS bool
	// TLSConfig overrides the TLS settings when TLS is on (tests give
	// their own root CA).
	TLSConfig *tls.Config
	// Prefix is put before every redis key (default DefaultRedisPrefix).
	Prefix string
	// MinReplicasAck is how many replicas must hold a write before a 2xx
	// rests on it (WAIT); AckTimeout bounds the wait.
	MinReplicasAck int
	AckTimeout     time.Duration

	// Logger receives what opening found worth saying (runs resumed, a
	// redis that can lose data). Nil logs nothing.
	Logger *zap.Logger
}

// redis reports whether c is a redis store.
func (c Config) redis() bool { return c.Type == "redis" }

// Check reports a configuration mistake before anything is dialled, in
// words that name the sub-directive and the fix.
func (c Config) Check() error {
	switch c.Type {
	case "", "file":
		return nil
	case "redis":
	default:
		return fmt.Errorf("unknown store type %q; use: store file <dir>, or store redis <url>, or store redis { sentinel ... | cluster ... }", c.Type)
	}
	const fix = "e.g. store redis redis://user:password@host:6379/0, or a block with sentinel <addr>... and master <name>, or cluster <addr>..."
	given := 0
	for _, set := range []bool{strings.TrimSpace(c.URL) != "", len(c.Sentinel) > 0, len(c.Cluster) > 0} {
		if set {
			given++
		}
	}
	switch {
	case given == 0:
		return fmt.Errorf("store redis needs a URL, or sentinel or cluster addresses: %s", fix)
	case len(c.Sentinel) > 0 && len(c.Cluster) > 0:
		return errors.New("store redis: sentinel and cluster exclude each other: a deployment is either watched by sentinels or is a cluster; keep the one you run")
	case given > 1:
		return errors.New("store redis: a URL and sentinel/cluster addresses exclude each other: the URL names one server; for Sentinel or Cluster drop the URL and put username/password/tls in the block")
	case len(c.Sentinel) > 0 && c.Master == "":
		return errors.New("store redis: sentinel needs `master <name>`, the master name the sentinels monitor (sentinel monitor <name> ... in sentinel.conf)")
	case c.Master != "" && len(c.Sentinel) == 0:
		return errors.New("store redis: master goes with sentinel: add `sentinel <host:port>...` or drop master")
	case c.URL != "" && (c.Username != "" || c.Password != "" || c.TLS):
		return errors.New("store redis: with a URL, put the user and password in it (redis://user:password@host:6379/0) and use rediss:// for TLS; username, password and tls are for sentinel and cluster")
	case c.MinReplicasAck < 0:
		return errors.New("store redis: min_replicas_ack must be 0 (do not wait) or a number of replicas")
	case c.AckTimeout < 0:
		return errors.New("store redis: the min_replicas_ack timeout must be positive, e.g. min_replicas_ack 1 1s")
	case len(c.Cluster) > 0 && strings.ContainsAny(c.Prefix, "{}"):
		return fmt.Errorf("store redis: on a cluster the key prefix is the keys' hash tag and may not contain { or } (got %q); choose another prefix", c.Prefix)
	}
	for _, a := range append(append([]string{}, c.Sentinel...), c.Cluster...) {
		if err := checkAddr(a); err != nil {
			return err
		}
	}
	return nil
}

// checkAddr wants host:port.
func checkAddr(a string) error {
	i := strings.LastIndexByte(a, ':')
	if i <= 0 || i == len(a)-1 {
		return fmt.Errorf("store redis: %q is not host:port, e.g. 10.0.0.1:26379", a)
	}
	if p, err := strconv.Atoi(a[i+1:]); err != nil || p <= 0 || p > 65535 {
		return fmt.Errorf("store redis: %q has no valid port, e.g. 10.0.0.1:26379", a)
	}
	return nil
}

// Where describes the store for logs and errors: never a password.
func (c Config) Where() string {
	switch {
	case !c.redis():
		return "file " + c.Dir
	case len(c.Sentinel) > 0:
		return "redis sentinel " + strings.Join(c.Sentinel, " ") + " master " + c.Master
	case len(c.Cluster) > 0:
		return "redis cluster " + strings.Join(c.Cluster, " ")
	default:
		return "redis " + HideURLPassword(c.URL)
	}
}

// Key identifies one store to share among users in a process (Caddy's
// config reloads): the location without secrets, plus a hash of everything,
// so two configs differing only by password (two identities on redis) get
// two clients while the key itself shows no password.
func (c Config) Key() string {
	if !c.redis() {
		return "file:" + c.Dir
	}
	h := sha256.New()
	for _, part := range []string{c.URL, strings.Join(c.Sentinel, ","), c.Master, strings.Join(c.Cluster, ","),
		c.Username, c.Password, strconv.FormatBool(c.TLS), strconv.Itoa(c.MinReplicasAck), c.AckTimeout.String()} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return c.Where() + " prefix=" + c.Prefix + " id=" + hex.EncodeToString(h.Sum(nil))
}

// Open opens the store c names and applies the opening policy: an
// embedded store resumes the runs a previous process left leased; a redis store is
// checked to answer (ErrUnreachable otherwise) and its persistence settings
// are logged when they could lose an acknowledged run. Errors never contain
// a password.
func Open(ctx context.Context, c Config) (launch.Store, error) {
	if err := c.Check(); err != nil {
		return nil, err
	}
	log := c.Logger
	if log == nil {
		log = zap.NewNop()
	}
	if !c.redis() {
		abs, err := filepath.Abs(c.Dir)
		if err != nil {
			return nil, fmt.Errorf("store file %q: %v", c.Dir, err)
		}
		s, migrated, err := OpenFile(abs, c.Engine, BoltOptions{})
		if err != nil {
			return nil, err
		}
		if migrated {
			log.Info("copied the bbolt store of an earlier version into pebble; the old file is kept as "+boltMoved,
				zap.String("store", abs))
		}
		// Opened by this process for the first time: runs leased by a
		// previous process (killed mid-launch) are due now.
		n, err := s.ReleaseLeases(time.Now())
		if err != nil {
			_ = s.Close()
			return nil, err
		}
		if n > 0 {
			log.Info("resuming runs left by a previous process", zap.Int("runs", n))
		}
		return s, nil
	}
	if c.Logger != nil {
		redisLogOnce.Do(func() { redis.SetLogger(redisLog{c.Logger.Named("redis")}) })
	}
	opts := RedisOptions{
		Prefix:         c.Prefix,
		Sentinel:       c.Sentinel,
		Master:         c.Master,
		Cluster:        c.Cluster,
		Username:       c.Username,
		Password:       c.Password,
		MinReplicasAck: c.MinReplicasAck,
		AckTimeout:     c.AckTimeout,
	}
	if c.TLS {
		opts.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
		if c.TLSConfig != nil {
			opts.TLS = c.TLSConfig.Clone()
		}
	}
	if dl, ok := ctx.Deadline(); ok {
		opts.OpenTimeout = time.Until(dl)
	}
	s, err := OpenRedis(c.URL, opts)
	if err != nil {
		return nil, err
	}
	// A 2xx to a sender rests on this store: say so when redis would lose
	// it on a restart.
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	durable, settings, perr := s.Persistence(pctx)
	switch {
	case perr != nil:
		log.Info("cannot read the redis persistence settings; make sure of appendonly yes and maxmemory-policy noeviction, or runs accepted with a 2xx can be lost",
			zap.String("redis", s.URL()), zap.Error(perr))
	case !durable:
		log.Warn("redis can lose runs accepted with a 2xx (on a restart, or by evicting keys when full): set appendonly yes and maxmemory-policy noeviction",
			zap.String("redis", s.URL()), zap.String("settings", settings))
	}
	if c.MinReplicasAck == 0 && (len(c.Sentinel) > 0 || len(c.Cluster) > 0) {
		log.Info("min_replicas_ack is 0: a failover can lose runs already answered 2xx (redis replicates asynchronously); set min_replicas_ack 1 to wait for a replica",
			zap.String("redis", s.URL()))
	}
	return s, nil
}

// redisLogOnce routes go-redis's own messages (reconnects, the master a
// sentinel names after a failover) to the first store's logger instead of
// the process's stderr: go-redis has one logger per process.
var redisLogOnce sync.Once

type redisLog struct{ l *zap.Logger }

func (r redisLog) Printf(_ context.Context, format string, v ...any) {
	r.l.Info(fmt.Sprintf(format, v...))
}
