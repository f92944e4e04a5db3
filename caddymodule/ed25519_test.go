package caddymodule

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Discord's interaction bodies: a PING as Discord sends it when the
// Interactions Endpoint URL is saved, and an application command in the
// shape of the example in Discord's "Receiving and Responding" docs.
const (
	discordPing    = `{"application_id":"1153042478735208448","id":"1153064912328101919","token":"aW50ZXJhY3Rpb246MTE1MzA2NDkxMjMyODEwMTkxOQ","type":1,"user":{"id":"53908232506183680","username":"mason"},"version":1}`
	discordCommand = `{"type":2,"token":"A_UNIQUE_TOKEN","member":{"user":{"id":"53908232506183680","username":"Mason","avatar":"a_d5efa99b3eeaa7dd43acca82f5692432","discriminator":"1337","public_flags":131141},"roles":["539082325061836999"],"premium_since":null,"permissions":"2147483647","pending":false,"nick":null,"mute":false,"joined_at":"2017-03-13T19:19:14.040000+00:00","is_pending":false,"deaf":false},"id":"786008729715212338","guild_id":"290926798626357999","app_permissions":"442368","guild_locale":"en-US","locale":"en-US","data":{"options":[{"type":4,"name":"epochs","value":7}],"type":1,"name":"train","id":"771825006014889984"},"channel_id":"645027906669510667"}`
)

// The applications' key pairs: Discord holds the private halves; the
// gateway is configured with the public ones.
var (
	discordKey     = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0xd1}, 32))
	discordNextKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0xd2}, 32))
	strangerKey    = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x66}, 32))
	standardKey    = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x5a}, 32))
)

func hexPublic(k ed25519.PrivateKey) string {
	return hex.EncodeToString(k.Public().(ed25519.PublicKey))
}
func whpk(k ed25519.PrivateKey) string {
	return "whpk_" + base64.StdEncoding.EncodeToString(k.Public().(ed25519.PublicKey))
}

// discordHeaders signs as Discord does: hex Ed25519 of timestamp + body.
func discordHeaders(k ed25519.PrivateKey, ts, body string) map[string]string {
	return map[string]string{
		"Content-Type":          "application/json",
		"User-Agent":            "Discord-Interactions/1.0 (+https://discord.com)",
		"X-Signature-Timestamp": ts,
		"X-Signature-Ed25519":   hex.EncodeToString(ed25519.Sign(k, []byte(ts+body))),
	}
}

func ed25519Routes() string {
	return `
	handle /discord {
		webhook_ed25519 discord {env.VH_TEST_DISCORD_PUBLIC_KEY} ` + hexPublic(discordNextKey) + ` {
			max_body 1MiB
		}
		valohai_launch discord-train {
			project ` + testProject + `
			execution train {
				commit    main
				title     "Discord /{webhook.json.data.name} by {webhook.json.member.user.username}"
				parameter epochs {webhook.json.data.options.#(name=="epochs").value}
			}
			response {
				status       200
				content_type application/json
				body         ` + "`" + `{"type":4,"data":{"content":"Started execution #{valohai.execution.counter} (run {run_id})"}}` + "`" + `
			}
			wait 2s
		}
	}
	handle /discord-403 {
		webhook_ed25519 {
			preset     discord
			public_key ` + hexPublic(discordKey) + `
			status     403
		}
		` + presetLaunch("discord-403") + `
	}
	handle /standard-v1a {
		webhook_ed25519 standard ` + whpk(standardKey) + `
		` + presetLaunch("standard-v1a") + `
	}
`
}

