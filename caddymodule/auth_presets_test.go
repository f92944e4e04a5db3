package caddymodule

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// Secrets of the preset routes. Slack's and Standard Webhooks' are the
// ones of their published examples.
const (
	presetSlackSecret    = "8f742231b10e8888abcd99yyyzzz85a5"
	presetStripeSecret   = "whsec_DaLRHCRs35vEXqOE8uTEAXGLGUOnyaFf"
	presetStripeNext     = "whsec_rolledSecretKeptLive24h"
	presetStandardSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	presetShopifySecret  = "shpss_3f9a1c0e7d5b"
	presetShopifyNext    = "shpss_8b2d6e4f0a1c"
	presetLinearSecret   = "lin_wh_4e7a9c1b"
	presetValohaiSecret  = "foobar"
	presetSignedSecret   = "custom-signed-ts-secret"

	// Slack's slash-command body from "Verifying requests from Slack".
	presetSlackBody = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)

// presetLaunch is a minimal trigger behind each condition.
func presetLaunch(name string) string {
	return `valohai_launch ` + name + ` {
			project ` + testProject + `
			execution train {
				commit main
			}
		}`
}

func presetRoutes() string {
	route := func(path, conditions, name string) string {
		return "\thandle " + path + " {\n\t\t" + conditions + "\n\t\t" + presetLaunch(name) + "\n\t}\n"
	}
	return route("/github", `webhook_hmac github {env.VH_TEST_GITHUB_SECRET}`, "github") +
		route("/slack", `webhook_hmac slack {env.VH_TEST_SLACK_SECRET}`, "slack") +
		route("/stripe", `webhook_hmac {
			preset stripe
			secret {env.VH_TEST_STRIPE_SECRET}
			secret `+presetStripeNext+`
		}`, "stripe") +
		route("/standard", `webhook_hmac standard `+presetStandardSecret, "standard") +
		route("/shopify", `webhook_hmac {
			preset shopify
			secret `+presetShopifySecret+`
			secret `+presetShopifyNext+`
			status 401
		}`, "shopify") +
		route("/linear", `webhook_hmac linear `+presetLinearSecret, "linear") +
		route("/valohai", `webhook_hmac valohai `+presetValohaiSecret, "valohai") +
		route("/valohai-timed", `webhook_hmac {
			preset    valohai
			secret    `+presetValohaiSecret+`
			prefix    "sha256="
			timestamp header X-Timestamp unix_ms
			message   "v123:{body}:{timestamp}"
		}`, "valohai-timed") +
		route("/fresh", `webhook_timestamp header X-Timestamp`, "fresh") +
		route("/fresh-query", `webhook_timestamp {
			query     ts
			format    rfc3339
			tolerance 5m
			status    401
		}`, "fresh-query") +
		// A sender signing its timestamp header with a custom message:
		// webhook_hmac checks the signature, webhook_timestamp the age.
		route("/signed-fresh", `webhook_hmac {
			secret  `+presetSignedSecret+`
			header  X-Signature
			message "{header.X-Sent-At}.{body}"
		}
		webhook_timestamp header X-Sent-At`, "signed-fresh")
}

func presetMAC(key []byte, parts ...string) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

func presetHex(secret string, parts ...string) string {
	return hex.EncodeToString(presetMAC([]byte(secret), parts...))
}

func presetB64(key []byte, parts ...string) string {
	return base64.StdEncoding.EncodeToString(presetMAC(key, parts...))
}

func unixAt(d time.Duration) string { return strconv.FormatInt(time.Now().Add(d).Unix(), 10) }

// authCase is one request to a trigger: accepted (status 200, one more
// execution launched) or rejected (status, reason, nothing launched, no
// secret or expected signature in the answer).
type authCase struct {
	name    string
	body    string
	headers map[string]string
	query   string
	status  int
	reason  string
}

