// Package caddyvalohai is the module root: importing it registers the
// caddy-valohai Caddy modules, which is what `xcaddy build --with
// github.com/hooklaunch/caddy-valohai` needs.
package caddyvalohai

import (
	_ "github.com/hooklaunch/caddy-valohai/caddymodule"
)
