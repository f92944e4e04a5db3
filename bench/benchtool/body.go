package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hooklaunch/caddy-valohai/internal/freeport"
)

// pushBody builds a GitHub push event of exactly size bytes: the fields a
// trigger reads (ref, after, head_commit), as many commit objects as fit,
// and a padding string for the last few bytes. A body of many small objects costs
// a JSON decoder what a real large delivery costs, unlike one long string.
func pushBody(size int) ([]byte, error) {
	type author struct {
		Name     string `json:"name"`
		Email    string `json:"email"`
		Username string `json:"username"`
	}
	type commit struct {
		ID        string   `json:"id"`
		TreeID    string   `json:"tree_id"`
		Distinct  bool     `json:"distinct"`
		Message   string   `json:"message"`
		Timestamp string   `json:"timestamp"`
		URL       string   `json:"url"`
		Author    author   `json:"author"`
		Added     []string `json:"added"`
		Removed   []string `json:"removed"`
		Modified  []string `json:"modified"`
	}
	mk := func(i int) commit {
		id := fmt.Sprintf("%040x", sha1.Sum([]byte(strconv.Itoa(i))))
		return commit{
			ID: id, TreeID: fmt.Sprintf("%040x", sha1.Sum([]byte("tree"+strconv.Itoa(i)))), Distinct: true,
			Message:   fmt.Sprintf("Train on the new labels, batch %d", i),
			Timestamp: "2026-11-01T12:00:00Z",
			URL:       "https://github.com/acme/demo/commit/" + id,
			Author:    author{Name: "Ada Lovelace", Email: "ada@example.com", Username: "ada"},
			Added:     []string{fmt.Sprintf("data/batch-%04d.csv", i)},
			Removed:   []string{},
			Modified:  []string{"valohai.yaml", "train.py"},
		}
	}
	head := mk(0)
	doc := map[string]any{
		"ref":         "refs/heads/main",
		"before":      strings.Repeat("0", 40),
		"after":       head.ID,
		"created":     false,
		"deleted":     false,
		"forced":      false,
		"compare":     "https://github.com/acme/demo/compare/000000000000...abcdef",
		"repository":  map[string]any{"id": 123456789, "name": "demo", "full_name": "acme/demo", "private": true, "default_branch": "main"},
		"pusher":      map[string]any{"name": "ada", "email": "ada@example.com"},
		"sender":      map[string]any{"login": "ada", "id": 42, "type": "User"},
		"head_commit": head,
		"commits":     []commit{},
		"pad":         "",
	}
	base, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	if len(base) > size {
		return nil, fmt.Errorf("size %d is below the %d bytes of a push event without commits", size, len(base))
	}
	one, err := json.Marshal(head)
	if err != nil {
		return nil, err
	}
	commits := []commit{}
	used := len(base)
	for i := 1; used+len(one)+1 <= size; i++ {
		c := mk(i)
		raw, _ := json.Marshal(c)
		if used+len(raw)+1 > size {
			break
		}
		commits = append(commits, c)
		used += len(raw) + 1 // a comma or the first element
	}
	doc["commits"] = commits
	for pass := 0; pass < 3; pass++ {
		out, err := json.Marshal(doc)
		if err != nil {
			return nil, err
		}
		if len(out) == size {
			return out, nil
		}
		pad := doc["pad"].(string)
		missing := size - len(out)
		if missing < 0 {
			if len(commits) == 0 {
				return nil, errors.New("cannot fit the body")
			}
			commits = commits[:len(commits)-1]
			doc["commits"] = commits
			continue
		}
		doc["pad"] = pad + strings.Repeat("x", missing)
	}
	return nil, fmt.Errorf("could not build a body of exactly %d bytes", size)
}

func cmdBody(args []string) error {
	fs := flag.NewFlagSet("body", flag.ContinueOnError)
	size := fs.Int("size", 1024, "body size in bytes")
	out := fs.String("o", "", "output file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("-o is required")
	}
	b, err := pushBody(*size)
	if err != nil {
		return err
	}
	return os.WriteFile(*out, b, 0o644)
}

// signHeaders returns the header lines a sender of the scheme sends for
// body at unix time ts:
//   - github: X-Hub-Signature-256: sha256=hex(HMAC-SHA256(secret, body))
//   - slack:  X-Slack-Signature: v0=hex(HMAC-SHA256(secret, "v0:ts:body"))
//     and X-Slack-Request-Timestamp: ts
//
// Both also carry X-GitHub-Event: push, which the chain's filter reads.
func signHeaders(scheme, secret string, body []byte, ts int64) ([]string, error) {
	if secret == "" {
		return nil, errors.New("an empty secret signs nothing")
	}
	mac := hmac.New(sha256.New, []byte(secret))
	switch scheme {
	case "github":
		mac.Write(body)
		return []string{
			"X-GitHub-Event: push",
			"X-Hub-Signature-256: sha256=" + hex.EncodeToString(mac.Sum(nil)),
		}, nil
	case "slack":
		fmt.Fprintf(mac, "v0:%d:", ts)
		mac.Write(body)
		return []string{
			"X-GitHub-Event: push",
			"X-Slack-Request-Timestamp: " + strconv.FormatInt(ts, 10),
			"X-Slack-Signature: v0=" + hex.EncodeToString(mac.Sum(nil)),
		}, nil
	}
	return nil, fmt.Errorf("unknown scheme %q (github or slack)", scheme)
}

func cmdSign(args []string) error {
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	scheme := fs.String("scheme", "github", "github or slack")
	secretEnv := fs.String("secret-env", "BENCH_SECRET", "environment variable holding the secret (kept off the command line)")
	bodyPath := fs.String("body", "", "body file")
	ts := fs.Int64("ts", 0, "unix timestamp to sign (default now)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	body, err := os.ReadFile(*bodyPath)
	if err != nil {
		return err
	}
	if *ts == 0 {
		*ts = time.Now().Unix()
	}
	lines, err := signHeaders(*scheme, os.Getenv(*secretEnv), body, *ts)
	if err != nil {
		return err
	}
	fmt.Println(strings.Join(lines, "\n"))
	return nil
}

// cmdPorts prints n distinct free loopback ports, one a line, outside the
// kernel's ephemeral range: run.sh restarts a server on the same port for
// every trial, and a port in that range may meanwhile become the source
// port of some connection (internal/freeport).
func cmdPorts(args []string) error {
	fs := flag.NewFlagSet("ports", flag.ContinueOnError)
	n := fs.Int("n", 1, "how many ports")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ports, err := freeport.Pick(*n)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	for _, p := range ports {
		fmt.Fprintln(&out, p)
	}
	_, err = os.Stdout.Write(out.Bytes())
	return err
}
