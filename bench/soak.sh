#!/usr/bin/env bash
# bench/soak.sh: a soak run of caddy-valohai. Builds ./cmd/caddy, starts the
# Valohai simulator and a gateway (embedded store, pebble by default, in a temp folder) as two Caddy
# processes on 127.0.0.1, and runs bench/soak against them: a sustained
# concurrent mix of valid, duplicate and hostile deliveries, every answer
# checked, the gateway's memory sampled, a Valohai outage injected halfway;
# then the queue drains and every acknowledged run must have been launched
# exactly once.
#
#   bench/soak.sh                 # 3 minutes, 16 workers, 200 requests/s
#   bench/soak.sh -d 10m -r 300   # longer, faster
#
# Exits non-zero on any mismatch, lost or duplicated launch, or growing
# memory. See bench/README.md, "Soak run", for the mix and the last results.
set -euo pipefail

DURATION=3m
WORKERS=16
RATE=200
OUTAGE=200
FLAT=10
DRAIN=3m
OUT=""
KEEP=0
ENGINE=pebble       # the embedded store's engine: pebble (the default) or bbolt

usage() {
	sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
	cat <<EOF

Options:
  -d, --duration DUR   load duration, a Go duration up to 2h (default $DURATION)
  -w, --workers N      concurrent senders (default $WORKERS)
  -r, --rate N         requests per second over all workers, 0 = unpaced (default $RATE)
      --outage N       Valohai calls answered 503 halfway through, 0 = none (default $OUTAGE)
      --drain DUR      how long the queue may take to drain after the load (default $DRAIN)
      --flat PCT       max growth of the gateway's RSS without the store's memory map
                       over the last half of the load, in percent (default $FLAT)
  -o, --out DIR        where the report goes (default: a new /tmp folder)
      --engine E       the gateway's store engine, pebble (default) or bbolt
      --keep           keep the work folder (binaries, logs, store)
EOF
}

while [ $# -gt 0 ]; do
	case "$1" in
	-d | --duration) DURATION=$2; shift 2 ;;
	-w | --workers) WORKERS=$2; shift 2 ;;
	-r | --rate) RATE=$2; shift 2 ;;
	--outage) OUTAGE=$2; shift 2 ;;
	--flat) FLAT=$2; shift 2 ;;
	--drain) DRAIN=$2; shift 2 ;;
	-o | --out) OUT=$2; shift 2 ;;
	--keep) KEEP=1; shift ;;
	--engine) ENGINE=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "soak.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
done
# The soak program validates the values again (duration at most 2h, ...).
for v in DURATION DRAIN; do
	[[ ${!v} =~ ^[0-9]+(ms|s|m|h)([0-9]+(ms|s|m))*$ ]] || { echo "soak.sh: $v takes a Go duration such as 3m or 90s" >&2; exit 2; }
done
for v in WORKERS RATE OUTAGE FLAT; do
	[[ ${!v} =~ ^[0-9]+$ ]] || { echo "soak.sh: $v must be a whole number" >&2; exit 2; }
done

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d /tmp/caddy-valohai-soak.XXXXXX)
OUT=${OUT:-$WORK/results}
mkdir -p "$OUT" "$WORK/data"
OUT=$(cd "$OUT" && pwd)
LOG=$OUT/soak.log
START_TS=$(date +%s)

log() { printf '[%4ds] %s\n' $(($(date +%s) - START_TS)) "$*" | tee -a "$LOG" >&2; }
die() { log "FAILED: $*"; exit 1; }

