package caddymodule

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

// The directive order (README.md, "How a request flows"), so triggers work
// outside `route` blocks: authentication first, then filter, dedupe and rate
// limit (nothing rejected, filtered out or duplicated consumes quota), then
// the terminal handlers. Conditions go right after forward_auth (registered in reverse,
// since each lands directly after it); terminal handlers before respond.
func init() {
	conditions := []string{
		"webhook_token", "webhook_hmac", "webhook_ed25519", "webhook_jwt", "webhook_timestamp",
		"webhook_filter", "webhook_dedupe", "webhook_rate_limit",
	}
	for i := len(conditions) - 1; i >= 0; i-- {
		httpcaddyfile.RegisterDirectiveOrder(conditions[i], httpcaddyfile.After, "forward_auth")
	}
	for _, dir := range []string{"valohai_launch", "valohai_run_info", "valohai_payloads", "valohai_simulator"} {
		httpcaddyfile.RegisterDirectiveOrder(dir, httpcaddyfile.Before, "respond")
	}
}
