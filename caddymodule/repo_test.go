package caddymodule

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// layoutEntry is a path at the start of a line of the README's Layout
// block.
var layoutEntry = regexp.MustCompile(`^([A-Za-z0-9_.][A-Za-z0-9_./-]*)`)

// The README's "Layout" section matches the tree: every directory that
// holds Go code is listed, and every path listed exists.
func TestReadmeLayoutMatchesTree(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Layout\n")
	if !ok {
		t.Fatal(`README.md has no "## Layout" section`)
	}
	_, block, _ := strings.Cut(section, "```\n")
	block, _, _ = strings.Cut(block, "```")
	listed := map[string]bool{}
	for _, line := range strings.Split(block, "\n") {
		m := layoutEntry.FindString(line)
		if m == "" {
			continue
		}
		for _, p := range strings.Split(strings.SplitN(line, "  ", 2)[0], ", ") {
			p = strings.TrimSpace(p)
			listed[strings.TrimSuffix(p, "/")] = true
			if _, err := os.Stat(filepath.Join("..", p)); err != nil {
				t.Errorf("README.md, Layout lists %s, which is not in the tree", p)
			}
		}
	}
	if len(listed) < 10 {
		t.Fatalf("read only %d entries from the Layout block", len(listed))
	}
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("..", path)
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && rel != "." || d.Name() == "testdata" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		dir := filepath.ToSlash(filepath.Dir(rel))
		if dir == "." {
			dir = filepath.Base(rel) // a root file such as plugin.go
			if strings.HasSuffix(dir, "_test.go") {
				return nil
			}
		}
		if !listed[dir] && !coveredByParent(dir, listed) {
			t.Errorf("README.md, Layout does not list %s, which holds Go code", dir)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// coveredByParent reports whether a listed folder's line speaks for dir:
// bench/ names its own subfolders.
func coveredByParent(dir string, listed map[string]bool) bool {
	return strings.HasPrefix(dir, "bench/") && listed["bench"]
}

// The contract lives in the repository: no file cites a document that is
// not in it (README.md and docs/ state the facts instead).
func TestNoCitationOfDocumentsOutsideTheRepository(t *testing.T) {
	outside := regexp.MustCompile(`\bSPEC\.md\b|\bDESIGN\.md\b|shared/SPEC`)
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && path != ".." || d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".go", ".md", ".sh", ".caddyfile", ".caddyfiletest", ".example", ".yml", ".yaml", ".py", ".lua":
		default:
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if outside.MatchString(line) && !strings.Contains(path, "repo_test.go") {
				t.Errorf("%s:%d cites a document outside the repository: %s", path, i+1, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
