#!/usr/bin/env bash
# bench/run.sh: whole-server benchmarks of caddy-valohai, each figure a ratio
# against a baseline measured in the same invocation, interleaved, with the
# server pinned to one core and unpinned (the scheduler decides, as people
# run it), and a table of issue 12's goals judged on both.
#
#   bench/run.sh                       # everything, ~22 minutes
#   bench/run.sh -d 5 -r 5             # longer trials, more rounds
#   bench/run.sh -s bare,chain -z 1k   # some scenarios, some sizes
#   bench/run.sh --pin only            # pinned only (--pin none: unpinned only)
#   bench/run.sh -s launch-pebble,webhook -z 1k --compare HEAD~1
#                                      # this tree against another commit,
#                                      # interleaved within every round
#
# Scenarios (-s, comma-separated; the table SCENARIOS_TABLE below defines them):
#   bare          Caddy reads the body and answers `respond` (baseline)
#   bare-respond  `respond` alone, the body left to Go's server (1 KiB only:
#                 Go closes the connection after an unread body > 256 KiB)
#   hmac          webhook_hmac github <secret> -> respond
#   chain         webhook_hmac slack + webhook_timestamp + webhook_filter
#                 + webhook_rate_limit -> respond
#   chain-nolimit the chain without webhook_rate_limit (shows what the
#                 durable quota costs)
#   launch-bbolt  the chain + valohai_launch (wait 0s, 202 after the durable
#                 store) on `store file <dir> bbolt`, against a slowed-down simulator in
#                 another Caddy process
#   launch-pebble the same on `store file <dir> pebble`, the embedded default
#   launch-bbolt-dedupe, launch-pebble-dedupe  the same plus webhook_dedupe
#                 on X-GitHub-Delivery, a new id in every request (wrk
#                 builds each request): the lookup of a new delivery key
#   launch-redis  the same on the redis store (a redis-server started here)
#   launch-sentinel  the same on Redis Sentinel (1 master, 2 replicas, 3
#                 sentinels started here), min_replicas_ack 1
#   launch-cluster   the same on a 3-master Redis Cluster started here
#   webhook       adnanh/webhook: payload-hmac-sha256 -> /bin/true (peer)
#   step-route, step-app, step-route-app, step-hmac, step-timestamp
#                 the chain built up one step at a time from bare-respond
#                 (route, app, hmac, timestamp; chain-nolimit adds the
#                 filter, chain the rate limit): diagnostics, run only when
#                 named with -s
# Sizes (-z): 1k, 1m.
#
# Every request is valid (signed at the start of its trial, timestamp
# fresh); every status is counted and any non-2xx marks the figure invalid.
# All traffic stays on 127.0.0.1; every loop is bounded in count and time.
# See bench/README.md for the method and the last results.
set -euo pipefail

DURATION=3          # seconds measured per trial (1 MiB trials: twice that)
WARMUP=1            # seconds of unmeasured load before each trial (1 MiB: twice)
ROUNDS=3            # interleaved rounds (each pinned and unpinned); figures are medians over rounds
CONNS=32            # concurrent keep-alive connections, 1 KiB bodies
CONNS_1M=8          # the same for 1 MiB bodies (see README: latency = conns x service time)
SIZES="1k,1m"
PIN_MODE=both       # both: every round pinned and unpinned; only: pinned; none: unpinned
MEM=1               # memory per 10,000 queued runs
PROFILE=1           # CPU profiles of the goal scenarios
PROFILE_SECONDS=4
GOBENCH=1           # go test -bench VerifyGitHub|RawHMAC
GOBENCH_RUNS=3
SIM_DELAY=5s        # how slow the simulated Valohai answers during trials
SERVER_ENV=()       # NAME=VALUE settings for the Caddy servers under test (--server-env)
MEM_RUNS=10000
OUT=""
KEEP=0
COMPARE=""          # a commit whose build every scenario also runs on (--compare)

# The scenarios, one a line: name | Caddyfile in bench/caddyfiles/ ("-":
# adnanh/webhook) | signing scheme | store of the valohai app: its kind
# (file, pebble, redis; "-": none) and any further words of the `store`
# line after the folder or URL | kind | label. The kind says what the report
# compares it with: baseline (bare, bare-respond and webhook are the
# denominators), chain (>= 0.85x bare respond), launch-embedded (a full
# trigger on an embedded store: >= 2x webhook), launch-remote (the same on
# a store elsewhere: shown), info (shown). A new store or chain is one line
# here; a scenario the build cannot run (a directive or store it lacks) is
# reported as skipped.
SCENARIOS_TABLE='
bare|bare|github|-|baseline|bare Caddy `respond` (body read)
bare-respond|bare-respond|github|-|baseline|bare Caddy `respond`, body left unread
hmac|hmac|github|-|info|`webhook_hmac github` → respond
step-route|step-route|slack|-|info|step: `respond` in `route /hook` as the chains, no app
step-app|step-app|slack|file|info|step: `respond`, the valohai app loaded
step-route-app|step-route-app|slack|file|info|step: `respond` in `route /hook`, the app loaded
step-hmac|step-hmac|slack|file|info|step: + `webhook_hmac slack`
step-timestamp|step-timestamp|slack|file|info|step: + `webhook_timestamp` (chain-nolimit adds the filter)
chain|chain|slack|file|chain|hmac slack + timestamp + filter + rate_limit → respond
chain-nolimit|chain-nolimit|slack|file|info|the chain without rate_limit (diagnostic)
launch-bbolt|launch|slack|file bbolt|launch-embedded|chain + `valohai_launch` wait 0s, bbolt store
launch-pebble|launch|slack|file pebble|launch-embedded|chain + `valohai_launch` wait 0s, pebble store
launch-bbolt-dedupe|launch-dedupe|slack|file bbolt|info|the bbolt trigger + `webhook_dedupe` on a new delivery id per request
launch-pebble-dedupe|launch-dedupe|slack|file pebble|info|the pebble trigger + `webhook_dedupe` on a new delivery id per request
launch-redis|launch|slack|redis|launch-remote|chain + `valohai_launch` wait 0s, redis store
launch-sentinel|launch-sentinel|slack|sentinel|launch-remote|the same on Redis Sentinel, `min_replicas_ack 1`
launch-cluster|launch-cluster|slack|cluster|launch-remote|the same on a 3-master Redis Cluster
webhook|-|github|-|baseline|adnanh/webhook payload-hmac-sha256 → /bin/true
'
declare -A SC_FILE=() SC_SCHEME=() SC_STORE=() SC_STORE_EXTRA=() SC_KIND=() SC_LABEL=()
ALL_SCENARIOS=() DEFAULT_SCENARIOS=()
while IFS='|' read -r name file scheme store kind label; do
	[ -n "$name" ] || continue
	ALL_SCENARIOS+=("$name")
	# the chain's steps are diagnostics: run when named (-s), not by default
	[[ $name == step-* ]] || DEFAULT_SCENARIOS+=("$name")
	SC_FILE[$name]=$file SC_SCHEME[$name]=$scheme SC_KIND[$name]=$kind SC_LABEL[$name]=$label
	SC_STORE[$name]=${store%% *} SC_STORE_EXTRA[$name]=""
	[[ $store == *" "* ]] && SC_STORE_EXTRA[$name]=" ${store#* }"
