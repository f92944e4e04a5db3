package caddymodule

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The hostile-input regression tests (README.md, "Hostile input") run the
// built binary, as users do, with a simulator process standing in for
// Valohai. Each test is one of the attacks that once worked.

const (
	hostileToken  = "hostile-token"
	hostileSecret = "hostile-github-secret"
)

type hostileEnv struct {
	*faultEnv
	proc *caddyProc
}

func startHostile(t *testing.T) *hostileEnv {
	t.Helper()
	f := newFaultEnv(t, "")
	launch := func(name, extra string) string {
		return fmt.Sprintf(`valohai_launch %s {
			project %s
			execution train {
				commit main
				title  "%s {run_id}"
				%s
			}
			wait 0s
		}`, name, testProject, name, extra)
	}
	proc := startCaddyProc(t, fmt.Sprintf(`{
	admin off
	valohai {
		api_url     http://%[2]s
		api_token   %[3]s
		store       file %[4]s
		payload_url http://%[1]s/_valohai/payloads
		max_body_in_flight 64MiB
	}
}
http://%[1]s {
	handle_errors {
		respond "{err.message}" {err.status_code}
	}
	handle /filter {
		webhook_token %[5]s
		webhook_filter `+"`"+`body.ref == "refs/heads/main"`+"`"+`
		%[7]s
	}
	handle /placeholder {
		webhook_token %[5]s
		%[8]s
	}
	handle /github {
		webhook_hmac github %[6]s
		webhook_dedupe {http.request.header.X-GitHub-Delivery} 24h
		%[9]s
	}
	handle /quota {
		webhook_token %[5]s
		webhook_rate_limit 2 1h
		%[10]s
	}
	handle /payload {
		webhook_token %[5]s
		%[11]s
	}
	handle /answer {
		webhook_token %[5]s
		valohai_launch answer {
			project %[12]s
			execution train {
				commit main
			}
			response {
				content_type application/json
				body `+"`"+`{"run_id":"{run_id}","obj":"{webhook.json.obj}","text":"{webhook.json.text}","n":{webhook.json.n},"raw":{webhook.json.text}}`+"`"+`
			}
			wait 0s
		}
	}
	handle /sha512 {
		webhook_hmac {
			secret    %[6]s
			header    X-Signature
			algorithm sha512
			encoding  base64
		}
		respond "verified" 200
	}
	handle_path /_valohai/payloads/* {
		valohai_payloads
	}
	handle /alive {
		respond "still serving" 200
	}
}
`, f.hookAddr, f.simAddr, testToken, f.storeDir, hostileToken, hostileSecret,
		launch("filter", ""), launch("placeholder", ""), launch("github", ""),
		launch("quota", ""), launch("payload", "payload_input dataset"), testProject), f.hookAddr)
	return &hostileEnv{faultEnv: f, proc: proc}
}

// post sends body to path with the given Host header ("" for the real one).
func (h *hostileEnv) post(path, host string, body []byte, headers map[string]string) response {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+h.hookAddr+path, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		h.t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{res.StatusCode, res.Header, string(b)}
}

// launchesTitled counts the executions Valohai received whose title starts
// with prefix.
func (h *hostileEnv) launchesTitled(prefix string) int {
	n := 0
	for _, body := range h.env.executionCalls() {
		if title, _ := body["title"].(string); strings.HasPrefix(title, prefix) {
			n++
		}
	}
	return n
}

func (h *hostileEnv) alive() {
	h.t.Helper()
	r := h.env.do(http.MethodGet, "http://"+h.hookAddr+"/alive", nil, nil)
	if r.status != http.StatusOK || r.body != "still serving" {
		h.t.Fatalf("Caddy no longer serves: %d %q", r.status, r.body)
	}
}

func tokenHeaders(ct string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + hostileToken, "Content-Type": ct}
}