func TestDiscordInteractionsThroughCaddy(t *testing.T) {
	t.Setenv("VH_TEST_DISCORD_PUBLIC_KEY", hexPublic(discordKey))
	env := startEnv(t, ed25519Routes(), "")
	now := unixAt(0)

	t.Run("PING is answered PONG and launches nothing", func(t *testing.T) {
		before := len(env.executionCalls())
		r := env.post("/discord", []byte(discordPing), discordHeaders(discordKey, now, discordPing))
		if r.status != http.StatusOK || r.body != `{"type":1}` || r.header.Get("Content-Type") != "application/json" {
			t.Fatalf("PING: %d %q %q, want 200 {\"type\":1} application/json", r.status, r.header.Get("Content-Type"), r.body)
		}
		if after := len(env.executionCalls()); after != before {
			t.Fatalf("PING launched %d executions", after-before)
		}
	})

	t.Run("an unsigned PING gets 401, not PONG", func(t *testing.T) {
		r := env.post("/discord", []byte(discordPing), map[string]string{"Content-Type": "application/json"})
		if r.status != http.StatusUnauthorized || strings.Contains(r.body, `"type"`) {
			t.Fatalf("unsigned PING: %d %q", r.status, r.body)
		}
	})

	t.Run("a command is answered in Discord's format within 3 s", func(t *testing.T) {
		before := len(env.executionCalls())
		start := time.Now()
		r := env.post("/discord", []byte(discordCommand), discordHeaders(discordKey, now, discordCommand))
		took := time.Since(start)
		if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
			t.Fatalf("command: %d %q", r.status, r.body)
		}
		if took >= 3*time.Second {
			t.Fatalf("answered after %s: Discord gives up after 3 s", took)
		}
		var msg struct {
			Type int `json:"type"`
			Data struct {
				Content string `json:"content"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(r.body), &msg); err != nil {
			t.Fatalf("not JSON: %q", r.body)
		}
		if msg.Type != 4 || !regexp.MustCompile(`^Started execution #\d+ \(run [0-9a-f-]{36}\)$`).MatchString(msg.Data.Content) {
			t.Fatalf("answer %q is not a CHANNEL_MESSAGE_WITH_SOURCE naming the execution", r.body)
		}
		execs := env.executionCalls()
		if len(execs) != before+1 {
			t.Fatalf("%d executions launched, want 1", len(execs)-before)
		}
		last := execs[len(execs)-1]
		if last["title"] != "Discord /train by Mason" {
			t.Errorf("title %v", last["title"])
		}
		if p, _ := last["parameters"].(map[string]any); p == nil || p["epochs"] != json.Number("7") {
			t.Errorf("parameters %v, want epochs 7 from the command option", last["parameters"])
		}
	})

	t.Run("Valohai slow: still answered in Discord's format within 3 s", func(t *testing.T) {
		before := len(env.executionCalls())
		env.simControl("delay", `{"delay":"4s"}`)
		defer env.simControl("reset", `{}`)
		start := time.Now()
		r := env.post("/discord", []byte(discordCommand), discordHeaders(discordKey, now, discordCommand))
		took := time.Since(start)
		if took >= 3*time.Second {
			t.Fatalf("answered after %s: Discord gives up after 3 s", took)
		}
		// The run is stored and pending: the response block still answers
		// (the execution counter is not known yet; the run id is).
		if r.status != http.StatusOK || !regexp.MustCompile(`^\{"type":4,"data":\{"content":"Started execution #\d* \(run [0-9a-f-]{36}\)"\}\}$`).MatchString(r.body) {
			t.Fatalf("pending answer: %d %q", r.status, r.body)
		}
		// The workers carry on: the execution lands once Valohai answers
		// (and before the next subtest counts launches).
		waitFor(t, "the pending run's execution", 15*time.Second, func() bool { return len(env.executionCalls()) == before+1 })
	})

	t.Run("rejections are 401 and launch nothing", func(t *testing.T) {
		stale := unixAt(-6 * time.Minute)
		missingSig := discordHeaders(discordKey, now, discordCommand)
		delete(missingSig, "X-Signature-Ed25519")
		missingTS := discordHeaders(discordKey, now, discordCommand)
		delete(missingTS, "X-Signature-Timestamp")
		runAuthCases(t, env, "/discord", nil, []authCase{
			{name: "signed by another key", body: discordCommand, headers: discordHeaders(strangerKey, now, discordCommand), status: 401, reason: "webhook_ed25519: signature mismatch"},
			{name: "body changed after signing", body: strings.Replace(discordCommand, `"value":7`, `"value":700`, 1), headers: discordHeaders(discordKey, now, discordCommand), status: 401, reason: "webhook_ed25519: signature mismatch"},
			{name: "stale (6 minutes)", body: discordCommand, headers: discordHeaders(discordKey, stale, discordCommand), status: 401, reason: "webhook_ed25519: timestamp outside tolerance"},
			{name: "missing signature", body: discordCommand, headers: missingSig, status: 401, reason: "webhook_ed25519: missing signature"},
			{name: "missing timestamp", body: discordCommand, headers: missingTS, status: 401, reason: "webhook_ed25519: missing timestamp"},
			{name: "garbage signature", body: discordCommand, headers: map[string]string{"X-Signature-Timestamp": now, "X-Signature-Ed25519": "deadbeef"}, status: 401, reason: "webhook_ed25519: malformed signature"},
		})
	})

	t.Run("key rotation: the next key's signature passes too", func(t *testing.T) {
		r := env.post("/discord", []byte(discordCommand), discordHeaders(discordNextKey, now, discordCommand))
		if r.status != http.StatusOK || !strings.Contains(r.body, `"type":4`) {
			t.Fatalf("next key: %d %q", r.status, r.body)
		}
	})

	t.Run("status overrides 401", func(t *testing.T) {
		r := env.post("/discord-403", []byte(discordCommand), discordHeaders(strangerKey, now, discordCommand))
		if r.status != http.StatusForbidden {
			t.Fatalf("status %d %q, want 403", r.status, r.body)
		}
	})

	t.Run("only POST", func(t *testing.T) {
		r := env.do(http.MethodGet, env.hook+"/discord", nil, nil)
		if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "POST" {
			t.Fatalf("GET: %d Allow %q", r.status, r.header.Get("Allow"))
		}
	})

	t.Run("Standard Webhooks v1a", func(t *testing.T) {
		body := `{"type":"contact.created","timestamp":"2022-11-03T20:26:10.344522Z","data":{"id":"1f81eb52-5198-4599-803e-771906343485"}}`
		sign := func(k ed25519.PrivateKey, id, ts string) map[string]string {
			return map[string]string{
				"Content-Type":      "application/json",
				"Webhook-Id":        id,
				"Webhook-Timestamp": ts,
				"Webhook-Signature": "v1a," + base64.StdEncoding.EncodeToString(ed25519.Sign(k, []byte(id+"."+ts+"."+body))),
			}
		}
		both := sign(standardKey, "msg_2", now)
		both["Webhook-Signature"] = "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4= " + sign(strangerKey, "msg_2", now)["Webhook-Signature"] + " " + both["Webhook-Signature"]
		runAuthCases(t, env, "/standard-v1a", nil, []authCase{
			{name: "signed", body: body, headers: sign(standardKey, "msg_1", now), status: 200},
			{name: "several entries, one good", body: body, headers: both, status: 200},
			{name: "another key", body: body, headers: sign(strangerKey, "msg_3", now), status: 400, reason: "webhook_ed25519: signature mismatch"},
			{name: "stale", body: body, headers: sign(standardKey, "msg_4", unixAt(-10*time.Minute)), status: 400, reason: "webhook_ed25519: timestamp outside tolerance"},
			{name: "only an HMAC v1 entry", body: body, headers: map[string]string{"Webhook-Id": "msg_5", "Webhook-Timestamp": now, "Webhook-Signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="}, status: 400, reason: "webhook_ed25519: missing signature"},
		})
	})
}

