// Package caddymodule is the Caddy glue of caddy-valohai: module
// registration, Caddyfile parsing, the valohai app and the HTTP handlers that
// adapt the pure validators and launch packages to Caddy.
package caddymodule
