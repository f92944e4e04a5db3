package caddymodule

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Secrets of the senders' settings in docs/senders.md. The Standard
// Webhooks secret is the one of its reference library's tests; GitLab's
// signing token has the whsec_ form GitLab requires (32 bytes).
const (
	senderGitHubSecret   = "gh-webhook-secret-7c1e"
	senderGitLabSigning  = "whsec_dGVzdHRlc3R0ZXN0dGVzdHRlc3R0ZXN0dGVzdHRlc3Q="
	senderGitLabToken    = "gitlab-secret-token-91aa"
	senderSlackSecret    = "8f742231b10e8888abcd99yyyzzz85a5"
	senderV7Token        = "v7-stage-token-3d2f"
	senderLabelToken     = "label-studio-token-55e0"
	senderDatadogToken   = "datadog-variable-token-a1"
	senderGrafanaSecret  = "grafana-hmac-secret-0b7d"
	senderStripeSecret   = "whsec_DaLRHCRs35vEXqOE8uTEAXGLGUOnyaFf"
	senderStandardSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
)

// docCaddyfileBlocks returns the ```caddyfile blocks of a doc, in order.
func docCaddyfileBlocks(t *testing.T, path string) []string {
	t.Helper()
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	for _, m := range regexp.MustCompile("(?s)```caddyfile\n(.*?)```").FindAllStringSubmatch(string(doc), -1) {
		blocks = append(blocks, m[1])
	}
	return blocks
}