func TestHostileInputThroughBuiltBinary(t *testing.T) {
	h := startHostile(t)

	t.Run("10 MB of [ is a 400 and Caddy keeps serving", func(t *testing.T) {
		r := h.post("/filter", "", bytes.Repeat([]byte("["), 10<<20), tokenHeaders("application/json"))
		if r.status != http.StatusBadRequest || r.body != "webhook_filter: JSON nested deeper than 1000 levels" {
			t.Fatalf("%d %q, want 400 naming the depth", r.status, r.body)
		}
		h.alive()
		// A deep but small body in a placeholder: 400, not seconds of work.
		deep := []byte(strings.Repeat(`{"x":`, 50000) + "1" + strings.Repeat("}", 50000))
		r = h.post("/placeholder", "", deep, tokenHeaders("application/json"))
		if r.status != http.StatusBadRequest || r.body != "valohai_launch: JSON nested deeper than 1000 levels" {
			t.Fatalf("%d %q, want 400 naming the depth", r.status, r.body)
		}
		// 1000 levels is fine.
		ok := []byte(`{"ref":"refs/heads/main","deep":` + strings.Repeat("[", 998) + strings.Repeat("]", 998) + "}")
		if r = h.post("/filter", "", ok, tokenHeaders("application/json")); r.status != http.StatusAccepted {
			t.Fatalf("a body 1000 levels deep: %d %q", r.status, r.body)
		}
		h.alive()
	})

	t.Run("a full-length base64 signature without padding is a 400, not a panic", func(t *testing.T) {
		// 88 characters without "=" decode to 66 bytes, not a 64-byte
		// SHA-512 MAC (FuzzEd25519Headers found the decoder overrunning).
		r := h.post("/sha512", "", []byte(`{}`), map[string]string{"X-Signature": strings.Repeat("A", 87) + "B"})
		if r.status != http.StatusBadRequest || r.body != "webhook_hmac: malformed signature" {
			t.Fatalf("%d %q, want 400 malformed signature", r.status, r.body)
		}
		mac := hmac.New(sha512.New, []byte(hostileSecret))
		mac.Write([]byte(`{}`))
		r = h.post("/sha512", "", []byte(`{}`), map[string]string{"X-Signature": base64.StdEncoding.EncodeToString(mac.Sum(nil))})
		if r.status != http.StatusOK || r.body != "verified" {
			t.Fatalf("a good SHA-512 signature: %d %q", r.status, r.body)
		}
		h.alive()
	})

	t.Run("a duplicate key is a 400, read neither way", func(t *testing.T) {
		body := []byte(`{"ref":"refs/heads/evil","ref":"refs/heads/main"}`)
		r := h.post("/filter", "", body, tokenHeaders("application/json"))
		if r.status != http.StatusBadRequest || r.body != "webhook_filter: duplicate key in a JSON object" {
			t.Fatalf("%d %q, want 400 naming the duplicate key", r.status, r.body)
		}
		// Escaped spellings of one key are the same key.
		r = h.post("/placeholder", "", []byte(`{"a":{"ref":1,"r\u0065f":2}}`), tokenHeaders("text/plain"))
		if r.status != http.StatusBadRequest || r.body != "valohai_launch: duplicate key in a JSON object" {
			t.Fatalf("%d %q, want 400 naming the duplicate key", r.status, r.body)
		}
	})

	t.Run("the Host port does not open a new dedupe window or quota", func(t *testing.T) {
		body := []byte(`{"ref":"refs/heads/main","after":"abc"}`)
		mac := hmac.New(sha256.New, []byte(hostileSecret))
		mac.Write(body)
		headers := map[string]string{
			"X-Hub-Signature-256": "sha256=" + hex.EncodeToString(mac.Sum(nil)),
			"X-GitHub-Delivery":   "delivery-ports-1",
			"Content-Type":        "application/json",
		}
		_, port, _ := net.SplitHostPort(h.hookAddr)
		accepted := 0
		for _, host := range []string{"127.0.0.1:" + port, "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1"} {
			r := h.post("/github", host, body, headers)
			if r.status != http.StatusAccepted && r.status != http.StatusOK {
				t.Fatalf("Host %s: %d %q", host, r.status, r.body)
			}
			if r.header.Get("Webhook-Duplicate") != "true" {
				accepted++
			}
		}
		if accepted != 1 {
			t.Fatalf("one delivery sent on 5 Host ports was accepted %d times", accepted)
		}
		waitFor(t, "the delivery's launch", 20*time.Second, func() bool { return h.launchesTitled("github ") >= 1 })
		time.Sleep(500 * time.Millisecond)
		if n := h.launchesTitled("github "); n != 1 {
			t.Fatalf("one delivery launched %d times", n)
		}

		passed := 0
		for _, host := range []string{"127.0.0.1:" + port, "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4"} {
			r := h.post("/quota", host, []byte(`{}`), tokenHeaders("application/json"))
			switch r.status {
			case http.StatusAccepted, http.StatusOK:
				passed++
			case http.StatusBadRequest:
				if r.body != "webhook_rate_limit: quota exceeded" {
					t.Fatalf("Host %s: %q", host, r.body)
				}
			default:
				t.Fatalf("Host %s: %d %q", host, r.status, r.body)
			}
		}
		if passed != 2 {
			t.Fatalf("a quota of 2 let %d requests through on 5 Host ports", passed)
		}
	})

	t.Run("payload links are downloads, never active documents", func(t *testing.T) {
		html := []byte(`<html><script>window.stolen = document.cookie</script></html>`)
		r := h.post("/payload", "", html, tokenHeaders("text/html"))
		if r.status != http.StatusAccepted {
			t.Fatalf("%d %q", r.status, r.body)
		}
		var link string
		waitFor(t, "the payload launch", 20*time.Second, func() bool {
			for _, body := range h.env.executionCalls() {
				if title, _ := body["title"].(string); strings.HasPrefix(title, "payload ") {
					inputs, _ := body["inputs"].(map[string]any)
					list, _ := inputs["dataset"].([]any)
					if len(list) == 1 {
						link, _ = list[0].(string)
						return true
					}
				}
			}
			return false
		})
		res, err := http.Get(link)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !bytes.Equal(got, html) {
			t.Fatalf("payload: %d %q, want the posted bytes", res.StatusCode, got)
		}
		for name, want := range map[string]string{
			"Content-Type":            "application/octet-stream",
			"X-Content-Type-Options":  "nosniff",
			"Content-Security-Policy": "sandbox",
		} {
			if v := res.Header.Get(name); v != want {
				t.Errorf("%s: %q, want %q", name, v, want)
			}
		}
		if cd := res.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment") {
			t.Errorf("Content-Disposition %q, want attachment", cd)
		}
	})

	t.Run("the response block always answers valid JSON", func(t *testing.T) {
		body := []byte(`{"obj":{"a":[1,"</script>"]},"text":"\",\":1,\":","n":"1,\"injected\":true"}`)
		r := h.post("/answer", "", body, tokenHeaders("application/json"))
		if r.status != http.StatusOK {
			t.Fatalf("%d %q", r.status, r.body)
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(r.body), &got); err != nil {
			t.Fatalf("answer is not JSON: %v: %s", err, r.body)
		}
		if _, injected := got["injected"]; injected || len(got) != 5 {
			t.Fatalf("members were injected: %s", r.body)
		}
		if got["obj"] != `{"a":[1,"</script>"]}` || got["text"] != `",":1,":` || got["n"] != `1,"injected":true` || got["raw"] != `",":1,":` {
			t.Fatalf("values not kept as text: %s", r.body)
		}
	})

	t.Run("a 413 reaches clients that send the whole body first", func(t *testing.T) {
		oversized := 25<<20 + 1024
		node := fmt.Sprintf(`
const http = require('http');
const body = Buffer.alloc(%d, 0x61);
const req = http.request({host: '127.0.0.1', port: %s, path: '/filter', method: 'POST',
  headers: {'Authorization': 'Bearer %s', 'Content-Type': 'application/json', 'Content-Length': body.length}}, (res) => {
  let text = ''; res.on('data', (c) => text += c); res.on('end', () => { console.log(res.statusCode + ' ' + text); });
});
req.on('error', (e) => { console.log('error ' + e.message); });
req.end(body);
`, oversized, portOf(t, h.hookAddr), hostileToken)
		python := fmt.Sprintf(`
import http.client
c = http.client.HTTPConnection('127.0.0.1', %s, timeout=60)
try:
    c.request('POST', '/filter', body=b'a' * %d, headers={'Authorization': 'Bearer %s', 'Content-Type': 'application/json'})
    r = c.getresponse()
    print(r.status, r.read().decode())
except Exception as e:
    print('error', e)
`, portOf(t, h.hookAddr), oversized, hostileToken)
		for _, client := range []struct{ name, bin, flag, script string }{
			{"node", "node", "-e", node},
			{"python", "python3", "-c", python},
		} {
			if _, err := exec.LookPath(client.bin); err != nil {
				t.Fatalf("%s is not installed: the test command installs what the tests need", client.bin)
			}
			out, err := exec.Command(client.bin, client.flag, client.script).CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v: %s", client.name, err, out)
			}
			if got := strings.TrimSpace(string(out)); got != "413 webhook_token: body larger than 26214400 bytes" {
				t.Errorf("%s client read %q, want the 413", client.name, got)
			}
		}
		h.alive()
	})
}

