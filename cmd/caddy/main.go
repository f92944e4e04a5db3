// Command caddy is Caddy with the standard modules and the caddy-valohai
// plugin, so `go run ./cmd/caddy run --config Caddyfile.example` works in a
// fresh checkout without xcaddy.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/hooklaunch/caddy-valohai"
)

func main() {
	caddycmd.Main()
}
