# `make test` is the README's test command and what .ci/run calls.
.PHONY: test run build xcaddy

test:
	./scripts/test.sh

run:
	go run ./cmd/caddy run --config Caddyfile.example

build:
	go build -o caddy ./cmd/caddy

xcaddy:
	./scripts/xcaddy-build.sh ./caddy
