#!/usr/bin/env bash
# Builds the supported custom Caddy with xcaddy, exactly as xcaddy.json pins
# it: `scripts/xcaddy-build.sh [output]`. Installs xcaddy when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-./caddy}

caddy_version=$(sed -n 's/.*"caddy_version": *"\([^"]*\)".*/\1/p' xcaddy.json)
xcaddy_version=$(sed -n 's/.*"xcaddy_version": *"\([^"]*\)".*/\1/p' xcaddy.json)
module=$(sed -n 's/.*"module": *"\([^"]*\)".*/\1/p' xcaddy.json)
pseudo=$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' xcaddy.json)

xcaddy=$(command -v xcaddy || true)
if [ -z "$xcaddy" ]; then
	bin=$(go env GOPATH)/bin
	if [ ! -x "$bin/xcaddy" ]; then
		echo "installing xcaddy $xcaddy_version"
		go install "github.com/caddyserver/xcaddy/cmd/xcaddy@$xcaddy_version"
	fi
	xcaddy=$bin/xcaddy
fi
# The explicit pseudo-version keeps xcaddy from asking the module proxy for
# this unpublished module; the replacement points it at the checkout.
"$xcaddy" build "$caddy_version" --output "$out" --with "$module@$pseudo=$(pwd)"
# grep reads the whole list (-q would stop at the match, and list-modules,
# still writing, would die of SIGPIPE: exit 141 under pipefail).
"$out" list-modules | grep '^http.handlers.valohai_launch$' >/dev/null
echo "built $out with $("$out" version | head -1)"