func runAuthCases(t *testing.T, env *testEnv, path string, secretish []string, cases []authCase) {
	t.Helper()
	for _, c := range cases {
		before := len(env.executionCalls())
		r := env.post(path+c.query, []byte(c.body), c.headers)
		after := len(env.executionCalls())
		if r.status != c.status {
			t.Errorf("%s %s: status %d %q, want %d", path, c.name, r.status, r.body, c.status)
			continue
		}
		if c.status == http.StatusOK {
			if lr := decodeLaunch(t, r); lr.Status != "completed" || after != before+1 {
				t.Errorf("%s %s: %q, %d executions launched, want 1", path, c.name, r.body, after-before)
			}
			continue
		}
		if after != before {
			t.Errorf("%s %s: rejected but launched %d executions", path, c.name, after-before)
		}
		if !strings.Contains(r.body, c.reason) {
			t.Errorf("%s %s: body %q, want reason %q", path, c.name, r.body, c.reason)
		}
		for _, s := range secretish {
			if s != "" && strings.Contains(r.body, s) {
				t.Errorf("%s %s: the answer %q reveals secret material", path, c.name, r.body)
			}
		}
	}
}

// startPresetEnv runs Caddy with presetRoutes, some secrets coming from
// the environment as in production.
func startPresetEnv(t *testing.T) *testEnv {
	t.Helper()
	t.Setenv("VH_TEST_GITHUB_SECRET", githubSecret)
	t.Setenv("VH_TEST_SLACK_SECRET", presetSlackSecret)
	t.Setenv("VH_TEST_STRIPE_SECRET", presetStripeSecret)
	return startEnv(t, presetRoutes(), "")
}

