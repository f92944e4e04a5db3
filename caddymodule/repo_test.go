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

// markdownCitation is a Markdown file named in a file's text.
var markdownCitation = regexp.MustCompile(`[A-Za-z0-9_./$-]*[A-Za-z0-9_-]\.md\b`)

// benchOutputs are the Markdown files the bench scripts write into their
// results folder, not documents of the repository.
var benchOutputs = map[string]bool{"report.md": true, "summary.md": true}

// The contract lives in the repository: every Markdown document a file
// cites is in it (a web link aside), so README.md and docs/ are where the
// facts are, never a document the reader does not have.
func TestCitedDocumentsAreInTheRepository(t *testing.T) {
	mdNames := map[string]bool{}
	var files []string
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
		case ".md":
			mdNames[d.Name()] = true
			files = append(files, path)
		case ".go", ".sh", ".caddyfile", ".caddyfiletest", ".example", ".yml", ".yaml", ".py", ".lua", ".json":
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cited := 0
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			for _, loc := range markdownCitation.FindAllStringIndex(line, -1) {
				name := line[loc[0]:loc[1]]
				if strings.HasPrefix(name, "//") {
					continue // the path of a web link (https://...)
				}
				base := name[strings.LastIndex(name, "/")+1:]
				if benchOutputs[base] {
					continue
				}
				cited++
				if !mdNames[base] {
					t.Errorf("%s:%d cites %s, which is not in the repository: state the fact, or cite README.md or docs/", path, i+1, name)
				}
			}
		}
	}
	if cited < 20 {
		t.Fatalf("found only %d citations of Markdown files", cited)
	}
}