# stop_pid signals a pid only while it is still a child of this script, so a
# number reused by someone else's process is never signalled.
stop_pid() { # pid [grace tenths of a second before SIGKILL, default 100]
	local pid=$1 grace=${2:-100} i
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
GW_PID="" SIM_PID=""
cleanup() {
	stop_pid "$GW_PID"
	stop_pid "$SIM_PID"
	if [ "$KEEP" = 0 ]; then
		rm -rf "$WORK/data" "$WORK/caddy" "$WORK/soak" "$WORK/xdg"
		rmdir "$WORK" 2>/dev/null || true # kept when the results are inside it
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() { # port pid name: the port accepts connections within 20 s
	local port=$1 pid=$2 name=$3 i
	for i in $(seq 1 200); do
		kill -0 "$pid" 2>/dev/null || die "$name exited (see $OUT/$name.log)"
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	die "$name did not listen on $port within 20 s"
}

log "building ./cmd/caddy and bench/soak into $WORK"
(cd "$REPO" && go build -o "$WORK/caddy" ./cmd/caddy && go build -o "$WORK/soak" ./bench/soak) >>"$LOG" 2>&1 ||
	die "build (see $LOG)"

rand_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
export SOAK_GITHUB_SECRET="gh-$(rand_hex 16)"
export SOAK_SLACK_SECRET="sl-$(rand_hex 16)"
export SOAK_SIM_TOKEN="sim-$(rand_hex 8)"
export SOAK_PROJECT=0190a8e3-5b8e-7a4c-9d1f-3c2b1a0e9f7d
export SOAK_REPO=$REPO
export SOAK_DATA=$WORK/data
case $ENGINE in pebble | bbolt) ;; *) echo "soak.sh: --engine takes pebble or bbolt" >&2; exit 2 ;; esac
export SOAK_ENGINE=$ENGINE
# bbolt's file is memory-mapped: its pages are reported apart from the rest
# of the RSS. pebble's memory is the process's own (its memtable is bounded).
store_args=()
if [ "$ENGINE" = bbolt ]; then store_args=(-store "$SOAK_DATA/valohai/valohai.db"); fi
export XDG_DATA_HOME=$WORK/xdg/data XDG_CONFIG_HOME=$WORK/xdg/config
read -r SOAK_PORT SOAK_ADMIN_PORT SOAK_SIM_PORT <<<"$("$WORK/soak" ports -n 3 | tr '\n' ' ')"
export SOAK_PORT SOAK_ADMIN_PORT SOAK_SIM_PORT

"$WORK/caddy" run --adapter caddyfile --config "$REPO/bench/soak/simulator.caddyfile" >"$OUT/simulator.log" 2>&1 &
SIM_PID=$!
wait_port "$SOAK_SIM_PORT" "$SIM_PID" simulator
"$WORK/caddy" run --adapter caddyfile --config "$REPO/bench/soak/gateway.caddyfile" >"$OUT/gateway.log" 2>&1 &
GW_PID=$!
wait_port "$SOAK_PORT" "$GW_PID" gateway
log "simulator pid $SIM_PID on :$SOAK_SIM_PORT, gateway pid $GW_PID on :$SOAK_PORT (admin :$SOAK_ADMIN_PORT)"

{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "commit: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown) (working tree may differ)"
	echo "go: $(go version | awk '{print $3}')"
	echo "nproc: $(nproc)"
	echo "cpu: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
	echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/machine.txt" | tee -a "$LOG" >&2

log "soak: $DURATION, $WORKERS workers, $RATE requests/s, outage $OUTAGE calls"
rc=0
"$WORK/soak" run -gateway "http://127.0.0.1:$SOAK_PORT" -admin "http://127.0.0.1:$SOAK_ADMIN_PORT" \
	-sim "http://127.0.0.1:$SOAK_SIM_PORT" -pid "$GW_PID" ${store_args[@]+"${store_args[@]}"} -d "$DURATION" -workers "$WORKERS" \
	-rate "$RATE" -outage-count "$OUTAGE" -flat "$FLAT" -drain-timeout "$DRAIN" -json "$OUT/soak.json" -heap-dir "$OUT" |
	tee "$OUT/report.md" || rc=$? # pipefail: soak's exit status

# What the live heap gained between the middle of the load and the end of
# the drain, by allocation site: where to look if the RSS is not flat.
if [ -s "$OUT/heap-mid.pb.gz" ] && [ -s "$OUT/heap-end.pb.gz" ]; then
	if go tool pprof -top -sample_index=inuse_space -diff_base "$OUT/heap-mid.pb.gz" "$WORK/caddy" "$OUT/heap-end.pb.gz" \
		>"$OUT/heap-diff.txt" 2>&1; then
		log "live heap, middle of the load -> after the drain (top of $OUT/heap-diff.txt):"
		sed -n '1,16p' "$OUT/heap-diff.txt" | tee -a "$LOG" >&2
	else
		log "go tool pprof failed (see $OUT/heap-diff.txt)"
	fi
fi
store=$(du -sk "$SOAK_DATA/valohai" 2>/dev/null | awk '{print $1}')
log "$ENGINE store at the end: ${store:-?} KiB; load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -s "$OUT/gateway.log" ] && grep -q '"level":"error"' "$OUT/gateway.log"; then
	log "the gateway logged errors: $(grep -c '"level":"error"' "$OUT/gateway.log") lines (see $OUT/gateway.log)"
fi
if [ "$rc" = 0 ]; then
	log "PASS (report: $OUT/report.md, JSON: $OUT/soak.json)"
else
	log "FAIL (exit $rc; report: $OUT/report.md, logs: $OUT)"
fi
exit "$rc"
