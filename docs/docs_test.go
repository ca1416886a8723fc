package docs

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// repoFiles lists the repository's tracked files (paths relative to its root).
func repoFiles(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("git", "-C", "..", "ls-files").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	return strings.Fields(string(out))
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