done <<<"$SCENARIOS_TABLE"
SCENARIOS=$(IFS=,; echo "${DEFAULT_SCENARIOS[*]}")

usage() {
	sed -n '2,41p' "$0" | sed 's/^# \{0,1\}//'
	cat <<EOF

Options:
  -d, --duration SEC     measured seconds per trial (default $DURATION)
  -w, --warmup SEC       unmeasured warm-up seconds per trial (default $WARMUP)
  -r, --rounds N         interleaved rounds (default $ROUNDS; a goal needs >= 3)
  -c, --connections N    concurrent connections, 1 KiB bodies (default $CONNS)
      --connections-1m N concurrent connections, 1 MiB bodies (default $CONNS_1M)
  -s, --scenarios LIST   default $SCENARIOS
  -z, --sizes LIST       default $SIZES
  -o, --out DIR          where results go (default: a new /tmp folder)
      --pin MODE         both (default): every round pinned, then unpinned;
                         only: pinned only; none: unpinned only
      --no-pin           the same as --pin none
      --sim-delay DUR    how slowly the simulated Valohai answers (default $SIM_DELAY)
      --server-env VARS  environment for the Caddy servers under test only
                         (not adnanh/webhook, not the simulator), e.g.
                         "GOGC=200" or "GOMAXPROCS=4 GOGC=200": to measure
                         a tuning against the same baselines
      --no-mem           skip the memory-per-10k-queued-runs measurement
      --no-profile       skip the CPU profiles
      --no-gobench       skip go test -bench VerifyGitHub|RawHMAC
      --compare REV      also run every scenario but adnanh/webhook on the
                         build of commit REV (as "<scenario>@<rev>"), next
                         to the same scenario in every round, and table
                         this tree against it (same-round ratios; use an
                         even number of rounds)
      --keep             keep the work folder (binaries, logs, stores)
EOF
}

while [ $# -gt 0 ]; do
	case "$1" in
	-d | --duration) DURATION=$2; shift 2 ;;
	-w | --warmup) WARMUP=$2; shift 2 ;;
	-r | --rounds) ROUNDS=$2; shift 2 ;;
	-c | --connections) CONNS=$2; shift 2 ;;
	--connections-1m) CONNS_1M=$2; shift 2 ;;
	-s | --scenarios) SCENARIOS=$2; shift 2 ;;
	-z | --sizes) SIZES=$2; shift 2 ;;
	-o | --out) OUT=$2; shift 2 ;;
	--pin) PIN_MODE=$2; shift 2 ;;
	--no-pin) PIN_MODE=none; shift ;;
	--sim-delay) SIM_DELAY=$2; shift 2 ;;
	--server-env)
		read -r -a SERVER_ENV <<<"$2"
		for kv in "${SERVER_ENV[@]}"; do
			[[ $kv =~ ^[A-Z_][A-Z0-9_]*=[^[:space:]]*$ ]] || { echo "run.sh: --server-env wants NAME=VALUE words, got '$kv'" >&2; exit 2; }
		done
		shift 2 ;;
	--no-mem) MEM=0; shift ;;
	--no-profile) PROFILE=0; shift ;;
	--no-gobench) GOBENCH=0; shift ;;
	--keep) KEEP=1; shift ;;
	--compare) COMPARE=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
done

case "$PIN_MODE" in both | only | none) ;; *) echo "run.sh: --pin takes both, only or none" >&2; exit 2 ;; esac
for v in DURATION ROUNDS CONNS CONNS_1M; do
	if ! [[ ${!v} =~ ^[1-9][0-9]*$ ]]; then
		echo "run.sh: $v must be a positive integer" >&2
		exit 2
	fi
done
[[ $WARMUP =~ ^[0-9]+$ ]] || { echo "run.sh: WARMUP must be a whole number of seconds" >&2; exit 2; }
if [ "$ROUNDS" -gt 50 ] || [ "$DURATION" -gt 120 ]; then
	echo "run.sh: at most 50 rounds of 120 s: the run must stop by itself in reasonable time" >&2
	exit 2
fi

IFS=, read -r -a SCEN_LIST <<<"$SCENARIOS"
IFS=, read -r -a SIZE_LIST <<<"$SIZES"
for s in "${SCEN_LIST[@]}"; do
	[ -n "${SC_KIND[$s]:-}" ] || { echo "run.sh: unknown scenario $s (one of $(IFS=,; echo "${ALL_SCENARIOS[*]}"))" >&2; exit 2; }
done
for z in "${SIZE_LIST[@]}"; do
	case "$z" in 1k | 1m) ;; *) echo "run.sh: unknown size $z (1k or 1m)" >&2; exit 2 ;; esac