func TestHMACPresetsThroughCaddy(t *testing.T) {
	env := startPresetEnv(t)
	const bad = 400

	t.Run("github", func(t *testing.T) {
		json := `{"ref":"refs/heads/main"}`
		sig := func(secret, body string) string { return "sha256=" + presetHex(secret, body) }
		runAuthCases(t, env, "/github", []string{githubSecret, githubSignature[7:]}, []authCase{
			{name: "published example", body: githubBody, headers: map[string]string{"X-Hub-Signature-256": githubSignature}, status: 200},
			{name: "wrong secret", body: json, headers: map[string]string{"X-Hub-Signature-256": sig("not it", json)}, status: bad, reason: "webhook_hmac: signature mismatch"},
			{name: "signature over re-serialized body", body: `{"ref": "refs/heads/main"}`, headers: map[string]string{"X-Hub-Signature-256": sig(githubSecret, json)}, status: bad, reason: "webhook_hmac: signature mismatch"},
			{name: "missing header", body: json, status: bad, reason: "webhook_hmac: missing signature"},
		})
	})

	t.Run("slack", func(t *testing.T) {
		form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
		signed := func(secret, ts, body string) map[string]string {
			h := map[string]string{"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": "v0=" + presetHex(secret, "v0:", ts, ":", body)}
			for k, v := range form {
				h[k] = v
			}
			return h
		}
		values, _ := url.ParseQuery(presetSlackBody)
		reencoded := values.Encode()
		now := unixAt(0)
		runAuthCases(t, env, "/slack", []string{presetSlackSecret, presetHex(presetSlackSecret, "v0:", now, ":", presetSlackBody)}, []authCase{
			{name: "slash command form body", body: presetSlackBody, headers: signed(presetSlackSecret, now, presetSlackBody), status: 200},
			{name: "Slack's published example, now years old", body: presetSlackBody, headers: map[string]string{
				"X-Slack-Request-Timestamp": "1531420618",
				"X-Slack-Signature":         "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
			}, status: bad, reason: "webhook_hmac: timestamp outside tolerance"},
			{name: "wrong secret", body: presetSlackBody, headers: signed("8f742231b10e8888abcd99yyyzzz85a6", now, presetSlackBody), status: bad, reason: "webhook_hmac: signature mismatch"},
			{name: "stale", body: presetSlackBody, headers: signed(presetSlackSecret, unixAt(-6*time.Minute), presetSlackBody), status: bad, reason: "webhook_hmac: timestamp outside tolerance"},
			{name: "future", body: presetSlackBody, headers: signed(presetSlackSecret, unixAt(6*time.Minute), presetSlackBody), status: bad, reason: "webhook_hmac: timestamp outside tolerance"},
			{name: "signature over re-encoded form", body: reencoded, headers: signed(presetSlackSecret, now, presetSlackBody), status: bad, reason: "webhook_hmac: signature mismatch"},
			{name: "missing signature header", body: presetSlackBody, headers: map[string]string{"X-Slack-Request-Timestamp": now}, status: bad, reason: "webhook_hmac: missing signature"},
			{name: "missing timestamp header", body: presetSlackBody, headers: map[string]string{"X-Slack-Signature": signed(presetSlackSecret, now, presetSlackBody)["X-Slack-Signature"]}, status: bad, reason: "webhook_hmac: missing timestamp"},
		})
	})

	t.Run("stripe", func(t *testing.T) {
		body := `{"id":"evt_1PmXyZ","type":"checkout.session.completed"}`
		v1 := func(secret, ts, body string) string { return presetHex(secret, ts, ".", body) }
		header := func(ts string, sigs ...string) map[string]string {
			return map[string]string{"Stripe-Signature": "t=" + ts + "," + strings.Join(sigs, ","), "Content-Type": "application/json"}
		}
		now := unixAt(0)
		wrong := v1("whsec_notTheEndpointSecret", now, body)
		runAuthCases(t, env, "/stripe", []string{presetStripeSecret, presetStripeNext, v1(presetStripeSecret, now, body)}, []authCase{
			{name: "two v1 (rotation), one matches, v0 ignored", body: body, headers: header(now, "v1="+wrong, "v1="+v1(presetStripeSecret, now, body), "v0="+wrong), status: 200},
			{name: "signed with the second secret line", body: body, headers: header(now, "v1="+v1(presetStripeNext, now, body)), status: 200},
			{name: "only v0 matches", body: body, headers: header(now, "v1="+wrong, "v0="+v1(presetStripeSecret, now, body)), status: bad, reason: "webhook_hmac: signature mismatch"},
			{name: "wrong secret", body: body, headers: header(now, "v1="+wrong), status: bad, reason: "webhook_hmac: signature mismatch"},
			{name: "stale", body: body, headers: header(unixAt(-6*time.Minute), "v1="+v1(presetStripeSecret, unixAt(-6*time.Minute), body)), status: bad, reason: "webhook_hmac: timestamp outside tolerance"},
			{name: "future", body: body, headers: header(unixAt(6*time.Minute), "v1="+v1(presetStripeSecret, unixAt(6*time.Minute), body)), status: bad, reason: "webhook_hmac: timestamp outside tolerance"},
			{name: "signature over re-serialized body", body: `{"id": "evt_1PmXyZ", "type": "checkout.session.completed"}`, headers: header(now, "v1="+v1(presetStripeSecret, now, body)), status: bad, reason: "webhook_hmac: signature mismatch"},
			{name: "missing header", body: body, status: bad, reason: "webhook_hmac: missing signature"},
		})
	})

	t.Run("standard", func(t *testing.T) {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(presetStandardSecret, "whsec_"))
		if err != nil {
			t.Fatal(err)
		}
		body := `{"test": 2432232314}`
		const id = "msg_p5jXN8AQM9LWM0D4loKWxJek"
		signed := func(key []byte, ts, body string) map[string]string {
			return map[string]string{"webhook-id": id, "webhook-timestamp": ts, "webhook-signature": "v1," + presetB64(key, id, ".", ts, ".", body)}
		}
		now := unixAt(0)
		missingID := signed(key, now, body)
		delete(missingID, "webhook-id")
		runAuthCases(t, env, "/standard", []string{presetStandardSecret, strings.TrimPrefix(presetStandardSecret, "whsec_"), presetB64(key, id, ".", now, ".", body)}, []authCase{
			{name: "whsec_ secret, fresh delivery", body: body, headers: signed(key, now, body), status: 200},
			{name: "whsec_ string used raw as the key", body: body, headers: signed([]byte(presetStandardSecret), now, body), status: bad, reason: "webhook_hmac: signature mismatch"},
			{name: "wrong secret", body: body, headers: signed([]byte("some other key"), now, body), status: bad, reason: "webhook_hmac: signature mismatch"},
			{name: "stale", body: body, headers: signed(key, unixAt(-6*time.Minute), body), status: bad, reason: "webhook_hmac: timestamp outside tolerance"},
			{name: "future", body: body, headers: signed(key, unixAt(6*time.Minute), body), status: bad, reason: "webhook_hmac: timestamp outside tolerance"},
			{name: "signature over re-serialized body", body: `{"test":2432232314}`, headers: signed(key, now, body), status: bad, reason: "webhook_hmac: signature mismatch"},
			{name: "missing signature header", body: body, headers: map[string]string{"webhook-id": id, "webhook-timestamp": now}, status: bad, reason: "webhook_hmac: missing signature"},
			{name: "missing id header", body: body, headers: missingID, status: bad, reason: "webhook_hmac: missing id"},
		})
	})

	t.Run("shopify, status 401", func(t *testing.T) {
		body := `{"id":820982911946154508,"email":"jon@example.com","topic":"orders/create"}`
		sig := func(secret, body string) map[string]string {
			return map[string]string{"X-Shopify-Hmac-SHA256": presetB64([]byte(secret), body), "Content-Type": "application/json"}
		}
		const unauthorized = 401
		runAuthCases(t, env, "/shopify", []string{presetShopifySecret, presetShopifyNext, presetB64([]byte(presetShopifySecret), body)}, []authCase{
			{name: "base64 signature", body: body, headers: sig(presetShopifySecret, body), status: 200},
			{name: "rotation: second secret", body: body, headers: sig(presetShopifyNext, body), status: 200},
			{name: "hex instead of base64", body: body, headers: map[string]string{"X-Shopify-Hmac-SHA256": presetHex(presetShopifySecret, body)}, status: unauthorized, reason: "webhook_hmac: malformed signature"},
			{name: "wrong secret", body: body, headers: sig("shpss_someone_else", body), status: unauthorized, reason: "webhook_hmac: signature mismatch"},
			{name: "signature over re-serialized body", body: `{"id": 820982911946154508, "email": "jon@example.com", "topic": "orders/create"}`, headers: sig(presetShopifySecret, body), status: unauthorized, reason: "webhook_hmac: signature mismatch"},
			{name: "missing header", body: body, status: unauthorized, reason: "webhook_hmac: missing signature"},
		})
	})

	t.Run("linear", func(t *testing.T) {
		body := func(d time.Duration) string {
			return fmt.Sprintf(`{"action":"create","type":"Issue","data":{"id":"2174"},"webhookTimestamp":%d}`, time.Now().Add(d).UnixMilli())
		}
		sig := func(secret, body string) map[string]string {
			return map[string]string{"Linear-Signature": presetHex(secret, body), "Content-Type": "application/json"}
		}
		fresh, stale, future := body(0), body(-2*time.Minute), body(2*time.Minute)
		runAuthCases(t, env, "/linear", []string{presetLinearSecret, presetHex(presetLinearSecret, fresh)}, []authCase{
			{name: "fresh webhookTimestamp", body: fresh, headers: sig(presetLinearSecret, fresh), status: 200},
			{name: "wrong secret", body: fresh, headers: sig("lin_wh_other", fresh), status: bad, reason: "webhook_hmac: signature mismatch"},
			{name: "stale", body: stale, headers: sig(presetLinearSecret, stale), status: bad, reason: "webhook_hmac: timestamp outside tolerance"},
			{name: "future", body: future, headers: sig(presetLinearSecret, future), status: bad, reason: "webhook_hmac: timestamp outside tolerance"},
			{name: "signature over re-serialized body", body: strings.ReplaceAll(fresh, `":`, `": `), headers: sig(presetLinearSecret, fresh), status: bad, reason: "webhook_hmac: signature mismatch"},
			{name: "no webhookTimestamp in the body", body: `{"action":"create"}`, headers: sig(presetLinearSecret, `{"action":"create"}`), status: bad, reason: "webhook_hmac: missing timestamp"},
			{name: "missing header", body: fresh, status: bad, reason: "webhook_hmac: missing signature"},
		})
	})

	t.Run("valohai client", func(t *testing.T) {
		body := `{"foo": "bar"}`
		sig := presetHex(presetValohaiSecret, body) // valohai-utils' own example: 15b944e3…2510
		if !strings.HasPrefix(sig, "15b944e3") {
			t.Fatalf("valohai-utils example digest %s", sig)
		}
		runAuthCases(t, env, "/valohai", []string{sig}, []authCase{
			{name: "default format", body: body, headers: map[string]string{"Authorization": sig}, status: 200},
			{name: "wrong secret", body: body, headers: map[string]string{"Authorization": presetHex("barfoo", body)}, status: bad, reason: "webhook_hmac: signature mismatch"},
			{name: "signature over re-serialized body", body: `{"foo":"bar"}`, headers: map[string]string{"Authorization": sig}, status: bad, reason: "webhook_hmac: signature mismatch"},
			{name: "missing header", body: body, status: bad, reason: "webhook_hmac: missing signature"},
		})

		signed := func(secret string, d time.Duration, body string) map[string]string {
			ts := strconv.FormatInt(time.Now().Add(d).UnixMilli(), 10)
			return map[string]string{"X-Timestamp": ts, "Authorization": "sha256=" + presetHex(secret, "v123:", body, ":", ts)}
		}
		missingTS := signed(presetValohaiSecret, 0, body)
		delete(missingTS, "X-Timestamp")
		runAuthCases(t, env, "/valohai-timed", []string{presetValohaiSecret}, []authCase{
			{name: "timestamp unix_ms, prefix, custom format", body: body, headers: signed(presetValohaiSecret, 0, body), status: 200},
			{name: "wrong secret", body: body, headers: signed("barfoo", 0, body), status: bad, reason: "webhook_hmac: signature mismatch"},
			{name: "stale", body: body, headers: signed(presetValohaiSecret, -6*time.Minute, body), status: bad, reason: "webhook_hmac: timestamp outside tolerance"},
			{name: "future", body: body, headers: signed(presetValohaiSecret, 6*time.Minute, body), status: bad, reason: "webhook_hmac: timestamp outside tolerance"},
			{name: "signature over re-serialized body", body: `{"foo":"bar"}`, headers: signed(presetValohaiSecret, 0, body), status: bad, reason: "webhook_hmac: signature mismatch"},
			{name: "missing timestamp header", body: body, headers: missingTS, status: bad, reason: "webhook_hmac: missing timestamp"},
			{name: "missing signature header", body: body, headers: map[string]string{"X-Timestamp": signed(presetValohaiSecret, 0, body)["X-Timestamp"]}, status: bad, reason: "webhook_hmac: missing signature"},
		})
	})
}

