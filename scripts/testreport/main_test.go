package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const mod = "example.com/m"

// stream is `go test -json` for two packages: a passes, with one test that
// logs and one that skips; b has a failing subtest.
func stream(t *testing.T) string {
	t.Helper()
	var sb strings.Builder
	ev := func(action, pkg, test, output string) {
		b, err := json.Marshal(event{Action: action, Package: mod + "/" + pkg, Test: test, Output: output})
		if err != nil {
			t.Fatal(err)
		}
		sb.Write(b)
		sb.WriteByte('\n')
	}
	ev("start", "a", "", "")
	ev("run", "a", "TestLogs", "")
	ev("output", "a", "TestLogs", "=== RUN   TestLogs\n")
	ev("output", "a", "TestLogs", "    a_test.go:3: chatter\n")
	ev("output", "a", "TestLogs", "--- PASS: TestLogs (0.00s)\n")
	ev("pass", "a", "TestLogs", "")
	ev("run", "a", "TestRoot", "")
	ev("output", "a", "TestRoot", "=== RUN   TestRoot\n")
	ev("output", "a", "TestRoot", "    a_test.go:9: needs root\n")
	ev("output", "a", "TestRoot", "--- SKIP: TestRoot (0.00s)\n")
	ev("skip", "a", "TestRoot", "")
	ev("output", "a", "", "PASS\n")
	ev("output", "a", "", "ok  \t"+mod+"/a\t0.01s\n")
	ev("pass", "a", "", "")
	ev("start", "b", "", "")
	ev("run", "b", "TestBad", "")
	ev("output", "b", "TestBad", "=== RUN   TestBad\n")
	ev("run", "b", "TestBad/sub", "")
	ev("output", "b", "TestBad/sub", "=== RUN   TestBad/sub\n")
	ev("output", "b", "TestBad/sub", "    b_test.go:4: wrong answer\n")
	ev("output", "b", "TestBad/sub", "    --- FAIL: TestBad/sub (0.00s)\n")
	ev("fail", "b", "TestBad/sub", "")
	ev("output", "b", "TestBad", "--- FAIL: TestBad (0.00s)\n")
	ev("fail", "b", "TestBad", "")
	ev("output", "b", "", "FAIL\n")
	ev("output", "b", "", "FAIL\t"+mod+"/b\t0.01s\n")
	ev("fail", "b", "", "")
	return sb.String()
}

func allowList(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "skips.txt")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUnlistedSkipFails(t *testing.T) {
	var out strings.Builder
	code, err := run(strings.NewReader(stream(t)), &out, mod, allowList(t, "# nothing allowed\n"))
	if err != nil {
		t.Fatal(err)
	}
	if code != 1 {
		t.Errorf("exit code %d with a skip the list does not allow, want 1; output:\n%s", code, &out)
	}
	if !strings.Contains(out.String(), "  a TestRoot: a_test.go:9: needs root\n") {
		t.Errorf("the skip and its reason are not listed:\n%s", &out)
	}
}

func TestAllowedSkipPasses(t *testing.T) {
	var out strings.Builder
	code, err := run(strings.NewReader(stream(t)), &out, mod, allowList(t, "a TestRoot  runs as root only\n"))
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Errorf("exit code %d with the skip allowed, want 0; output:\n%s", code, &out)
	}
	if !strings.Contains(out.String(), "skipped (allowed): a TestRoot: a_test.go:9: needs root\n") {
		t.Errorf("the allowed skip is not reported:\n%s", &out)
	}
}

// TestPlainOutput: the package lines and what failed, as plain go test
// prints them; not the log of a passing test or the framing lines.
func TestPlainOutput(t *testing.T) {
	var out strings.Builder
	if _, err := run(strings.NewReader(stream(t)), &out, mod, allowList(t, "a TestRoot  runs as root only\n")); err != nil {
		t.Fatal(err)
	}
	want := "ok  \t" + mod + "/a\t0.01s\n" +
		"    b_test.go:4: wrong answer\n" +
		"    --- FAIL: TestBad/sub (0.00s)\n" +
		"--- FAIL: TestBad (0.00s)\n" +
		"FAIL\n" +
		"FAIL\t" + mod + "/b\t0.01s\n" +
		"skipped (allowed): a TestRoot: a_test.go:9: needs root\n"
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", &out, want)
	}
}

// TestUnfinishedPackage: a package whose stream ends without its result (go
// test killed) still shows what its running test said.
func TestUnfinishedPackage(t *testing.T) {
	s := stream(t)
	s = s[:strings.Index(s, `{"Action":"output","Package":"`+mod+`/b","Test":"TestBad","Output":"--- FAIL`)]
	var out strings.Builder
	if _, err := run(strings.NewReader(s), &out, mod, allowList(t, "a TestRoot  runs as root only\n")); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "wrong answer") {
		t.Errorf("the unfinished package's output is lost:\n%s", &out)
	}
}

func TestAllowListNeedsReason(t *testing.T) {
	if _, err := run(strings.NewReader(""), &strings.Builder{}, mod, allowList(t, "a TestRoot\n")); err == nil {
		t.Error("an allow-list entry without a reason was accepted")
	}
}