done
has_scen() { [[ ",$SCENARIOS," == *",$1,"* ]]; }

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# --compare: every scenario run by a Caddy also runs on the build of REV,
# named "<scenario>@<short rev>", right after it in SCEN_LIST (so in every
# round the two run back to back, in the other order the next round).
declare -A SC_BIN=()
if [ -n "$COMPARE" ]; then
	COMPARE_REV=$(git -C "$REPO" rev-parse --verify --quiet "$COMPARE^{commit}") ||
		{ echo "run.sh: --compare $COMPARE is not a commit of $REPO" >&2; exit 2; }
	COMPARE_SHORT=$(git -C "$REPO" rev-parse --short "$COMPARE_REV")
	with_compared=()
	for s in "${SCEN_LIST[@]}"; do
		with_compared+=("$s")
		[ "${SC_FILE[$s]}" = - ] && continue
		v="$s@$COMPARE_SHORT"
		with_compared+=("$v")
		SC_FILE[$v]=${SC_FILE[$s]} SC_SCHEME[$v]=${SC_SCHEME[$s]} SC_STORE[$v]=${SC_STORE[$s]}
		SC_STORE_EXTRA[$v]=${SC_STORE_EXTRA[$s]} SC_KIND[$v]=info SC_LABEL[$v]="${SC_LABEL[$s]} (build $COMPARE_SHORT)"
	done
	SCEN_LIST=("${with_compared[@]}")
	SCENARIOS=$(IFS=,; echo "${SCEN_LIST[*]}")
fi
WORK=$(mktemp -d /tmp/caddy-valohai-bench.XXXXXX)
OUT=${OUT:-$WORK/results}
mkdir -p "$OUT" "$OUT/logs" "$WORK/data"
OUT=$(cd "$OUT" && pwd)
LOG=$OUT/run.log
START_TS=$(date +%s)

log() { printf '[%4ds] %s\n' $(($(date +%s) - START_TS)) "$*" | tee -a "$LOG" >&2; }
die() { log "FAILED: $*"; exit 1; }