func TestWebhookTimestampThroughCaddy(t *testing.T) {
	env := startPresetEnv(t)
	const bad = 400
	body := `{"event":"done"}`
	header := func(v string) map[string]string { return map[string]string{"X-Timestamp": v} }

	t.Run("short form: header, auto, 60s", func(t *testing.T) {
		runAuthCases(t, env, "/fresh", nil, []authCase{
			{name: "unix seconds", body: body, headers: header(unixAt(0)), status: 200},
			{name: "unix ms", body: body, headers: header(strconv.FormatInt(time.Now().UnixMilli(), 10)), status: 200},
			{name: "HTTP date", body: body, headers: header(time.Now().UTC().Format(http.TimeFormat)), status: 200},
			{name: "RFC 3339", body: body, headers: header(time.Now().Add(-30 * time.Second).Format(time.RFC3339)), status: 200},
			{name: "stale", body: body, headers: header(unixAt(-2 * time.Minute)), status: bad, reason: "webhook_timestamp: timestamp outside tolerance"},
			{name: "future", body: body, headers: header(unixAt(2 * time.Minute)), status: bad, reason: "webhook_timestamp: timestamp outside tolerance"},
			{name: "malformed", body: body, headers: header("yesterday"), status: bad, reason: "webhook_timestamp: malformed timestamp"},
			{name: "12 digits: ambiguous", body: body, headers: header("170000000012"), status: bad, reason: "webhook_timestamp: malformed timestamp"},
			{name: "missing", body: body, status: bad, reason: "webhook_timestamp: missing timestamp"},
		})
	})

	t.Run("block form: query, rfc3339, 5m, status 401", func(t *testing.T) {
		q := func(d time.Duration) string {
			return "?ts=" + url.QueryEscape(time.Now().Add(d).UTC().Format(time.RFC3339))
		}
		runAuthCases(t, env, "/fresh-query", nil, []authCase{
			{name: "4 minutes old", body: body, query: q(-4 * time.Minute), status: 200},
			{name: "stale", body: body, query: q(-6 * time.Minute), status: 401, reason: "webhook_timestamp: timestamp outside tolerance"},
			{name: "future", body: body, query: q(6 * time.Minute), status: 401, reason: "webhook_timestamp: timestamp outside tolerance"},
			{name: "unix where rfc3339 is configured", body: body, query: "?ts=" + unixAt(0), status: 401, reason: "webhook_timestamp: malformed timestamp"},
			{name: "missing", body: body, status: 401, reason: "webhook_timestamp: missing timestamp"},
		})
	})

	t.Run("signed timestamp: hmac over the header, then its age", func(t *testing.T) {
		signed := func(sentAt string, body string) map[string]string {
			return map[string]string{"X-Sent-At": sentAt, "X-Signature": presetHex(presetSignedSecret, sentAt, ".", body)}
		}
		old := unixAt(-10 * time.Minute)
		replay := signed(old, body)
		replay["X-Sent-At"] = unixAt(0) // a replayer refreshing the timestamp breaks the signature
		runAuthCases(t, env, "/signed-fresh", []string{presetSignedSecret}, []authCase{
			{name: "fresh and signed", body: body, headers: signed(unixAt(0), body), status: 200},
			{name: "signed but stale", body: body, headers: signed(old, body), status: bad, reason: "webhook_timestamp: timestamp outside tolerance"},
			{name: "old delivery with a fresh timestamp", body: body, headers: replay, status: bad, reason: "webhook_hmac: signature mismatch"},
		})
	})
}

