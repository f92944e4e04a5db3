package caddymodule

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

var updateFmt = flag.Bool("update-fmt", false, "rewrite every Caddyfile of the repository (and the caddyfile blocks of its Markdown) as caddy fmt writes it")

// The Caddyfiles of the repository that a user reads or copies:
// Caddyfile.example, the golden-test Caddyfiles, and the ```caddyfile
// blocks of README.md and docs/*.md. (bench/'s Caddyfiles are scenario
// fixtures, not yet held to this.)
var (
	wholeCaddyfiles    = []string{"../Caddyfile.example", "testdata/caddyfile_adapt/*.caddyfiletest"}
	markdownCaddyfiles = []string{"../README.md", "../docs/*.md"}
)

// goldenSeparator ends the Caddyfile half of a .caddyfiletest file.
const goldenSeparator = "\n----------\n"

// formatCaddyfileText is text as `caddy fmt` writes it.
func formatCaddyfileText(text string) string {
	return string(caddyfile.Format([]byte(text)))
}

// formatWholeFile formats a Caddyfile, or the Caddyfile half of a golden
// file.
func formatWholeFile(content string) string {
	if head, tail, ok := strings.Cut(content, goldenSeparator); ok {
		return strings.TrimRight(formatCaddyfileText(head+"\n"), "\n") + goldenSeparator + tail
	}
	return formatCaddyfileText(content)
}

// formatMarkdown formats each ```caddyfile block of a Markdown document,
// keeping the block's indentation (a block inside a list item), and
// reports where each block starts.
func formatMarkdown(content string) (string, []int, error) {
	lines := strings.Split(content, "\n")
	var starts []int
	for i := 0; i < len(lines); i++ {
		fence := strings.TrimLeft(lines[i], " ")
		if fence != "```caddyfile" {
			continue
		}
		indent := lines[i][:len(lines[i])-len(fence)]
		end := i + 1
		for end < len(lines) && strings.TrimSpace(lines[end]) != "```" {
			end++
		}
		if end == len(lines) {
			return "", nil, fmt.Errorf("line %d: a ```caddyfile block that is never closed", i+1)
		}
		starts = append(starts, i+2)
		body := make([]string, 0, end-i-1)
		for _, l := range lines[i+1 : end] {
			body = append(body, strings.TrimPrefix(l, indent))
		}
		formatted := strings.Split(strings.TrimRight(formatCaddyfileText(strings.Join(body, "\n")+"\n"), "\n"), "\n")
		for j, l := range formatted {
			if l != "" {
				formatted[j] = indent + l
			}
		}
		lines = append(lines[:i+1], append(formatted, lines[end:]...)...)
		i += len(formatted) + 1
	}
	return strings.Join(lines, "\n"), starts, nil
}

// firstDifference names the first line at which two texts differ.
func firstDifference(have, want string) string {
	h, w := strings.Split(have, "\n"), strings.Split(want, "\n")
	for i := range min(len(h), len(w)) {
		if h[i] != w[i] {
			return fmt.Sprintf("line %d is\n\t%q\ncaddy fmt writes\n\t%q", i+1, h[i], w[i])
		}
	}
	return fmt.Sprintf("it has %d lines, caddy fmt writes %d", len(h), len(w))
}

// Every Caddyfile a user may copy from the repository is already as `caddy
// fmt` writes it (tabs, one space between tokens, no aligned columns), so
// that pasting one and running `caddy fmt --overwrite` changes nothing.
// `go test ./caddymodule -run TestCaddyfilesAreFormatted -update-fmt`
// rewrites them.
func TestCaddyfilesAreFormatted(t *testing.T) {
	checked := 0
	check := func(patterns []string, format func(string) (string, error)) {
		for _, pattern := range patterns {
			files, err := filepath.Glob(pattern)
			if err != nil || len(files) == 0 {
				t.Fatalf("%s: no file (%v)", pattern, err)
			}
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				want, err := format(string(b))
				if err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				checked++
				if want == string(b) {
					continue
				}
				if *updateFmt {
					if err := os.WriteFile(f, []byte(want), 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				t.Errorf("%s is not as caddy fmt writes it: %s", f, firstDifference(string(b), want))
			}
		}
	}
	blocks := 0
	check(wholeCaddyfiles, func(s string) (string, error) { return formatWholeFile(s), nil })
	check(markdownCaddyfiles, func(s string) (string, error) {
		out, starts, err := formatMarkdown(s)
		blocks += len(starts)
		return out, err
	})
	if blocks < 40 {
		t.Fatalf("found only %d caddyfile blocks in the Markdown files", blocks)
	}
	t.Logf("%d files, %d caddyfile blocks in Markdown", checked, blocks)
}

// formatMarkdown formats only inside ```caddyfile blocks, and keeps a
// block's indentation.
func TestFormatMarkdown(t *testing.T) {
	in := "Text  with  spaces\n\n```caddyfile\nwebhook_token   {env.T}   # short\n```\n\n- item\n\n  ```caddyfile\n  webhook_hmac {\n      secret   {env.S}\n  }\n  ```\n```sh\na   b\n```\n"
	want := "Text  with  spaces\n\n```caddyfile\nwebhook_token {env.T} # short\n```\n\n- item\n\n  ```caddyfile\n  webhook_hmac {\n  \tsecret {env.S}\n  }\n  ```\n```sh\na   b\n```\n"
	got, starts, err := formatMarkdown(in)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if len(starts) != 2 || starts[0] != 4 || starts[1] != 10 {
		t.Fatalf("block starts %v, want [4 10]", starts)
	}
	if _, _, err := formatMarkdown("```caddyfile\nrespond ok\n"); err == nil {
		t.Fatal("an unclosed block passed")
	}
}