func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// TestHostileAnnouncedBodiesCostNoMemory: 40 connections that announce a
// 25 MiB body and send 1 byte hold a buffer that grows as bytes arrive, not
// the announced size.
func TestHostileAnnouncedBodiesCostNoMemory(t *testing.T) {
	h := startHostile(t)
	h.alive()
	before := vmRSS(t, h.proc.cmd.Process.Pid)
	var conns []net.Conn
	for range 40 {
		c, err := net.Dial("tcp", h.hookAddr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "POST /filter HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{",
			h.hookAddr, hostileToken, 25<<20)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	time.Sleep(2 * time.Second) // every request is now in its handler, reading
	after := vmRSS(t, h.proc.cmd.Process.Pid)
	growth := after - before
	t.Logf("RSS %d MiB before, %d MiB with 40 announced 25 MiB bodies (+%d MiB)", before>>20, after>>20, growth>>20)
	if growth >= 150<<20 {
		t.Fatalf("RSS grew by %d MiB for 40 one-byte bodies", growth>>20)
	}
	h.alive()
	// The connections are still open and waiting: nothing was refused.
	for _, c := range conns[:1] {
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := bufio.NewReader(c).ReadByte(); err == nil {
			t.Fatal("a slow body was answered before it arrived")
		}
	}
}

// vmRSS reads a process's resident set size from /proc.
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}