func TestHMACAndTimestampConfigErrors(t *testing.T) {
	cases := []struct {
		name, site string
		want       []string
		notWant    string
	}{
		{
			name:    "standard secret that is not whsec_/base64",
			site:    `webhook_hmac standard my-plain-password!`,
			want:    []string{"webhook_hmac", "secret #1", "whsec_ followed by base64"},
			notWant: "my-plain-password!",
		},
		{
			name: "unknown secret_encoding",
			site: `webhook_hmac {
		preset github
		secret s3cr3t-value
		secret_encoding base32
	}`,
			want:    []string{"webhook_hmac", `secret_encoding "base32" is not supported: use raw, base64, hex or whsec`},
			notWant: "s3cr3t-value",
		},
		{
			name: "valohai preset with an unsigned timestamp",
			site: `webhook_hmac {
		preset valohai
		secret foobar
		timestamp header X-Timestamp unix_ms
	}`,
			want: []string{"webhook_hmac", "timestamp header X-Timestamp is not signed", "{timestamp}"},
		},
		{
			name: "stripe with a timestamp source",
			site: `webhook_hmac {
		preset stripe
		secret whsec_x
		timestamp header X-Timestamp
	}`,
			want: []string{"webhook_hmac", "cannot be used with scheme stripe"},
		},
		{
			name: "webhook_timestamp without a source",
			site: `webhook_timestamp {
		tolerance 30s
	}`,
			want: []string{"webhook_timestamp", "where is the timestamp"},
		},
		{
			name: "webhook_timestamp with an unknown format",
			site: `webhook_timestamp {
		header X-Timestamp
		format iso8601
	}`,
			want: []string{"parsing caddyfile tokens for 'webhook_timestamp': format: unknown timestamp format", "use unix, unix_ms, rfc3339, http_date or auto"},
		},
		{
			name: "webhook_timestamp with two sources",
			site: `webhook_timestamp header X-Timestamp {
		query ts
	}`,
			want: []string{"webhook_timestamp", "use only one of header, query and field"},
		},
		{
			name: "webhook_timestamp short form with one word",
			site: `webhook_timestamp X-Timestamp`,
			want: []string{"webhook_timestamp", "webhook_timestamp header X-Timestamp"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cf := "{\n\tadmin off\n\tvalohai {\n\t\tstore file " + dir + "\n\t\tapi_token tok\n\t}\n}\nhttp://127.0.0.1:0 {\n\t" + c.site + "\n\trespond ok\n}\n"
			err := loadCaddyfile(cf)
			if err == nil {
				_ = caddy.Stop()
				t.Fatalf("config loaded, want an error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if c.notWant != "" && strings.Contains(err.Error(), c.notWant) {
				t.Errorf("error %q reveals the secret", err)
			}
		})
	}
}