func hmacHex(key, msg string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

func hmacB64(key []byte, msg string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func whsecKey(t *testing.T, s string) []byte {
	k, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestSendersDocThroughCaddy loads every Caddyfile block of
// docs/senders.md into one Caddy and sends each sender's request in the
// format its documentation gives.
func TestSendersDocThroughCaddy(t *testing.T) {
	blocks := docCaddyfileBlocks(t, "../docs/senders.md")
	if len(blocks) != 10 {
		t.Fatalf("docs/senders.md has %d caddyfile blocks, the test knows 10 (one or two per sender)", len(blocks))
	}
	for name, v := range map[string]string{
		"VALOHAI_PROJECT":             testProject,
		"GITHUB_WEBHOOK_SECRET":       senderGitHubSecret,
		"GITLAB_SIGNING_TOKEN":        senderGitLabSigning,
		"GITLAB_WEBHOOK_TOKEN":        senderGitLabToken,
		"SLACK_SIGNING_SECRET":        senderSlackSecret,
		"DISCORD_PUBLIC_KEY":          hexPublic(discordKey),
		"V7_WEBHOOK_TOKEN":            senderV7Token,
		"LABEL_STUDIO_WEBHOOK_TOKEN":  senderLabelToken,
		"DATADOG_WEBHOOK_TOKEN":       senderDatadogToken,
		"GRAFANA_WEBHOOK_SECRET":      senderGrafanaSecret,
		"STRIPE_WEBHOOK_SECRET":       senderStripeSecret,
		"STANDARD_WEBHOOK_SECRET":     senderStandardSecret,
		"STANDARD_WEBHOOK_PUBLIC_KEY": whpk(standardKey),
	} {
		t.Setenv(name, v)
	}
	env := startEnv(t, strings.Join(blocks, "\n"), "")
	now := unixAt(0)

	// send posts and checks the status and how many executions it launched.
	send := func(t *testing.T, path, body string, headers map[string]string, status, launches int) response {
		t.Helper()
		before := len(env.executionCalls())
		r := env.post(path, []byte(body), headers)
		if r.status != status {
			t.Fatalf("%s: status %d %q, want %d", path, r.status, r.body, status)
		}
		// Launches within wait are done when the answer comes; a 202
		// pending one would be a failure of its own.
		if got := len(env.executionCalls()) - before; got != launches {
			t.Fatalf("%s: %d executions launched, want %d (answer %d %q)", path, got, launches, r.status, r.body)
		}
		return r
	}
	lastTitle := func(t *testing.T) string {
		t.Helper()
		execs := env.executionCalls()
		if len(execs) == 0 {
			t.Fatal("no execution")
		}
		s, _ := execs[len(execs)-1]["title"].(string)
		return s
	}

	t.Run("github", func(t *testing.T) {
		push := `{"ref":"refs/heads/main","before":"0000000000000000000000000000000000000000","after":"` + testCommit + `","repository":{"full_name":"acme/demo"},"head_commit":{"id":"` + testCommit + `","message":"Train on new data"},"pusher":{"name":"octocat"}}`
		headers := func(body, delivery string) map[string]string {
			return map[string]string{
				"Content-Type":        "application/json",
				"User-Agent":          "GitHub-Hookshot/044aadd",
				"X-GitHub-Event":      "push",
				"X-GitHub-Delivery":   delivery,
				"X-GitHub-Hook-ID":    "292430182",
				"X-Hub-Signature-256": "sha256=" + hmacHex(senderGitHubSecret, body),
			}
		}
		send(t, "/hooks/github", push, headers(push, "72d3162e-cc78-11e3-81ab-4c9367dc0958"), 200, 1)
		if got := lastTitle(t); got != "Push "+testCommit {
			t.Errorf("title %q", got)
		}
		r := send(t, "/hooks/github", push, headers(push, "72d3162e-cc78-11e3-81ab-4c9367dc0958"), 200, 0)
		if r.header.Get("Webhook-Duplicate") != "true" {
			t.Errorf("redelivery not marked duplicate: %v", r.header)
		}
		other := strings.Replace(push, "refs/heads/main", "refs/heads/dev", 1)
		send(t, "/hooks/github", other, headers(other, "8d3162e-2"), 202, 0)
		bad := headers(push, "8d3162e-3")
		bad["X-Hub-Signature-256"] = "sha256=" + hmacHex("not the secret", push)
		r = send(t, "/hooks/github", push, bad, 400, 0)
		mustContain(t, r.body, "webhook_hmac: signature mismatch")
	})

	t.Run("gitlab", func(t *testing.T) {
		push := `{"object_kind":"push","event_name":"push","before":"95790bf891e76fee5e1747ab589903a6a1f80f22","after":"` + testCommit + `","ref":"refs/heads/main","checkout_sha":"` + testCommit + `","user_username":"jsmith","project_id":15,"project":{"path_with_namespace":"acme/demo"},"commits":[],"total_commits_count":0}`
		signed := func(id, ts string) map[string]string {
			return map[string]string{
				"Content-Type":        "application/json",
				"User-Agent":          "GitLab/18.0.0",
				"X-Gitlab-Event":      "Push Hook",
				"X-Gitlab-Event-UUID": "13792a34-cac6-4fda-95a8-c58e00a3954e",
				"Idempotency-Key":     id,
				"Webhook-Id":          id,
				"Webhook-Timestamp":   ts,
				"Webhook-Signature":   "v1," + hmacB64(whsecKey(t, senderGitLabSigning), id+"."+ts+"."+push),
			}
		}
		send(t, "/hooks/gitlab", push, signed("f7a8c3e1-0001", now), 200, 1)
		if got := lastTitle(t); got != "GitLab push "+testCommit {
			t.Errorf("title %q", got)
		}
		r := send(t, "/hooks/gitlab", push, signed("f7a8c3e1-0002", unixAt(-10*time.Minute)), 400, 0)
		mustContain(t, r.body, "webhook_hmac: timestamp outside tolerance")
		classic := map[string]string{"Content-Type": "application/json", "X-Gitlab-Event": "Push Hook", "X-Gitlab-Event-UUID": "uuid-1", "X-Gitlab-Token": senderGitLabToken}
		send(t, "/hooks/gitlab-token", push, classic, 200, 1)
		classic["X-Gitlab-Token"], classic["X-Gitlab-Event-UUID"] = "guessed", "uuid-2"
		r = send(t, "/hooks/gitlab-token", push, classic, 400, 0)
		mustContain(t, r.body, "webhook_token: token mismatch")
	})

	t.Run("slack", func(t *testing.T) {
		slackHeaders := func(ct, ts, body string) map[string]string {
			return map[string]string{
				"Content-Type":              ct,
				"User-Agent":                "Slackbot 1.0 (+https://api.slack.com/robots)",
				"X-Slack-Request-Timestamp": ts,
				"X-Slack-Signature":         "v0=" + hmacHex(senderSlackSecret, "v0:"+ts+":"+body),
			}
		}
		form := url.Values{
			"token": {"gIkuvaNzQIHg97ATvDxqgjtO"}, "team_id": {"T0001"}, "team_domain": {"example"},
			"channel_id": {"C2147483705"}, "channel_name": {"test"}, "user_id": {"U2147483697"},
			"user_name": {"Steve"}, "command": {"/train"}, "text": {"epochs 3"},
			"response_url": {"https://hooks.slack.com/commands/1234/5678"}, "trigger_id": {"13345224609.738474920.8088930838d88f008e0"},
		}.Encode()
		r := send(t, "/hooks/slack/train", form, slackHeaders("application/x-www-form-urlencoded", now, form), 200, 1)
		if !regexp.MustCompile(`^\{"response_type":"ephemeral","text":"Started execution #\d+"\}$`).MatchString(r.body) {
			t.Errorf("slash command answer %q", r.body)
		}
		if got := lastTitle(t); got != "/train by Steve: epochs 3" {
			t.Errorf("title %q", got)
		}

		challenge := `{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}`
		r = send(t, "/hooks/slack/events", challenge, slackHeaders("application/json", now, challenge), 200, 0)
		if r.body != `{"challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}` || r.header.Get("Content-Type") != "application/json" {
			t.Errorf("url_verification answer %q (%s)", r.body, r.header.Get("Content-Type"))
		}
		// The type spelled with a JSON escape is the same challenge.
		escaped := `{"challenge":"c-escaped","type":"url\u005fverification"}`
		r = send(t, "/hooks/slack/events", escaped, slackHeaders("application/json", now, escaped), 200, 0)
		if r.body != `{"challenge":"c-escaped"}` {
			t.Errorf("escaped url_verification answer %q", r.body)
		}
		r = send(t, "/hooks/slack/events", challenge, map[string]string{"Content-Type": "application/json"}, 400, 0)
		if strings.Contains(r.body, "3eZbrw1") {
			t.Errorf("an unsigned url_verification got its challenge back: %q", r.body)
		}
		stale := unixAt(-6 * time.Minute)
		send(t, "/hooks/slack/events", challenge, slackHeaders("application/json", stale, challenge), 400, 0)

		mention := `{"token":"XXYYZZ","team_id":"T123ABC456","api_app_id":"A123ABC456","event":{"type":"app_mention","user":"U123ABC456","text":"<@U0LAN0Z89> retrain","ts":"1515449522.000016","channel":"C123ABC456","event_ts":"1515449522000016"},"type":"event_callback","event_id":"Ev123ABC456","event_time":1515449522000016}`
		send(t, "/hooks/slack/events", mention, slackHeaders("application/json", now, mention), 200, 1)
		retry := slackHeaders("application/json", now, mention)
		retry["X-Slack-Retry-Num"], retry["X-Slack-Retry-Reason"] = "1", "http_timeout"
		r = send(t, "/hooks/slack/events", mention, retry, 200, 0)
		if r.header.Get("Webhook-Duplicate") != "true" {
			t.Errorf("Slack's retry not deduplicated: %v", r.header)
		}
	})

	t.Run("discord", func(t *testing.T) {
		r := send(t, "/hooks/discord", discordPing, discordHeaders(discordKey, now, discordPing), 200, 0)
		if r.body != `{"type":1}` {
			t.Errorf("PING answer %q", r.body)
		}
		start := time.Now()
		r = send(t, "/hooks/discord", discordCommand, discordHeaders(discordKey, now, discordCommand), 200, 1)
		if took := time.Since(start); took >= 3*time.Second {
			t.Errorf("command answered after %s", took)
		}
		if !regexp.MustCompile(`^\{"type":4,"data":\{"content":"Started execution #\d+ \(run [0-9a-f-]{36}\)"\}\}$`).MatchString(r.body) {
			t.Errorf("command answer %q", r.body)
		}
		send(t, "/hooks/discord", discordCommand, discordHeaders(strangerKey, now, discordCommand), 401, 0)
	})

	t.Run("v7", func(t *testing.T) {
		body := `{"event_type":"workflow_complete","payload":{"dataset_id":1,"filename":"letter.png","annotations":[{"class_name":"FROM","data":{"bounding_box":{"x":455,"y":300,"w":100,"h":20},"text":{"text":"Mail office"}}}]}}`
		r := send(t, "/hooks/v7", body, map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + senderV7Token}, 204, 1)
		if r.body != "" {
			t.Errorf("V7 expects an empty answer, got %q", r.body)
		}
		if got := lastTitle(t); got != "V7 workflow_complete: letter.png" {
			t.Errorf("title %q", got)
		}
		r = send(t, "/hooks/v7", body, map[string]string{"Content-Type": "application/json"}, 400, 0)
		mustContain(t, r.body, "webhook_token: missing token")
	})

	t.Run("label-studio", func(t *testing.T) {
		created := `{"action":"ANNOTATION_CREATED","annotation":{"id":17,"result":[{"type":"choices","value":{"choices":["Positive"]},"from_name":"sentiment","to_name":"text"}],"completed_by":1,"task":42},"task":{"id":42,"data":{"text":"Great product"},"project":3},"project":{"id":3,"title":"Sentiment"}}`
		auth := map[string]string{"Content-Type": "application/json", "User-Agent": "python-requests/2.31.0", "Authorization": "Bearer " + senderLabelToken}
		send(t, "/hooks/label-studio", created, auth, 200, 1)
		if got := lastTitle(t); got != "Label Studio task 42" {
			t.Errorf("title %q", got)
		}
		send(t, "/hooks/label-studio", `{"action":"PROJECT_UPDATED","project":{"id":3}}`, auth, 202, 0)
		auth["Authorization"] = "Bearer wrong"
		send(t, "/hooks/label-studio", created, auth, 400, 0)
	})

	t.Run("datadog", func(t *testing.T) {
		body := `{"body":"%%%\nModel drift above 0.3 on churn-model\n%%%","last_updated":"1700000000000","event_type":"query_alert_monitor","title":"[Triggered] Model drift on churn-model","date":"1700000000000","org":{"id":"11287","name":"Acme"},"id":"7339414785612345678"}`
		headers := map[string]string{"Content-Type": "application/json", "X-Valohai-Token": senderDatadogToken}
		send(t, "/hooks/datadog", body, headers, 200, 1)
		if got := lastTitle(t); got != "Datadog: [Triggered] Model drift on churn-model" {
			t.Errorf("title %q", got)
		}
		send(t, "/hooks/datadog", body, headers, 200, 0) // Datadog's retry of the same event
		headers["X-Valohai-Token"] = "x"
		send(t, "/hooks/datadog", strings.Replace(body, "5678", "5679", 1), headers, 400, 0)
	})

	t.Run("grafana", func(t *testing.T) {
		alert := func(status string) string {
			return `{"receiver":"valohai","status":"` + status + `","orgId":1,"alerts":[{"status":"` + status + `","labels":{"alertname":"ModelDrift","model":"churn"},"annotations":{"summary":"Drift above threshold"},"startsAt":"2025-01-01T00:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"https://grafana.example.com/alerting/grafana/abc/view","fingerprint":"57c6d9296de2ad39"}],"groupLabels":{"alertname":"ModelDrift"},"commonLabels":{"alertname":"ModelDrift"},"commonAnnotations":{},"externalURL":"https://grafana.example.com/","version":"1","groupKey":"{}:{alertname=\"ModelDrift\"}","truncatedAlerts":0,"title":"[FIRING:1] ModelDrift","state":"alerting","message":"Drift above threshold"}`
		}
		signed := func(body, ts string) map[string]string {
			return map[string]string{
				"Content-Type":                           "application/json",
				"User-Agent":                             "Grafana",
				"X-Grafana-Alerting-Signature-Timestamp": ts,
				"X-Grafana-Alerting-Signature":           hmacHex(senderGrafanaSecret, ts+":"+body),
			}
		}
		firing := alert("firing")
		send(t, "/hooks/grafana", firing, signed(firing, now), 200, 1)
		if got := lastTitle(t); got != "Grafana: [FIRING:1] ModelDrift" {
			t.Errorf("title %q", got)
		}
		resolved := alert("resolved")
		send(t, "/hooks/grafana", resolved, signed(resolved, now), 202, 0)
		r := send(t, "/hooks/grafana", firing, signed(firing, unixAt(-time.Hour)), 400, 0)
		mustContain(t, r.body, "timestamp outside tolerance")
	})

	t.Run("stripe", func(t *testing.T) {
		event := `{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","api_version":"2024-06-20","created":1686089970,"data":{"object":{"id":"cs_test_a1","object":"checkout.session","amount_total":2000,"currency":"usd","status":"complete"}},"livemode":false,"pending_webhooks":1,"request":{"id":null,"idempotency_key":null},"type":"checkout.session.completed"}`
		sig := func(ts string) map[string]string {
			return map[string]string{"Content-Type": "application/json; charset=utf-8", "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
				"Stripe-Signature": "t=" + ts + ",v1=" + hmacHex(senderStripeSecret, ts+"."+event) + ",v0=" + hmacHex("test-mode", ts+"."+event)}
		}
		send(t, "/hooks/stripe", event, sig(now), 200, 1)
		r := send(t, "/hooks/stripe", event, sig(now), 200, 0)
		if r.header.Get("Webhook-Duplicate") != "true" {
			t.Errorf("Stripe's retry not deduplicated")
		}
		other := strings.Replace(strings.Replace(event, "checkout.session.completed", "invoice.created", 1), "evt_1NG8", "evt_2NG8", 1)
		ts := now
		send(t, "/hooks/stripe", other, map[string]string{"Content-Type": "application/json", "Stripe-Signature": "t=" + ts + ",v1=" + hmacHex(senderStripeSecret, ts+"."+other)}, 202, 0)
	})

	t.Run("standard-webhooks", func(t *testing.T) {
		body := `{"type":"contact.created","timestamp":"2022-11-03T20:26:10.344522Z","data":{"id":"1f81eb52-5198-4599-803e-771906343485"}}`
		v1 := func(id, ts string) map[string]string {
			return map[string]string{"Content-Type": "application/json", "Webhook-Id": id, "Webhook-Timestamp": ts,
				"Webhook-Signature": "v1," + hmacB64(whsecKey(t, senderStandardSecret), id+"."+ts+"."+body)}
		}
		send(t, "/hooks/standard", body, v1("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", now), 200, 1)
		send(t, "/hooks/standard", body, v1("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", now), 200, 0)
		// A replay with a second webhook-id header: the signature covers
		// the first, Caddy's {http.request.header.Webhook-Id} (the dedupe
		// key) joins both, so it would launch again. Refused instead.
		repeatID := func(path string, headers map[string]string) {
			t.Helper()
			before := len(env.executionCalls())
			h := http.Header{}
			for k, v := range headers {
				h.Set(k, v)
			}
			h.Add("Webhook-Id", "msg_other")
			req, _ := http.NewRequest(http.MethodPost, env.hook+path, strings.NewReader(body))
			req.Header = h
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "id sent more than once") {
				t.Fatalf("%s with a second webhook-id: %d %s", path, res.StatusCode, b)
			}
			if n := len(env.executionCalls()) - before; n != 0 {
				t.Fatalf("%s with a second webhook-id launched %d", path, n)
			}
		}
		repeatID("/hooks/standard", v1("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", now))
		v1a := func(k ed25519.PrivateKey, id, ts string) map[string]string {
			return map[string]string{"Content-Type": "application/json", "Webhook-Id": id, "Webhook-Timestamp": ts,
				"Webhook-Signature": "v1a," + base64.StdEncoding.EncodeToString(ed25519.Sign(k, []byte(id+"."+ts+"."+body)))}
		}
		send(t, "/hooks/standard-v1a", body, v1a(standardKey, "msg_v1a_1", now), 200, 1)
		repeatID("/hooks/standard-v1a", v1a(standardKey, "msg_v1a_1", now))
		r := send(t, "/hooks/standard-v1a", body, v1a(strangerKey, "msg_v1a_2", now), 400, 0)
		mustContain(t, r.body, "webhook_ed25519: signature mismatch")
		// An HMAC v1 signature does not pass the asymmetric route.
		send(t, "/hooks/standard-v1a", body, v1("msg_v1a_3", now), 400, 0)
	})

	// Every route answers only POST.
	if r := env.do(http.MethodGet, env.hook+"/hooks/grafana", nil, nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", r.status)
	}
}
