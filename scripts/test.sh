#!/usr/bin/env bash
# The whole test suite, from a fresh clone: formatting, vet, the race-enabled
# tests (unit, integration through a real Caddy, the example config through
# the built binary) and the xcaddy custom build. Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

# install_debian_packages installs Debian packages with apt-get (as root, or
# through passwordless sudo), or says how to install them by hand.
install_debian_packages() {
	local sudo=""
	if [ "$(id -u)" -ne 0 ]; then
		if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
			sudo="sudo -n"
		else
			echo "$* not installed and this is not root (nor passwordless sudo): install with: sudo apt-get install -y $*" >&2
			return 1
		fi
	fi
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "$* not installed and apt-get is not available: install them and re-run" >&2
		return 1
	fi
	echo "installing $* with apt-get"
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
		$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" || {
		echo "apt-get could not install $*; install by hand and re-run" >&2
		return 1
	}
}

# The redis store is tested against a real redis-server, never a mock: make
# sure one is installed (Debian's package), then run ONE server for the whole
# test run on a throwaway loopback port, without persistence, in a temporary
# directory. Tests reserve a database of it each (launch/store/redistest),
# hence the many databases.
echo "== redis-server"
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
	# The package's service may start one on 6379; the tests use their own.
	# redis-cli (redis-tools, a dependency) builds the test cluster.
	install_debian_packages redis-server redis-tools || exit 1
fi
redis-server --version

redis_dir=$(mktemp -d)
redis_pid=""
stop_redis() {
	if [ -n "$redis_pid" ] && kill -0 "$redis_pid" 2>/dev/null; then
		kill "$redis_pid" 2>/dev/null || true
		for _ in $(seq 50); do
			kill -0 "$redis_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$redis_pid" 2>/dev/null || true
	fi
	rm -rf "$redis_dir"
	stop_redis_topology
}
# The Sentinel deployment and the Cluster (docs/redis.md, "Tests").
redis_topology_dir=$(mktemp -d)
. scripts/redis-topology.sh
trap stop_redis EXIT
trap 'exit 130' INT TERM # so the EXIT trap also runs when interrupted

# redis_ping PORT succeeds when a redis answers PING on 127.0.0.1:PORT.
redis_ping() {
	local reply
	{ exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
	printf 'PING\r\n' >&3
	IFS= read -r -t 1 reply <&3 || reply=""
	exec 3<&- 3>&-
	[ "${reply%$'\r'}" = "+PONG" ]
}

# A port may be taken between choosing and binding it: retry on another.
redis_port=""
for _ in 1 2 3 4 5; do
	port=$(loopback_random_port)
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		continue # something listens there already
	fi
	redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
		--dir "$redis_dir" --databases 4096 --daemonize no \
		--logfile "$redis_dir/redis.log" &
	redis_pid=$!
	for _ in $(seq 100); do
		if redis_ping "$port"; then
			redis_port=$port
			break
		fi
		kill -0 "$redis_pid" 2>/dev/null || break # exited: port taken
		sleep 0.05
	done
	[ -n "$redis_port" ] && break
	kill "$redis_pid" 2>/dev/null || true
	wait "$redis_pid" 2>/dev/null || true
	redis_pid=""
done
if [ -z "$redis_port" ]; then
	echo "could not start redis-server on a loopback port:" >&2
	cat "$redis_dir/redis.log" >&2 2>/dev/null || true
	exit 1
fi
export VALOHAI_TEST_REDIS_URL="redis://127.0.0.1:$redis_port/0"
echo "redis-server on 127.0.0.1:$redis_port for this run"

# High availability (docs/redis.md): one Sentinel deployment (1 master, 2
# replicas, 3 sentinels) and one 3-master Cluster for the whole run; tests
# share them, each under a key prefix of its own. Tests that kill a server
# start private ones (launch/store/redistest).
start_redis_sentinel || exit 1
start_redis_cluster || exit 1
export VALOHAI_TEST_REDIS_SENTINEL="$redis_sentinel_master@$redis_sentinel_addrs"
export VALOHAI_TEST_REDIS_CLUSTER="$redis_cluster_addrs"
echo "redis Sentinel ($VALOHAI_TEST_REDIS_SENTINEL) and Cluster ($VALOHAI_TEST_REDIS_CLUSTER) for this run"

# The console's browser tests drive headless Chromium, and the alert rules
# are checked with promtool: both from Debian's packages (chromium,
# prometheus), installed here when missing, like redis-server above.
echo "== chromium, promtool, node, python3"
missing_packages=()
command -v chromium >/dev/null 2>&1 || missing_packages+=(chromium)
command -v promtool >/dev/null 2>&1 || missing_packages+=(prometheus)
# The hostile-input tests check that Node's and Python's own HTTP clients
# read a 413 (caddymodule/hostile_test.go).
command -v node >/dev/null 2>&1 || missing_packages+=(nodejs)
command -v python3 >/dev/null 2>&1 || missing_packages+=(python3)
if [ "${#missing_packages[@]}" -gt 0 ]; then
	install_debian_packages "${missing_packages[@]}" || exit 1
fi
export VALOHAI_TEST_CHROMIUM="$(command -v chromium)"
chromium --version 2>/dev/null | head -1
promtool --version 2>&1 | head -1
(cd docs && promtool check rules prometheus-rules.yml && promtool test rules prometheus-rules.test.yml)

echo "== go test -race"
go test -race -count=1 -timeout 20m ./...

echo "== xcaddy build"
./scripts/xcaddy-build.sh "$(mktemp -d)/caddy"
