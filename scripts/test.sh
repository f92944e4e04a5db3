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

echo "== go test -race"
go test -race -count=1 -timeout 20m ./...

echo "== xcaddy build"
./scripts/xcaddy-build.sh "$(mktemp -d)/caddy"
