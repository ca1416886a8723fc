package docs

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// repoFiles lists the repository's tracked files (paths relative to its
// root). Where git cannot list them (an export made with git archive, no
// git, or git refusing a checkout another user owns) it walks the tree
// instead, leaving out what .gitignore names: skipping would let these
// checks pass without looking.
func repoFiles(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("git", "-C", "..", "ls-files").Output()
	if err == nil {
		return strings.Fields(string(out))
	}
	t.Logf("git ls-files: %v; walking the tree instead", err)
	files, err := walkFiles("..")
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// walkFiles lists the files under root (relative to it) but .git and those
// .gitignore names. It knows the two forms .gitignore uses: a name matched
// anywhere ("*.out"), and a path from the root ("/bin/"); a trailing slash
// names a directory.
func walkFiles(root string) ([]string, error) {
	ignore, err := os.ReadFile(filepath.Join(root, ".gitignore"))
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	ignored := func(rel string, dir bool) bool {
		for _, p := range strings.Split(string(ignore), "\n") {
			p = strings.TrimSpace(p)
			if p == "" || strings.HasPrefix(p, "#") || strings.HasSuffix(p, "/") && !dir {
				continue
			}
			p = strings.TrimSuffix(p, "/")
			name := filepath.Base(rel)
			if strings.HasPrefix(p, "/") {
				p, name = p[1:], rel
			}
			if ok, _ := filepath.Match(p, name); ok {
				return true
			}
		}
		return false
	}
	var files []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case d.Name() == ".git" || ignored(rel, d.IsDir()):
			if d.IsDir() {
				return filepath.SkipDir
			}
		case !d.IsDir():
			files = append(files, rel)
		}
		return nil
	})
	return files, err
}

func readAll(t *testing.T, files []string, keep func(string) bool) map[string]string {
	t.Helper()
	texts := map[string]string{}
	for _, f := range files {
		if !keep(f) {
			continue
		}
		b, err := os.ReadFile(filepath.Join("..", f))
		if err != nil {
			t.Fatal(err)
		}
		texts[f] = string(b)
	}
	return texts
}

// TestRequirementIDsAreListed: every requirement id that code or tests cite
// (ENO-n, TC-n, ENO-Dn, TC-Dn, U-n) has a row in requirements.md.
func TestRequirementIDsAreListed(t *testing.T) {
	files := repoFiles(t)
	checklist, err := os.ReadFile("requirements.md")
	if err != nil {
		t.Fatal(err)
	}
	protocol, err := os.ReadFile("protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	row := regexp.MustCompile(`(?m)^\| ((?:ENO|TC|U)-D?[0-9]+) \|`)
	for _, doc := range [][]byte{checklist, protocol} {
		for _, m := range row.FindAllSubmatch(doc, -1) {
			listed[string(m[1])] = true
		}
	}
	cite := regexp.MustCompile(`\b(?:ENO|TC|U)-D?[0-9]+\b`)
	code := readAll(t, files, func(f string) bool { return strings.HasSuffix(f, ".go") })
	if len(code) == 0 {
		t.Fatal("no Go files found")
	}
	for f, text := range code {
		for _, id := range cite.FindAllString(text, -1) {
			if !listed[id] {
				t.Errorf("%s cites %s, which docs/requirements.md does not list", f, id)
			}
		}
	}
}

// TestCitedDocumentsExist: every Markdown file that code or the README names
// is in the repository.
func TestCitedDocumentsExist(t *testing.T) {
	files := repoFiles(t)
	base := map[string]bool{}
	for _, f := range files {
		base[filepath.Base(f)] = true
		base[f] = true
	}
	md := regexp.MustCompile(`[A-Za-z0-9_./-]+\.md\b`)
	texts := readAll(t, files, func(f string) bool {
		return strings.HasSuffix(f, ".go") || f == "README.md" || strings.HasPrefix(f, "docs/")
	})
	for f, text := range texts {
		for _, name := range md.FindAllString(text, -1) {
			name = strings.TrimPrefix(name, "./")
			name = strings.TrimPrefix(name, "../")
			if !base[name] && !base[filepath.Base(name)] {
				t.Errorf("%s names %s, which is not in the repository", f, name)
			}
		}
	}
}

// maxSourceLines bounds a non-test Go file: files by concern, each one
// readable in a sitting.
const maxSourceLines = 800

// TestSourceFilesStaySmall: no non-test Go file is longer than
// maxSourceLines; a file that grows past it is split by concern.
func TestSourceFilesStaySmall(t *testing.T) {
	texts := readAll(t, repoFiles(t), func(f string) bool {
		return strings.HasSuffix(f, ".go") && !strings.HasSuffix(f, "_test.go")
	})
	for f, text := range texts {
		if n := strings.Count(text, "\n"); n > maxSourceLines {
			t.Errorf("%s has %d lines, more than %d: split it by concern", f, n, maxSourceLines)
		}
	}
}

// TestWalkFiles: the walk repoFiles falls back to leaves out .git and what
// .gitignore names, in both of its forms, and keeps the rest.
func TestWalkFiles(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{
		".gitignore", "go.mod", "README.md", "docs/notes.txt", "cmd/x/main.go", "cmd/x/x.test",
		".git/HEAD", "sub/.git", "bin/tool", "bench/tmp/run.go", "bench/tmp.go", "tcpinc-bench",
		"cmd/tcpinc-bench/main.go",
	} {
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		text := ""
		if f == ".gitignore" {
			text = "# built\n/bin/\n*.test\n/bench/tmp/\n/tcpinc-*\n"
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := walkFiles(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{".gitignore", "README.md", "bench/tmp.go", "cmd/tcpinc-bench/main.go", "cmd/x/main.go", "docs/notes.txt", "go.mod"}
	if !slices.Equal(got, want) {
		t.Errorf("walkFiles = %q, want %q", got, want)
	}
}