# --- processes we start, and only those, are stopped ----------------------
# stop_pid signals a pid only while it is still a child of this script, so a
# number reused by someone else's process is never signalled.
stop_pid() { # pid [grace tenths of a second before SIGKILL, default 30]
	local pid=$1 grace=${2:-30} i
	[ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 0
	[ "$(awk '{print $4}' "/proc/$pid/stat" 2>/dev/null)" = "$$" ] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for i in $(seq 1 "$grace"); do
		kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
SRV_PID="" SIM_PID="" REDIS_PID="" LOAD_PID=""
cleanup() {
	local pid
	for pid in "$LOAD_PID" "$SRV_PID" "$REDIS_PID" "$SIM_PID"; do stop_pid "$pid"; done
	stop_redis_topology 2>/dev/null || true
	[ -z "$COMPARE" ] || git -C "$REPO" worktree prune 2>/dev/null || true
	if [ "$KEEP" = 0 ]; then # keep only the results
		if [[ $OUT == "$WORK"/* ]]; then
			find "$WORK" -mindepth 1 -maxdepth 1 ! -path "$OUT" -exec rm -rf {} +
		else
			rm -rf "$WORK"
		fi
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools ------------------------------------------------------------------
need_pkgs=()
command -v wrk >/dev/null || need_pkgs+=(wrk)
command -v curl >/dev/null || need_pkgs+=(curl)
has_scen webhook && ! command -v webhook >/dev/null && need_pkgs+=(webhook)
for s in "${SCEN_LIST[@]}"; do
	if case "${SC_STORE[$s]}" in redis | sentinel | cluster) true ;; *) false ;; esac && ! command -v redis-server >/dev/null; then need_pkgs+=(redis-server); break; fi
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
	[ "$(id -u)" = 0 ] || die "missing ${need_pkgs[*]}: run as root or apt-get install -y ${need_pkgs[*]}"
	log "installing ${need_pkgs[*]} (Debian packages)"
	apt-get update -qq >>"$LOG" 2>&1
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >>"$LOG" 2>&1 || die "apt-get install ${need_pkgs[*]}"
fi
command -v go >/dev/null || die "go is not on PATH"

NPROC=$(nproc)
MODES=()
case "$PIN_MODE" in
both) MODES=(pinned unpinned) ;;
only) MODES=(pinned) ;;
none) MODES=(unpinned) ;;
esac
if [ "$NPROC" -lt 2 ] && [[ " ${MODES[*]} " == *" pinned "* ]]; then
	MODES=(unpinned)
	echo "run.sh: one core only: nothing to pin, running unpinned" >&2
fi
SERVER_CPUS=$((NPROC - 1)) # pinned: the last core for the server under test
CLIENT_CPUS=$(seq -s, 0 $((NPROC - 2)))
ALL_CPUS=0-$((NPROC - 1))
MODE=""
# set_mode pinned|unpinned: how the next servers, wrk and redis start, and
# where the running simulator may run.
set_mode() {
	MODE=$1
	if [ "$MODE" = pinned ]; then
		# taskset execs its command, so $! of a backgrounded "${ON_SERVER[@]}"
		# cmd is the server's own pid (its /proc/<pid>/stat is what we read).
		ON_SERVER=(taskset -c "$SERVER_CPUS")
		ON_CLIENT=(taskset -c "$CLIENT_CPUS")
		WRK_THREADS=1
	else
		ON_SERVER=()
		ON_CLIENT=()
		WRK_THREADS=$NPROC
	fi
	if [ -n "$SIM_PID" ]; then # all its threads, as the other processes get
		taskset -a -p -c "$([ "$MODE" = pinned ] && echo "$CLIENT_CPUS" || echo "$ALL_CPUS")" "$SIM_PID" >/dev/null
	fi
}
ON_SERVER=() ON_CLIENT=() WRK_THREADS=$NPROC
CLK_TCK=$(getconf CLK_TCK)

log "work folder $WORK, results in $OUT"
log "building ./cmd/caddy and bench/benchtool once"
(cd "$REPO" && go build -o "$WORK/caddy" ./cmd/caddy && go build -o "$WORK/benchtool" ./bench/benchtool) >>"$LOG" 2>&1 || die "build (see $LOG)"
CADDY=$WORK/caddy
BT=$WORK/benchtool
if [ -n "$COMPARE" ]; then
	log "building ./cmd/caddy of $COMPARE_SHORT (--compare) in a worktree"
	git -C "$REPO" worktree add --detach --quiet "$WORK/compare-src" "$COMPARE_REV" >>"$LOG" 2>&1 || die "git worktree add $COMPARE_SHORT (see $LOG)"
	if (cd "$WORK/compare-src" && go build -o "$WORK/caddy-$COMPARE_SHORT" ./cmd/caddy) >>"$LOG" 2>&1; then built=1; else built=0; fi
	git -C "$REPO" worktree remove --force "$WORK/compare-src" >>"$LOG" 2>&1 || true
	[ "$built" = 1 ] || die "build of $COMPARE_SHORT (see $LOG)"
	for s in "${SCEN_LIST[@]}"; do [[ $s == *"@$COMPARE_SHORT" ]] && SC_BIN[$s]=$WORK/caddy-$COMPARE_SHORT; done
fi

SKIPPED=()
skip() { SKIPPED+=("$1: $2"); log "skipping $1: $2"; }
# --- fixed inputs -------------------------------------------------------------
# Random per invocation, passed to the servers through the environment.
BENCH_SECRET="bench-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
BENCH_SIM_TOKEN="sim-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
export BENCH_SECRET BENCH_SIM_TOKEN
export BENCH_PROJECT=0190a8e3-5b8e-7a4c-9d1f-3c2b1a0e9f7d
export BENCH_REPO=$REPO
export XDG_DATA_HOME=$WORK/xdg/data XDG_CONFIG_HOME=$WORK/xdg/config
read -r BENCH_PORT BENCH_ADMIN_PORT BENCH_SIM_PORT REDIS_PORT <<<"$("$BT" ports -n 4 | tr '\n' ' ')"
export BENCH_PORT BENCH_ADMIN_PORT BENCH_SIM_PORT
"$BT" body -size 1024 -o "$WORK/body-1k.json"
"$BT" body -size 1048576 -o "$WORK/body-1m.json"

# store_env scenario: the valohai app's store for the scenario's Caddyfile
# (BENCH_STORE_KIND / BENCH_STORE_ARG), in its BENCH_DATA folder.
store_env() {
	local extra=${SC_STORE_EXTRA[$1]}
	case "${SC_STORE[$1]}" in
	redis) export BENCH_STORE_KIND=redis BENCH_STORE_ARG="redis://127.0.0.1:$REDIS_PORT/0$extra" ;;
	-) export BENCH_STORE_KIND=file BENCH_STORE_ARG=$BENCH_DATA/valohai ;; # unused
	*) export BENCH_STORE_KIND=${SC_STORE[$1]} BENCH_STORE_ARG="$BENCH_DATA/valohai$extra" ;;
	esac
}
# A store kind that needs a server of its own defines start_store_<kind>
# and stop_store_<kind> (redis below); start_server and stop_server call
# them around every trial of a scenario on that store.
store_hook() { # start|stop scenario
	local fn="$1_store_${SC_STORE[$2]}"
	if declare -F "$fn" >/dev/null; then "$fn"; fi
}

# A scenario runs only when this build can load its Caddyfile (a directive
# or a store it lacks makes `caddy adapt` fail): otherwise it is reported
# as skipped, with Caddy's reason.
# The HA scenarios' addresses exist only once their trial starts them:
# placeholders that `caddy adapt` accepts stand in until then.
export BENCH_REDIS_SENTINELS=${BENCH_REDIS_SENTINELS:-127.0.0.1:1} BENCH_REDIS_MASTER=${BENCH_REDIS_MASTER:-bench}
export BENCH_REDIS_CLUSTER=${BENCH_REDIS_CLUSTER:-127.0.0.1:1}
ACTIVE=()
printf '# name\tkind\tlabel (written by bench/run.sh for benchtool report)\n' >"$OUT/scenarios.tsv"
for s in "${SCEN_LIST[@]}"; do
	printf '%s\t%s\t%s\n' "$s" "${SC_KIND[$s]}" "${SC_LABEL[$s]}" >>"$OUT/scenarios.tsv"
	if [ "${SC_FILE[$s]}" != - ]; then
		export BENCH_DATA=$WORK/data/adapt-$s
		store_env "$s"
		if ! why=$("${SC_BIN[$s]:-$CADDY}" adapt --adapter caddyfile --config "$REPO/bench/caddyfiles/${SC_FILE[$s]}.caddyfile" 2>&1 >/dev/null); then
			why=$(grep -m1 -i 'error' <<<"$why" || true)
			skip "$s" "this build cannot load bench/caddyfiles/${SC_FILE[$s]}.caddyfile: $(sed -n 's/.*"msg":"\([^"]*\)".*/\1/p' <<<"$why" | grep . || head -c 300 <<<"$why")"
			continue
		fi
	fi
	ACTIVE+=("$s")
done

# listens pid port: pid holds a socket listening on TCP port, read from
# /proc (the kernel's sockets, then pid's descriptors). A connection is no
# proof: every server of a run takes the same port in turn, and right
# after adnanh/webhook stopped a connection was taken by something else
# still holding the port; the probe then met a refused or reset
# connection and the scenario was dropped (bench/README.md, Method:
# "Ready means listening").
listens() {
	local pid=$1 hex sock
	hex=$(printf ':%04X' "$2")
	for sock in $(awk -v p="$hex" '$4 == "0A" && substr($2, length($2) - 4) == p {print $10}' /proc/net/tcp /proc/net/tcp6 2>/dev/null); do
		find "/proc/$pid/fd" -lname "socket:\[$sock\]" 2>/dev/null | grep -q . && return 0
	done
	return 1
}
# port_held port: the sockets still bound to TCP port on this side, other
# than TIME_WAIT (which a new listener may reuse): "state/owner" words, the
# state as the kernel's hex code (0A listening) and the owner's pid:command
# or "-" when no process holds it.
port_held() {
	local hex st sock owner
	hex=$(printf ':%04X' "$1")
	awk -v p="$hex" '$4 != "06" && substr($2, length($2) - 4) == p {print $4, $10}' /proc/net/tcp /proc/net/tcp6 2>/dev/null |
		while read -r st sock; do
			owner=$(find /proc/[0-9]*/fd -lname "socket:\[$sock\]" 2>/dev/null | head -1 | cut -d/ -f3)
			[ -n "$owner" ] && owner="$owner:$(cat "/proc/$owner/comm" 2>/dev/null)"
			echo "$st/${owner:--}"
		done
}
# free_port port name: waits up to 10 s for the port to be released by the
# server of the previous trial. In a run of 2026-12-07 adnanh/webhook could
# not listen on the port right after it had stopped there ("address already
# in use"): the log then names what still held it.
free_port() {
	local port=$1 name=$2 held first="" i
	for i in $(seq 1 100); do
		held=$(port_held "$port" | tr '\n' ' ')
		[[ " $held" == *" 0A/"* ]] || break
		[ -n "$first" ] || first=$held
		sleep 0.1
	done
	[ -z "$first" ] || log "$name: port $port was still held before its start by: ${first}(state/owner); after $((i - 1)) tenths of a second: ${held:-free}"
}
wait_port() { # port pid name: pid listens on the port within 20 s
	local port=$1 pid=$2 name=$3 i
	for i in $(seq 1 200); do
		kill -0 "$pid" 2>/dev/null || die "$name exited at start (see $OUT/logs)"
		listens "$pid" "$port" && return 0
		sleep 0.1
	done
	die "$name did not listen on $port within 20 s"
}

# cpu_ticks pid: user+system ticks of the process and of its reaped
# children (adnanh/webhook's /bin/true runs are its work too).
cpu_ticks() { awk '{print $14+$15+$16+$17}' "/proc/$1/stat"; }
status_kb() { awk -v k="$2:" '$1==k {print $2}' "/proc/$1/status"; }

start_simulator() {
	BENCH_DATA=$WORK/data "${ON_CLIENT[@]}" "$CADDY" run --adapter caddyfile \
		--config "$REPO/bench/caddyfiles/simulator.caddyfile" >"$OUT/logs/simulator.log" 2>&1 &
	SIM_PID=$!
	wait_port "$BENCH_SIM_PORT" "$SIM_PID" simulator
	sim_delay "$SIM_DELAY"
}
sim_delay() {
	curl -fsS -m 5 -X POST -H 'Content-Type: application/json' -d "{\"delay\":\"$1\"}" \
		"http://127.0.0.1:$BENCH_SIM_PORT/__simulator/delay" >/dev/null || die "could not slow the simulator down"
}

start_redis() { # a fresh, durable (AOF, fsync every second) redis-server
	rm -rf "$WORK/redis" && mkdir -p "$WORK/redis"
	"${ON_CLIENT[@]}" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$WORK/redis" \
		--save '' --appendonly yes --appendfsync everysec --protected-mode yes \
		>"$OUT/logs/redis.log" 2>&1 &
	REDIS_PID=$!
	wait_port "$REDIS_PORT" "$REDIS_PID" redis-server
}
stop_redis() { stop_pid "$REDIS_PID"; REDIS_PID=""; rm -rf "$WORK/redis"; }
start_store_redis() { start_redis; }
stop_store_redis() { stop_redis; }

# start_redis_ha sentinel|cluster: a fresh Sentinel deployment or Cluster
# from scripts/redis-topology.sh (the test command's), durable like
# start_redis, on the client CPUs; stop_redis_ha ends it.
start_redis_ha() {
	redis_topology_dir="$WORK/redis-ha"
	rm -rf "$redis_topology_dir" && mkdir -p "$redis_topology_dir"
	redis_topology_args=(--save '' --appendonly yes --appendfsync everysec)
	redis_topology_exec=(${ON_CLIENT[@]+"${ON_CLIENT[@]}"})
	# Never the ports this script already handed out: the server under
	# test binds them only after the topology is up.
	redis_topology_ports+=("$BENCH_PORT" "$BENCH_ADMIN_PORT" "$BENCH_SIM_PORT" "$REDIS_PORT")
	if [ "$1" = sentinel ]; then
		start_redis_sentinel >>"$LOG" 2>&1 || die "starting the Sentinel deployment (see $LOG)"
		export BENCH_REDIS_SENTINELS=${redis_sentinel_addrs//,/ } BENCH_REDIS_MASTER=$redis_sentinel_master
	else
		start_redis_cluster >>"$LOG" 2>&1 || die "starting the Cluster (see $LOG)"
		export BENCH_REDIS_CLUSTER=${redis_cluster_addrs//,/ }
	fi
}
stop_redis_ha() { stop_redis_topology; }
start_store_sentinel() { start_redis_ha sentinel; }
stop_store_sentinel() { stop_redis_ha; }
start_store_cluster() { start_redis_ha cluster; }
stop_store_cluster() { stop_redis_ha; }
# shellcheck source=../scripts/redis-topology.sh
. "$REPO/scripts/redis-topology.sh"

# start_server scenario name: starts the server of a scenario on BENCH_PORT
# with a fresh data folder (and a fresh redis-server for a redis store);
# sets SRV_PID, URL and SCHEME.
start_server() {
	local scen=$1 name=$2
	export BENCH_DATA=$WORK/data/$name
	rm -rf "$BENCH_DATA" && mkdir -p "$BENCH_DATA"
	URL=http://127.0.0.1:$BENCH_PORT/hook
	SCHEME=${SC_SCHEME[$scen]}
	DELIVERY=""
	[[ ${scen%@*} == *-dedupe ]] && DELIVERY=1 # "@rev": the same on another build (--compare)
	store_env "$scen"
	store_hook start "$scen"
	free_port "$BENCH_PORT" "$name"
	if [ "${SC_FILE[$scen]}" = - ]; then # adnanh/webhook
		URL=http://127.0.0.1:$BENCH_PORT/hooks/bench
		"${ON_SERVER[@]}" webhook -hooks "$REPO/bench/webhook-hooks.json" -template \
			-ip 127.0.0.1 -port "$BENCH_PORT" >"$OUT/logs/$name.log" 2>&1 &
		SRV_PID=$!
		wait_port "$BENCH_PORT" "$SRV_PID" "$name"
		return
	fi
	env ${SERVER_ENV[@]+"${SERVER_ENV[@]}"} "${ON_SERVER[@]}" "${SC_BIN[$scen]:-$CADDY}" run --adapter caddyfile --config "$REPO/bench/caddyfiles/${SC_FILE[$scen]}.caddyfile" \
		>"$OUT/logs/$name.log" 2>&1 &
	SRV_PID=$!
	wait_port "$BENCH_PORT" "$SRV_PID" "$name"
}
stop_server() {
	# Measurements are taken: no need to wait for a graceful drain of workers
	# stuck on the slowed-down simulator (the stores are thrown away).
	stop_pid "$SRV_PID" 5
	SRV_PID=""
	store_hook stop "$1"
	rm -rf "$BENCH_DATA"
}

# sign size: signs the body now (the timestamp is fresh for this trial,
# which lasts far less than the 5 min tolerance) into $WORK/headers.
sign() {
	"$BT" sign -scheme "$SCHEME" -body "$WORK/body-$1.json" >"$WORK/headers"
}

# load seconds size: wrk against URL; prints the WRKJSON line. 1 MiB trials
# run twice as long with fewer connections (see README).
load() {
	local out secs=$1 conns=$CONNS
	if [ "$2" = 1m ]; then secs=$((secs * 2)) conns=$CONNS_1M; fi
	out=$(BENCH_BODY=$WORK/body-$2.json BENCH_HEADERS=$WORK/headers \
		BENCH_DELIVERY=$DELIVERY BENCH_NONCE=$RANDOM$RANDOM$RANDOM \
		"${ON_CLIENT[@]}" timeout $((secs + 60)) wrk -t"$WRK_THREADS" -c"$conns" -d"$secs"s --timeout 10s -s "$REPO/bench/wrk/post.lua" "$URL" 2>&1) ||
		{ echo "$out" >>"$LOG"; die "wrk failed against $URL"; }
	echo "$out" | sed -n 's/^WRKJSON //p'
}
# probe size: one request as the trial sends it; fails unless 2xx.
probe() {
	local args=() line code
	while IFS= read -r line; do [ -n "$line" ] && args+=(-H "$line"); done <"$WORK/headers"
	code=$(curl -sS -m 60 -o "$WORK/probe-body" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
		"${args[@]}" --data-binary "@$WORK/body-$1.json" "$URL" 2>"$WORK/probe-err") ||
		{ echo "curl failed: $(head -c 200 "$WORK/probe-err")"; return 1; }
	echo "$code $(head -c 200 "$WORK/probe-body")"
	[[ $code == 2?? ]]
}
jget() { sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" <<<"$1"; }

TRIALS=$OUT/trials.tsv
printf 'round\tpin\tsize\tscenario\tok\tnon2xx\tsockerr\tdur_us\tp50_us\tp99_us\tcpu_s\thwm_kb\taux_cpu_s\tcommits\tcommit_writes\tcommit_s\n' >"$TRIALS"
declare -A BROKEN=()

# commit_counters prints the gateway's group commits so far, the writes
# they carried and their seconds until durable (README.md, "Operations":
# caddy_valohai_store_commit_*), or "0 0 0" when it has none to report (no
# embedded store, or not a Caddy gateway).
commit_counters() {
	curl -fsS -m 5 "http://127.0.0.1:$BENCH_ADMIN_PORT/metrics" 2>/dev/null | awk '
		$1 == "caddy_valohai_store_commit_writes_count" { n = $2 }
		$1 == "caddy_valohai_store_commit_writes_sum" { w = $2 }
		$1 == "caddy_valohai_store_commit_duration_seconds_sum" { d = $2 }
		END { printf "%d %d %.6f\n", n, w, d }'
}

run_trial() { # round size scenario (in the current MODE)
	local r=$1 z=$2 s=$3 name="$3-$2-$MODE-r$1" w j c0 c1 a0=0 a1=0 k0=(0 0 0) k1=(0 0 0)
	start_server "$s" "$name"
	sign "$z"
	# One request first: a configuration that rejects valid requests is
	# reported with its answer, not measured.
	if ! probe "$z" >"$WORK/probe.txt"; then
		BROKEN[$s]="a valid request was answered $(head -c 300 "$WORK/probe.txt" | tr '\n' ' '); see logs/$name.log"
		log "$name: ${BROKEN[$s]}"
		stop_server "$s"
		return
	fi
	if [ "$WARMUP" -gt 0 ]; then # unmeasured: fills the pipeline, sizes the heap
		w=$(load "$WARMUP" "$z")
		if [ "$(jget "$w" non2xx)" != 0 ]; then
			BROKEN[$s]="warm-up answered non-2xx: $w; see logs/$name.log"
			log "$name: ${BROKEN[$s]}"
			stop_server "$s"
			return
		fi
	fi
	# The commit counters are read outside the CPU window: the scrape is
	# not the scenario's work.
	if [ "${SC_STORE[$s]}" = file ]; then read -r -a k0 <<<"$(commit_counters)"; fi
	c0=$(cpu_ticks "$SRV_PID")
	[ -n "$REDIS_PID" ] && a0=$(cpu_ticks "$REDIS_PID")
	j=$(load "$DURATION" "$z")
	c1=$(cpu_ticks "$SRV_PID")
	[ -n "$REDIS_PID" ] && a1=$(cpu_ticks "$REDIS_PID")
	if [ "${SC_STORE[$s]}" = file ]; then read -r -a k1 <<<"$(commit_counters)"; fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$MODE" "$z" "$s" \
		"$(jget "$j" ok)" "$(jget "$j" non2xx)" \
		$(($(jget "$j" err_connect) + $(jget "$j" err_read) + $(jget "$j" err_write) + $(jget "$j" err_timeout))) \
		"$(jget "$j" duration_us)" "$(jget "$j" lat_p50_us)" "$(jget "$j" lat_p99_us)" \
		"$(awk -v a="$c0" -v b="$c1" -v t="$CLK_TCK" 'BEGIN{printf "%.3f", (b-a)/t}')" \
		"$(status_kb "$SRV_PID" VmHWM)" \
		"$(awk -v a="$a0" -v b="$a1" -v t="$CLK_TCK" 'BEGIN{printf "%.3f", (b-a)/t}')" \
		$((k1[0] - k0[0])) $((k1[1] - k0[1])) "$(awk -v a="${k0[2]}" -v b="${k1[2]}" 'BEGIN{printf "%.6f", b-a}')" >>"$TRIALS"
	log "$name: $(awk -v n="$(jget "$j" ok)" -v d="$(jget "$j" duration_us)" 'BEGIN{printf "%.0f", n/(d/1e6)}') req/s 2xx, non-2xx $(jget "$j" non2xx), server busy $(awk -v a="$c0" -v b="$c1" -v t="$CLK_TCK" -v d="$(jget "$j" duration_us)" 'BEGIN{printf "%.0f", 100*(b-a)/t/(d/1e6)}')% of a core"
	stop_server "$s"
}

need_sim=0
for s in "${ACTIVE[@]}"; do [[ $s == launch-* ]] && need_sim=1; done
[ "$need_sim" = 1 ] && start_simulator

log "machine: $NPROC cores ($(lscpu | sed -n 's/^Model name: *//p')), kernel $(uname -r); modes: ${MODES[*]}"
log "plan: ${#ACTIVE[@]} scenarios x ${#SIZE_LIST[@]} sizes x ${#MODES[@]} pin modes x $ROUNDS rounds of ${WARMUP}s+${DURATION}s, $CONNS connections"
for r in $(seq 1 "$ROUNDS"); do
	order=("${ACTIVE[@]}") modes=("${MODES[@]}")
	if [ $((r % 2)) = 0 ]; then # every other round backwards, so no scenario (or mode) always follows the same one
		order=() modes=()
		for ((i = ${#ACTIVE[@]} - 1; i >= 0; i--)); do order+=("${ACTIVE[$i]}"); done
		for ((i = ${#MODES[@]} - 1; i >= 0; i--)); do modes+=("${MODES[$i]}"); done
	fi
	for mode in "${modes[@]}"; do
		set_mode "$mode"
		for z in "${SIZE_LIST[@]}"; do
			for s in "${order[@]}"; do
				[ -n "${BROKEN[$s]:-}" ] && continue
				[ "${s%@*}" = bare-respond ] && [ "$z" = 1m ] && continue
				run_trial "$r" "$z" "$s"
			done
		done
	done
done
for s in "${!BROKEN[@]}"; do skip "$s" "${BROKEN[$s]}"; done

# Profiles, memory and the micro-benchmark run in the first mode (pinned
# when it ran): they describe the code, not the placement.
set_mode "${MODES[0]}"

# --- CPU profiles of the scenarios with goals -------------------------------
PROFILES=()
if [ "$PROFILE" = 1 ]; then
	mkdir -p "$OUT/profiles"
	# bare-respond and hmac: the baselines the chain's profile is read against
	plist=(bare-respond:1k hmac:1k chain:1k chain-nolimit:1k)
	first_embedded=""
	for s in "${ACTIVE[@]}"; do
		[[ $s == *@* ]] && continue # profiles and memory describe this tree only
		[[ $s == launch-* ]] && plist+=("$s:1k")
		[ -z "$first_embedded" ] && [ "${SC_KIND[$s]}" = launch-embedded ] && first_embedded=$s
	done
	[ -n "$first_embedded" ] && plist+=("$first_embedded:1m")
	for pz in "${plist[@]}"; do
		s=${pz%%:*} z=${pz##*:}
		[[ " ${ACTIVE[*]} " == *" $s "* ]] && [ -z "${BROKEN[$s]:-}" ] || continue
		[[ ",$SIZES," == *",$z,"* ]] || continue
		name="profile-$s-$z-$MODE"
		start_server "$s" "$name"
		sign "$z"
		load $((PROFILE_SECONDS + 3)) "$z" >"$OUT/profiles/$name.wrk" &
		LOAD_PID=$!
		sleep 1
		curl -fsS -m $((PROFILE_SECONDS + 20)) -o "$OUT/profiles/$name.pprof" \
			"http://127.0.0.1:$BENCH_ADMIN_PORT/debug/pprof/profile?seconds=$PROFILE_SECONDS" ||
			log "$name: no profile from the admin API"
		# what the same load allocates: a delta profile over one more second
		curl -fsS -m 20 -o "$OUT/profiles/$name.allocs.pprof" \
			"http://127.0.0.1:$BENCH_ADMIN_PORT/debug/pprof/allocs?seconds=1" ||
			log "$name: no allocation profile from the admin API"
		wait "$LOAD_PID" || true
		LOAD_PID=""
		stop_server "$s"
		if [ -s "$OUT/profiles/$name.pprof" ]; then
			go tool pprof -top -nodecount=25 "$CADDY" "$OUT/profiles/$name.pprof" >"$OUT/profiles/$name.top.txt" 2>/dev/null || true
			go tool pprof -top -cum -nodecount=40 "$CADDY" "$OUT/profiles/$name.pprof" >"$OUT/profiles/$name.cum.txt" 2>/dev/null || true
			PROFILES+=("$name")
			log "$name: profile written"
		fi
	done
fi

# --- memory per 10,000 queued runs ------------------------------------------
MEMTSV=""
HEAPS=()
if [ "$MEM" = 1 ] && [ -n "$SIM_PID" ]; then
	mkdir -p "$OUT/profiles"
	MEMTSV=$OUT/mem.tsv
	printf 'store\tsent\tqueued\trss_before_kb\trss_after_kb\tanon_before_kb\tanon_after_kb\theap_before\theap_after\tstore_before\tstore_after\taux_rss_before_kb\taux_rss_after_kb\tmap_before_kb\tmap_after_kb\n' >"$MEMTSV"
	sim_delay 1h # Valohai stalls: the workers hold 4 runs, the rest stays queued
	heap_alloc() { curl -fsS -m 30 "http://127.0.0.1:$BENCH_ADMIN_PORT/debug/pprof/heap?gc=1&debug=1" | sed -n 's/^# HeapAlloc = \([0-9]*\).*/\1/p'; }
	# The resident pages of the gateway's memory maps of its store's files
	# (bbolt maps its file read-only): page cache the map has read since
	# the store last mapped the file, counted in RSS but not the gateway's
	# own memory (bench/README.md, "Latest results", bbolt's RSS).
	store_map_kb() {
		# a mapping's header line starts with its address range; one without a
		# path (anonymous) ends the previous mapping too
		awk -v d="$BENCH_DATA/valohai/" '$1 ~ /^[0-9a-f]+-[0-9a-f]+$/ {m = NF >= 6 && index($6, d) == 1} m && $1 == "Rss:" {s += $2} END {print s + 0}' "/proc/$1/smaps"
	}
	store_bytes() {
		if [ "${SC_STORE[$1]}" = redis ]; then
			redis-cli -p "$REDIS_PORT" info memory | tr -d '\r' | sed -n 's/^used_memory:\([0-9]*\)/\1/p'
		else stat -c %s "$BENCH_DATA/valohai/valohai.db" 2>/dev/null || du -sb "$BENCH_DATA/valohai" | cut -f1; fi
	}
	for s in "${ACTIVE[@]}"; do
		# memory per queued run: the embedded stores and the single redis
		case $s in launch-sentinel | launch-cluster | *-dedupe | *@*) continue ;; esac
		[[ $s == launch-* ]] && [ -z "${BROKEN[$s]:-}" ] || continue
		name="mem-$s"
		start_server "$s" "$name"
		sign 1k
		"$BT" send -url "$URL" -n 500 -c 16 -body "$WORK/body-1k.json" -headers "$WORK/headers" >>"$LOG" || die "$name: warm-up"
		sleep 1
		hb=$(heap_alloc)
		rb=$(status_kb "$SRV_PID" VmRSS) ab=$(status_kb "$SRV_PID" RssAnon) sb=$(store_bytes "$s") mb=$(store_map_kb "$SRV_PID")
		xb=0 xa=0
		[ -n "$REDIS_PID" ] && xb=$(status_kb "$REDIS_PID" VmRSS)
		"$BT" send -url "$URL" -n "$MEM_RUNS" -c 16 -body "$WORK/body-1k.json" -headers "$WORK/headers" >>"$LOG" || die "$name: sending $MEM_RUNS runs"
		sleep 2
		ra=$(status_kb "$SRV_PID" VmRSS) aa=$(status_kb "$SRV_PID" RssAnon) sa=$(store_bytes "$s") ma=$(store_map_kb "$SRV_PID")
		[ -n "$REDIS_PID" ] && xa=$(status_kb "$REDIS_PID" VmRSS)
		ha=$(heap_alloc)
		curl -fsS -m 30 -o "$OUT/profiles/$name.heap.pprof" "http://127.0.0.1:$BENCH_ADMIN_PORT/debug/pprof/heap?gc=1" &&
			go tool pprof -top -sample_index=inuse_space -nodecount=20 "$CADDY" "$OUT/profiles/$name.heap.pprof" \
				>"$OUT/profiles/$name.heap.txt" 2>/dev/null && HEAPS+=("$name") || true
		q=$(curl -fsS -m 10 "http://127.0.0.1:$BENCH_ADMIN_PORT/metrics" | sed -n 's/^caddy_valohai_queue_depth \([0-9.e+]*\)/\1/p')
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "${s#launch-}" "$MEM_RUNS" "${q:-0}" \
			"$rb" "$ra" "$ab" "$aa" "${hb:-0}" "${ha:-0}" "${sb:-0}" "${sa:-0}" "$xb" "$xa" "$mb" "$ma" >>"$MEMTSV"
		log "$name: queue depth ${q:-?}, RSS $rb -> $ra KiB"
		stop_server "$s"
	done
	sim_delay "$SIM_DELAY"
fi

# --- hot-function benchmark: webhook_hmac's verify vs raw crypto/hmac -------
GOBENCH_DIR=""
if [ "$GOBENCH" = 1 ]; then
	GOBENCH_DIR=$OUT/gobench
	mkdir -p "$GOBENCH_DIR"
	log "go test -bench 'VerifyGitHub|RawHMAC' ./validators, $GOBENCH_RUNS invocations"
	(cd "$REPO" && go test -c -o "$WORK/validators.test" ./validators) >>"$LOG" 2>&1 || die "building the validators test binary"
	for i in $(seq 1 "$GOBENCH_RUNS"); do
		(cd "$REPO/validators" && "${ON_SERVER[@]}" "$WORK/validators.test" -test.run='^$' \
			-test.bench='VerifyGitHub|RawHMAC' -test.benchmem -test.benchtime=300ms) >"$GOBENCH_DIR/run-$i.txt" 2>&1 ||
			die "go bench (see $GOBENCH_DIR/run-$i.txt)"
	done
fi

# --- report -------------------------------------------------------------------
SUMMARY=$OUT/summary.md
{
	echo "## Results of bench/run.sh, $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	echo "Machine: $NPROC cores, $(lscpu | sed -n 's/^Model name: *//p'), Linux $(uname -r), $(free -g | awk '/^Mem:/{print $2}') GiB;" \
		"Go $(go env GOVERSION), wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}'), $(command -v webhook >/dev/null && webhook -version 2>&1 | head -1 || echo 'webhook: not installed')."
	echo "Options: $ROUNDS interleaved rounds, each in the pin modes ${MODES[*]}; per trial ${DURATION}s measured after ${WARMUP}s warm-up with $CONNS connections for 1 KiB," \
		"$((DURATION * 2))s after $((WARMUP * 2))s with $CONNS_1M connections for 1 MiB;" \
		"pinned: server on CPU $SERVER_CPUS (GOMAXPROCS 1), wrk (1 thread), simulator and redis on CPU $CLIENT_CPUS;" \
		"unpinned: no affinity, wrk with $NPROC threads;" \
		"simulator delay $SIM_DELAY${SERVER_ENV[0]+; Caddy servers run with ${SERVER_ENV[*]}}${COMPARE:+; every scenario also on the build of $COMPARE_SHORT (--compare $COMPARE)}. Figures are medians over rounds; ratios are medians of same-round, same-mode ratios." \
		"Profiles, memory and the micro-benchmark: ${MODES[0]}."
	"$BT" report -trials "$TRIALS" -scenarios "$OUT/scenarios.tsv" -conns "$CONNS" ${MEMTSV:+-mem "$MEMTSV"} ${GOBENCH_DIR:+-gobench "$GOBENCH_DIR"}
	if [ ${#SKIPPED[@]} -gt 0 ]; then
		echo
		echo "### Skipped"
		echo
		for x in "${SKIPPED[@]}"; do echo "- $x"; done
	fi
	for p in "${PROFILES[@]}"; do
		echo
		echo "### CPU profile: $p (top 15 by own time)"
		echo
		echo '```'
		sed -n '1,/flat%/p' "$OUT/profiles/$p.top.txt" | grep -E '^(Showing|Duration|Type)' || true
		awk '/flat%/{f=1} f' "$OUT/profiles/$p.top.txt" | head -16
		echo '```'
	done
	for p in "${HEAPS[@]}"; do
		echo
		echo "### Heap in use after the runs were queued: $p (top 12, after a forced GC)"
		echo
		echo '```'
		awk '/flat%/{f=1} f' "$OUT/profiles/$p.heap.txt" | head -13
		echo '```'
	done
} >"$SUMMARY"
cat "$SUMMARY"
log "done in $(($(date +%s) - START_TS)) s; summary $SUMMARY"
