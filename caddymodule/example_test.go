package caddymodule

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// buildCaddy builds ./cmd/caddy (what `go run ./cmd/caddy` runs) once per
// test binary.
var builtCaddy string

func buildCaddy(t *testing.T) string {
	t.Helper()
	if builtCaddy != "" {
		return builtCaddy
	}
	dir, err := os.MkdirTemp("", "caddy-valohai-bin")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "caddy")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/caddy")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/caddy: %v\n%s", err, out)
	}
	builtCaddy = bin
	return bin
}

func waitListening(t *testing.T, addr string, timeout time.Duration) {
	t.Helper()
	waitFor(t, addr+" listening", timeout, func() bool {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return true
		}
		return false
	})
}

// walkthrough returns the shell lines between the walkthrough markers of
// README.md, so the test runs exactly what a new user pastes.
func walkthrough(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- walkthrough:start -->\\s*```sh\\n(.*?)```\\s*<!-- walkthrough:end -->").FindSubmatch(raw)
	if m == nil {
		t.Fatal("README.md has no walkthrough block")
	}
	return string(m[1])
}

// TestExampleCaddyfileAndREADMEWalkthrough runs the built binary on
// Caddyfile.example from the repository root, as the README's first command
// does, then the README's curl lines, and checks the simulator recorded the
// executions.
func TestExampleCaddyfileAndREADMEWalkthrough(t *testing.T) {
	for _, tool := range []string{"curl", "openssl", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the README walkthrough needs %s: %v", tool, err)
		}
	}
	bin := buildCaddy(t)
	home := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "run", "--config", "Caddyfile.example")
	cmd.Dir = ".."
	// A fresh machine: its own data dir, and none of the production variables.
	cmd.Env = []string{"HOME=" + home, "XDG_DATA_HOME=" + filepath.Join(home, "data"), "XDG_CONFIG_HOME=" + filepath.Join(home, "config"), "PATH=" + os.Getenv("PATH")}
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("caddy output:\n%s", logs.String())
		}
	})
	waitListening(t, "127.0.0.1:8480", 30*time.Second)
	waitListening(t, "127.0.0.1:8481", 10*time.Second)

	sh := exec.Command("bash", "-euo", "pipefail", "-c", walkthrough(t))
	sh.Dir = ".."
	out, err := sh.CombinedOutput()
	if err != nil {
		t.Fatalf("README walkthrough failed: %v\n%s", err, out)
	}
	mustContain(t, string(out), `"status":"completed"`)

	mustContain(t, string(out), `"response_type":"ephemeral","text":"Started pipeline #`)

	res, err := http.Get("http://127.0.0.1:8481/__simulator/calls")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var calls []simCall
	if err := json.NewDecoder(res.Body).Decode(&calls); err != nil {
		t.Fatal(err)
	}
	launched := map[string]bool{}
	for _, c := range calls {
		if c.Status != http.StatusCreated {
			continue
		}
		var body struct {
			Step       string         `json:"step"`
			Title      string         `json:"title"`
			Commit     string         `json:"commit"`
			Parameters map[string]any `json:"parameters"`
		}
		if err := json.Unmarshal(c.Body, &body); err != nil {
			t.Fatal(err)
		}
		switch c.Path {
		case "/api/v0/executions/":
			launched["execution "+body.Step] = true
			if body.Step == "train" && (body.Commit != "6113728f27ae82c7b1a177c8d03f9e96e0adf246" || body.Parameters["epochs"] != float64(10)) {
				t.Fatalf("train execution body %+v", body)
			}
		case "/api/v0/pipelines/":
			launched["pipeline "+body.Title] = true
		case "/api/v0/projects/0190a8e3-5b8e-7a4c-9d1f-3c2b1a0e9f7d/fetch/":
			launched["fetch"] = true
		}
	}
	for _, want := range []string{"fetch", "execution train", "pipeline /predict by rick", "pipeline Labels: ANNOTATION_CREATED"} {
		if !launched[want] {
			t.Fatalf("simulator has no %q; it recorded %v\n%s", want, launched, out)
		}
	}

	// The example's Discord trigger, signed by the binary's own
	// `caddy valohai sign discord` with the demo key the example names: the
	// PING gets Discord's PONG.
	sign := exec.Command(bin, "valohai", "sign", "discord", "--secret", strings.Repeat("64", 32),
		"--body", `{"type":1,"id":"1","application_id":"2","token":"t","version":1}`, "--url", "http://127.0.0.1:8480/hooks/discord")
	signed, err := sign.Output()
	if err != nil {
		t.Fatalf("valohai sign discord: %v", err)
	}
	curl := string(signed[strings.Index(string(signed), "curl "):])
	pong, err := exec.Command("bash", "-euo", "pipefail", "-c", curl).CombinedOutput()
	if err != nil || !strings.Contains(string(pong), "HTTP/1.1 200") || !strings.HasSuffix(strings.TrimSpace(string(pong)), `{"type":1}`) {
		t.Fatalf("the example's Discord PING: %v\n%s", err, pong)
	}
}
