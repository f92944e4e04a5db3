#!/usr/bin/env bash
# bench/fuzz.sh: runs every Go fuzz target of the repository, one after
# another, and reports executions, new interesting inputs and the outcome
# of each. Targets are found afresh on every run (every `func FuzzXxx(` in a
# *_test.go file), so a new target is covered without editing this script.
#
#   bench/fuzz.sh                  # 60 s per target
#   bench/fuzz.sh -t 30s           # shorter
#   bench/fuzz.sh -t 200000x       # a count per target instead of a time
#   bench/fuzz.sh -k 'HMAC|JWT'    # only targets whose name matches
#
# Each new interesting input (and a crasher) is minimized with at most 1000
# calls (-m; Go's default is 60 s). Minimizing shows as "execs: N (0/sec)"
# for as long as it lasts and its calls are not counted: with a time limit,
# targets with large seeds spent nearly all of a 30 s budget minimizing
# (FuzzConvertPipeline: 580 executions instead of 184,000).
#
# Outcomes: ok; crash (the target failed and go wrote a failing input to
# <package>/testdata/fuzz/<Target>/; the script exits 1 and lists the file:
# it is the reproducer, do not commit it without a fix); flaky-infra (the
# timed run ended with "context deadline exceeded" and no failing input:
# golang/go#75804, a race in Go 1.26's fuzzing coordinator at the end of
# -fuzztime, not a finding; reported, exit status unaffected); fail (build
# error, timeout, anything else; exit 1).
set -euo pipefail

FUZZTIME=60s
PARALLEL=1
MINIMIZE=1000x
MATCH=""
OUT=""

usage() {
	sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'
	cat <<EOF

Options:
  -t, --fuzztime T   per target: a duration (30s, 2m) or a count (100000x) (default $FUZZTIME)
  -p, --parallel N   fuzzing workers per target (default $PARALLEL: the machine is shared)
  -m, --minimize T   -fuzzminimizetime: a count (1000x) or a duration (10s) (default $MINIMIZE)
  -k, --match RE     only targets whose name matches the extended regex RE
  -o, --out DIR      where logs and the report go (default: a new /tmp folder)
EOF
}

while [ $# -gt 0 ]; do
	case "$1" in
	-t | --fuzztime) FUZZTIME=$2; shift 2 ;;
	-p | --parallel) PARALLEL=$2; shift 2 ;;
	-m | --minimize) MINIMIZE=$2; shift 2 ;;
	-k | --match) MATCH=$2; shift 2 ;;
	-o | --out) OUT=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "fuzz.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
done

# Each target gets its fuzz time plus 10 minutes for the instrumented build
# and the baseline coverage; a count-based run gets at most 30 minutes.
if [[ $FUZZTIME =~ ^([0-9]+)(s|m|h)$ ]]; then
	n=${BASH_REMATCH[1]}
	case ${BASH_REMATCH[2]} in s) secs=$n ;; m) secs=$((n * 60)) ;; h) secs=$((n * 3600)) ;; esac
	[ "$secs" -ge 1 ] && [ "$secs" -le 3600 ] || { echo "fuzz.sh: -t must be 1s-1h" >&2; exit 2; }
	LIMIT=$((secs + 600))
elif [[ $FUZZTIME =~ ^[1-9][0-9]*x$ ]]; then
	LIMIT=1800
else
	echo "fuzz.sh: -t takes a duration like 30s, 2m or a count like 100000x" >&2
	exit 2
fi
[[ $PARALLEL =~ ^[1-9][0-9]?$ ]] || { echo "fuzz.sh: -p must be 1-99" >&2; exit 2; }
[[ $MINIMIZE =~ ^[0-9]+(s|m|x)$ ]] || { echo "fuzz.sh: -m takes a count like 1000x or a duration like 10s" >&2; exit 2; }

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-$(mktemp -d /tmp/caddy-valohai-fuzz.XXXXXX)}
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
REPORT=$OUT/report.md
START_TS=$(date +%s)
log() { printf '[%4ds] %s\n' $(($(date +%s) - START_TS)) "$*" >&2; }

# Targets: "dir name" lines, sorted. testdata and hidden folders are not
# packages of this module.
cd "$REPO"
mapfile -t TARGETS < <(
	find . \( -name '.?*' -o -name testdata -o -name vendor \) -prune -o -name '*_test.go' -type f -print0 |
		xargs -0 -r grep -nHE '^func Fuzz[A-Za-z0-9_]*\(' |
		sed -E 's#^\./(.*)/[^/]+_test\.go:[0-9]+:func (Fuzz[A-Za-z0-9_]*)\(.*#\1 \2#; s#^\./[^/]+_test\.go:[0-9]+:func (Fuzz[A-Za-z0-9_]*)\(.*#. \1#' |
		sort -u
)
if [ -n "$MATCH" ]; then
	mapfile -t TARGETS < <(printf '%s\n' "${TARGETS[@]}" | awk -v re="$MATCH" '$2 ~ re')