// Configuration mistakes fail at load with a message naming the directive
// and the fix.
func TestEd25519ConfigErrors(t *testing.T) {
	t.Setenv("VH_TEST_EMPTY_KEY", "")
	for _, c := range []struct{ name, directive, want string }{
		{"no key in short form", `webhook_ed25519 discord`, "parsing caddyfile tokens for 'webhook_ed25519': the short form is"},
		{"empty env key", `webhook_ed25519 discord {env.VH_TEST_EMPTY_KEY}`, "public_key #1 ({env.VH_TEST_EMPTY_KEY}) is empty"},
		{"not a key", `webhook_ed25519 discord abcdef`, "webhook_ed25519: public_key #1 (literal value): an Ed25519 public key is 32 bytes"},
		{"unknown preset", `webhook_ed25519 github ` + hexPublic(discordKey), `unknown preset "github"`},
		{"no header", "webhook_ed25519 {\n\t\t\tpublic_key " + hexPublic(discordKey) + "\n\t\t}", "where is the signature?"},
		{"unsigned timestamp", "webhook_ed25519 {\n\t\t\tpublic_key " + hexPublic(discordKey) + "\n\t\t\theader X-Sig\n\t\t\ttimestamp header X-Ts\n\t\t}", "is not signed"},
		{"unknown sub-directive", "webhook_ed25519 {\n\t\t\tsecret abc\n\t\t}", `unknown sub-directive "secret"`},
	} {
		cf := "{\n\tadmin off\n\tvalohai {\n\t\tapi_token x\n\t\tstore file " + t.TempDir() + "\n\t}\n}\nhttp://127.0.0.1:" + strconv.Itoa(freePort(t)) + " {\n\t\t" + c.directive + "\n\t\trespond ok\n}\n"
		err := loadCaddyfile(cf)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
}

// `caddy valohai sign discord|standard-v1a` prints what the sender sends;
// the trigger accepts it.
func TestSignEd25519CLIThroughCaddy(t *testing.T) {
	t.Setenv("VH_TEST_DISCORD_PUBLIC_KEY", hexPublic(discordKey))
	env := startEnv(t, ed25519Routes(), "")
	der, err := x509.MarshalPKCS8PrivateKey(discordKey)
	if err != nil {
		t.Fatal(err)
	}
	pemFile := filepath.Join(t.TempDir(), "discord.pem")
	if err := os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}

	out, stderr, err := runSignCLI(t, "", "discord", "--secret-file", pemFile, "--body", discordPing, "--url", env.hook+"/discord")
	if err != nil {
		t.Fatalf("sign discord: %v %s", err, stderr)
	}
	h, curl := parseSignOutput(t, out)
	if !strings.Contains(stderr, hexPublic(discordKey)) {
		t.Errorf("stderr %q does not name the public key to configure", stderr)
	}
	if !strings.HasPrefix(curl, "curl ") || strings.Contains(out, "PRIVATE") {
		t.Errorf("output %q", out)
	}
	if r := env.post("/discord", []byte(discordPing), flatHeaders(h)); r.status != 200 || r.body != `{"type":1}` {
		t.Fatalf("signed PING: %d %q", r.status, r.body)
	}
	// A signing time outside the window: noted, and the trigger says 401.
	_, stderr, err = runSignCLI(t, "", "--preset", "discord", "--secret-file", pemFile, "--body", discordPing, "--time", unixAt(-time.Hour))
	if err != nil || !strings.Contains(stderr, "outside the receiver's tolerance") {
		t.Errorf("old --time: %v %q", err, stderr)
	}

	t.Setenv("VH_TEST_STD_PRIVATE", "whsk_"+base64.StdEncoding.EncodeToString(standardKey.Seed()))
	body := `{"type":"invoice.paid","data":{"id":"in_1"}}`
	out, stderr, err = runSignCLI(t, "", "standard-v1a", "--secret-env", "VH_TEST_STD_PRIVATE", "--body", body, "--id", "msg_cli")
	if err != nil {
		t.Fatalf("sign standard-v1a: %v %s", err, stderr)
	}
	h, _ = parseSignOutput(t, out)
	if h.Get("Webhook-Id") != "msg_cli" || !strings.HasPrefix(h.Get("Webhook-Signature"), "v1a,") || !strings.Contains(stderr, whpk(standardKey)) {
		t.Fatalf("standard-v1a output %q %q", out, stderr)
	}
	r := env.post("/standard-v1a", []byte(body), flatHeaders(h))
	if r.status != 200 || decodeLaunch(t, r).Status != "completed" {
		t.Fatalf("signed v1a: %d %q", r.status, r.body)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"discord", "--secret-file", pemFile, "--body", "{}", "--header", "X-Sig"}, "--header does not apply in --preset discord mode"},
		{[]string{"discord", "--body", "{}"}, "no private key"},
		{[]string{"discord", "--secret", "c2VjcmV0LWtleS1ub3QtZWQyNTUxOQ", "--body", "{}"}, "the private key:"},
		{[]string{"discord", "--preset", "github", "--secret-file", pemFile, "--body", "{}"}, "the preset is given twice"},
		{[]string{"discord", "--secret-file", pemFile}, "signs a body"},
		{[]string{"discord", "--secret-file", pemFile, "--body", "{}", "--id", "x"}, "signs no id"},
	} {
		_, _, err := runSignCLI(t, "", c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("sign %q: %v, want %q", c.args, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "c2VjcmV0") {
			t.Errorf("the error %q contains the key", err)
		}
	}
}
