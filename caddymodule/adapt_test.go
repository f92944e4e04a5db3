package caddymodule

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

var updateAdapt = flag.Bool("update-adapt", false, "rewrite the JSON half of testdata/caddyfile_adapt/*.caddyfiletest from the current adapter")

// TestCaddyfileAdapt runs the golden files of testdata/caddyfile_adapt, in
// the format of Caddy's own caddytest/integration/caddyfile_adapt: a
// Caddyfile, a line of ten dashes, then either the JSON config the
// Caddyfile adapts to (indented with tabs) or, for a config mistake, text
// the adapter's error must contain.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/caddyfile_adapt/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			input, want, ok := strings.Cut(string(data), "----------")
			if !ok {
				t.Fatalf("no ---------- line between the Caddyfile and the expected result")
			}
			input = strings.TrimSpace(input) + "\n"
			want = strings.TrimSpace(want)
			got, err := adapt(input)
			if !strings.HasPrefix(want, "{") {
				if err == nil {
					t.Fatalf("adapted without error; want an error containing %q", want)
				}
				if !strings.Contains(err.Error(), want) {
					t.Fatalf("error:\n%v\nwant it to contain:\n%s", err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("adapting: %v", err)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, got, "", "\t"); err != nil {
				t.Fatal(err)
			}
			if *updateAdapt {
				if err := os.WriteFile(file, []byte(input+"----------\n"+pretty.String()+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if pretty.String() != want {
				t.Fatalf("adapted JSON differs from the golden file\ngot:\n%s\nwant:\n%s", pretty.String(), want)
			}
		})
	}
}

// Every handler of this plugin, and the valohai global option, has golden
// files: a JSON one (what it adapts to) and an error one.
func TestCaddyfileAdaptCoversEveryDirective(t *testing.T) {
	names := []string{"valohai"}
	for _, m := range caddy.GetModules("http.handlers") {
		if n := m.ID.Name(); strings.HasPrefix(n, "webhook_") || strings.HasPrefix(n, "valohai_") {
			names = append(names, n)
		}
	}
	if len(names) < 10 {
		t.Fatalf("found only %v among Caddy's handler modules", names)
	}
	files, _ := filepath.Glob("testdata/caddyfile_adapt/*.caddyfiletest")
	for _, name := range names {
		var asJSON, asError bool
		for _, f := range files {
			data, _ := os.ReadFile(f)
			input, want, _ := strings.Cut(string(data), "----------")
			if !strings.Contains(input, "\t"+name+" ") && !strings.Contains(input, "\t"+name+"\n") {
				continue
			}
			if strings.HasPrefix(strings.TrimSpace(want), "{") {
				asJSON = true
			} else {
				asError = true
			}
		}
		if name != "valohai_payloads" && !asError {
			t.Errorf("%s: no golden file of a config mistake (an unknown sub-directive) in testdata/caddyfile_adapt", name)
		}
		if !asJSON {
			t.Errorf("%s: no golden file of its adapted JSON in testdata/caddyfile_adapt", name)
		}
	}
}

// Status means one thing: a handler that turns no request away for
// failing a check refuses a status in its JSON config too (the Caddyfile
// refuses the line, see the error_*_status golden files), rather than
// ignoring it.
func TestStatusRefusedWhereNothingIsRejected(t *testing.T) {
	dir := t.TempDir()
	cfg, err := adapt(`{
	admin off
	storage file_system ` + dir + `/caddy
	valohai {
		api_token t
		store file ` + dir + `/valohai
	}
}

http://127.0.0.1:0 {
	route /launch {
		valohai_launch t {
			project p
			fetch_repository
		}
	}
	route /info {
		valohai_run_info
	}
}
`)
	if err != nil {
		t.Fatal(err)
	}
	for _, handler := range []string{"valohai_launch", "valohai_run_info"} {
		t.Run(handler, func(t *testing.T) {
			marker := `"handler":"` + handler + `"`
			if !bytes.Contains(cfg, []byte(marker)) {
				t.Fatalf("no %s in the adapted config", marker)
			}
			withStatus := bytes.Replace(cfg, []byte(marker), []byte(marker+`,"status":503`), 1)
			err := caddy.Load(withStatus, true)
			if err == nil {
				_ = caddy.Stop()
				t.Fatalf("%s with a status loaded", handler)
			}
			if !strings.Contains(err.Error(), handler) || !strings.Contains(err.Error(), "status 503") || !strings.Contains(err.Error(), "rejects no request") {
				t.Fatalf("error %q does not name %s, its status and why", err, handler)
			}
		})
	}
}