fi
[ "${#TARGETS[@]}" -gt 0 ] && [ -n "${TARGETS[0]}" ] || { echo "fuzz.sh: no fuzz targets found" >&2; exit 2; }

corpus_files() { # dir name: the files go has written for the target
	local d="$1/testdata/fuzz/$2"
	[ -d "$d" ] && find "$d" -type f | sort || true
}

{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown) (working tree may differ)"
	echo "go: $(go version | awk '{print $3}')"
	echo "nproc: $(nproc), cpu: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
	echo "fuzztime per target: $FUZZTIME, minimize: $MINIMIZE, parallel: $PARALLEL, targets: ${#TARGETS[@]}"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

ROWS=()
CRASHES=()
FAILED=0 FLAKY=0
for t in "${TARGETS[@]}"; do
	dir=${t% *} name=${t#* }
	logf="$OUT/logs/${dir//\//_}.$name.log"
	before=$(corpus_files "$dir" "$name")
	log "$dir $name (-fuzztime=$FUZZTIME)"
	rc=0
	timeout -k 10 "$LIMIT" go test -run='^$' -fuzz="^${name}\$" -fuzztime="$FUZZTIME" \
		-fuzzminimizetime="$MINIMIZE" -parallel="$PARALLEL" "./$dir" >"$logf" 2>&1 || rc=$?
	after=$(corpus_files "$dir" "$name")
	new=$(comm -13 <(printf '%s\n' "$before") <(printf '%s\n' "$after") | sed '/^$/d')

	# The last progress line holds the totals:
	# "fuzz: elapsed: 30s, execs: 123456 (4100/sec), new interesting: 7 (total: 52)"
	last=$(grep -E '^fuzz: elapsed: .*execs: [0-9]+' "$logf" | tail -n 1 || true)
	execs=$(sed -nE 's/.*execs: ([0-9]+).*/\1/p' <<<"$last")
	interesting=$(sed -nE 's/.*new interesting: ([0-9]+).*/\1/p' <<<"$last")
	total=$(sed -nE 's/.*\(total: ([0-9]+)\).*/\1/p' <<<"$last")
	secs=$(sed -nE 's/^(ok|FAIL)[[:space:]]+[^[:space:]]+[[:space:]]+([0-9.]+)s.*/\2/p' "$logf" | tail -n 1)

	if [ "$rc" = 0 ]; then
		result=ok
	elif [ -n "$new" ] || grep -q 'Failing input written to' "$logf"; then
		result=crash
		FAILED=1
		while IFS= read -r f; do [ -n "$f" ] && CRASHES+=("$f"); done <<<"$new"
		[ -n "$new" ] || CRASHES+=("$dir: see $logf (failing input reported but not found)")
	elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		result="fail (no result within ${LIMIT}s)"
		FAILED=1
	elif grep -q 'context deadline exceeded' "$logf"; then
		result="flaky-infra (golang/go#75804)"
		FLAKY=$((FLAKY + 1))
	else
		result="fail (exit $rc, see log)"
		FAILED=1
	fi
	log "  -> $result; execs ${execs:-?}, new interesting ${interesting:-?} (corpus ${total:-?})"
	pkg=./$dir
	[ "$dir" = . ] && pkg=.
	ROWS+=("| $pkg | $name | ${execs:-?} | ${interesting:-?} | ${total:-?} | ${secs:-?} | $result |")
done

{
	echo "| package | target | execs | new interesting | corpus (total) | wall s | result |"
	echo "|---|---|---:|---:|---:|---:|---|"
	printf '%s\n' "${ROWS[@]}"
	echo
	echo "${#TARGETS[@]} targets, -fuzztime=$FUZZTIME each, -fuzzminimizetime=$MINIMIZE, -parallel=$PARALLEL."
	if [ "$FLAKY" -gt 0 ]; then
		echo "$FLAKY flaky-infra: the timed run ended with \"context deadline exceeded\" and no failing input (golang/go#75804), not a crash."
	fi
	if [ "${#CRASHES[@]}" -gt 0 ]; then
		echo
		echo "Failing inputs written (reproduce with go test -run=<Target>/<file> ./<package>; do not commit them without the fix):"
		printf -- '- %s\n' "${CRASHES[@]}"
	fi
} >"$REPORT"
cat "$REPORT"
log "report: $REPORT, logs: $OUT/logs"
exit "$FAILED"
