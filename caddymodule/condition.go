package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/hooklaunch/caddy-valohai/validators"
)

// condition is what every condition handler shares: the common options,
// the app and the logger, and the request flow of README.md, "How a
// request flows".
type condition struct {
	app    *App
	logger *zap.Logger
}

func (c *condition) provision(ctx caddy.Context) error {
	c.logger = ctx.Logger()
	app, err := loadApp(ctx)
	if err != nil {
		return err
	}
	c.app = app
	return nil
}

// serve reads the shared request, runs verify and either passes the request
// on or rejects it.
func (c *condition) serve(common *Common, directive string, w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, verify func(*validators.Request) error) error {
	return c.serveAnswering(common, directive, w, r, next, verify, nil)
}

// answerFunc lets a condition answer a verified request itself instead of
// passing it on: a sender's handshake (Discord's PING, Slack's
// url_verification) that must get a fixed reply and launch nothing. It
// reports whether it wrote the response.
type answerFunc func(w http.ResponseWriter, vr *validators.Request) (bool, error)

// serveAnswering is serve with an answer hook that runs only after verify
// passed, so an unauthenticated request never gets a handshake reply.
func (c *condition) serveAnswering(common *Common, directive string, w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, verify func(*validators.Request) error, answer answerFunc) error {
	vr, r, held, err := common.holdWebhookRequest(w, r, c.app, directive)
	if err != nil {
		return err
	}
	if held > 0 {
		// This handler read the body: the route ends when it returns.
		defer c.app.bodies.release(held)
	}
	err = verify(vr)
	if rej := vr.ReadJSONRejection(directive); rej != nil {
		// The condition read a field of a hostile JSON body: refuse the
		// body itself, whatever the condition concluded without it.
		return common.rejectStatus(c.app, c.logger, r, rej, http.StatusBadRequest)
	}
	if err != nil {
		return common.reject(c.app, c.logger, r, err)
	}
	if answer != nil {
		if done, err := answer(w, vr); done || err != nil {
			return err
		}
		if rej := vr.ReadJSONRejection(directive); rej != nil {
			// The handshake looked into a hostile JSON body.
			return common.rejectStatus(c.app, c.logger, r, rej, http.StatusBadRequest)
		}
	}
	return next.ServeHTTP(w, r)
}

// answerJSON answers 200 with a small, compact JSON document.
func answerJSON(w http.ResponseWriter, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(b)
	return err
}

// expandSecrets expands {env.*} / {file.*} placeholders in secrets at
// provision. A secret that is empty after expansion is a config error,
// never "authentication disabled". Errors name the placeholder, never a
// secret value.
func expandSecrets(directive string, secrets []string) ([]string, error) {
	if len(secrets) == 0 {
		return nil, fmt.Errorf("%s: no secret configured: add `secret {env.YOUR_SECRET}` (several secret lines for rotation)", directive)
	}
	repl := caddy.NewReplacer()
	out := make([]string, 0, len(secrets))
	for i, s := range secrets {
		v, err := repl.ReplaceOrErr(s, true, true)
		if err != nil || v == "" {
			return nil, fmt.Errorf("%s: secret #%d (%s) is empty after expanding placeholders: set the environment variable or file it names; an empty secret would disable authentication", directive, i+1, placeholderHint(s))
		}
		out = append(out, v)
	}
	return out, nil
}

// placeholderHint shows the configured text of a secret only when it is a
// pure placeholder reference (so no literal secret reaches an error).
func placeholderHint(s string) string {
	if len(s) > 2 && s[0] == '{' && s[len(s)-1] == '}' {
		return s
	}
	return "literal value"
}
