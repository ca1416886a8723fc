// Command testreport reads `go test -json` on its standard input and prints
// what a plain `go test` prints: each package's ok or FAIL line, build
// errors, and the output of what failed. It exits 1 when a test skipped that
// the allow-list (the file named by its argument) does not name, and lists
// each such test with its reason: a skipped test checks nothing, and a run
// where tests skipped quietly (no root, a tool missing) must not pass.
//
// scripts/test.sh runs it:
//
//	go test -json ./... | go run ./scripts/testreport -module M scripts/test-skips.txt
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string // build-output events
}

// skip is one skipped test.
type skip struct {
	pkg, test, reason string
}

// line is one line of a package's output and the test it belongs to.
type line struct {
	test, text string
}

// pkgState holds a running package's output until the package ends.
type pkgState struct {
	lines []line
	ended map[string]string // test -> pass, fail or skip
}

// report follows one `go test -json` stream.
type report struct {
	out    io.Writer
	module string // import path prefix taken off package names
	pkgs   map[string]*pkgState
	order  []string // packages in the order they started
	skips  []skip
}

func newReport(out io.Writer, module string) *report {
	return &report{out: out, module: strings.TrimSuffix(module, "/") + "/", pkgs: map[string]*pkgState{}}
}

func (r *report) pkg(name string) *pkgState {
	p := r.pkgs[name]
	if p == nil {
		p = &pkgState{ended: map[string]string{}}
		r.pkgs[name] = p
		r.order = append(r.order, name)
	}
	return p
}

func (r *report) event(e event) {
	if e.Action == "build-output" {
		fmt.Fprint(r.out, e.Output)
		return
	}
	if e.Package == "" {
		return
	}
	p := r.pkg(e.Package)
	switch e.Action {
	case "output":
		p.lines = append(p.lines, line{e.Test, e.Output})
	case "pass", "fail", "skip":
		if e.Test == "" {
			r.flush(e.Package)
			return
		}
		p.ended[e.Test] = e.Action
		if e.Action == "skip" {
			r.skips = append(r.skips, skip{r.short(e.Package), e.Test, p.reason(e.Test)})
		}
	}
}

// reason is what a skipped test logged: its t.Skip message.
func (p *pkgState) reason(test string) string {
	var msg []string
	for _, l := range p.lines {
		s := strings.TrimSpace(l.text)
		if l.test != test || strings.HasPrefix(s, "=== ") || strings.HasPrefix(s, "--- SKIP") {
			continue
		}
		msg = append(msg, s)
	}
	return strings.Join(msg, " ")
}

// flush prints a package's output as plain `go test` would: the output of
// tests that did not pass or skip (failed, or never ended: a timeout or a
// crash), and the package's own lines but the PASS before its ok line.
func (r *report) flush(name string) {
	p := r.pkgs[name]
	if p == nil {
		return
	}
	for _, l := range p.lines {
		switch {
		case p.ended[l.test] == "pass" || p.ended[l.test] == "skip":
		case strings.HasPrefix(l.text, "=== "):
		case l.test == "" && l.text == "PASS\n":
		default:
			fmt.Fprint(r.out, l.text)
		}
	}
	delete(r.pkgs, name)
}

// short is a package's path in the module.
func (r *report) short(pkg string) string {
	if pkg+"/" == r.module {
		return "."
	}
	return strings.TrimPrefix(pkg, r.module)
}

// finish prints what packages that never ended said, and the skips; it
// returns those the allow-list does not name.
func (r *report) finish(allowed map[string]bool) []skip {
	for _, name := range r.order {
		r.flush(name)
	}
	var bad []skip
	for _, s := range r.skips {
		if allowed[s.pkg+" "+s.test] {
			fmt.Fprintf(r.out, "skipped (allowed): %s %s: %s\n", s.pkg, s.test, s.reason)
		} else {
			bad = append(bad, s)
		}
	}
	return bad
}

// readAllowList reads lines of "package test reason"; # starts a comment.
// The reason is required: the list says why each skip is acceptable.
func readAllowList(path string) (map[string]bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	allowed := map[string]bool{}
	for i, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) < 3 {
			return nil, fmt.Errorf("%s:%d: want: package test reason", path, i+1)
		}
		allowed[f[0]+" "+f[1]] = true
	}
	return allowed, nil
}

func run(in io.Reader, out io.Writer, module, allowPath string) (int, error) {
	allowed, err := readAllowList(allowPath)
	if err != nil {
		return 2, err
	}
	r := newReport(out, module)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			// Not an event (go test writes a few errors as text): pass it on.
			fmt.Fprintln(out, sc.Text())
			continue
		}
		r.event(e)
	}
	if err := sc.Err(); err != nil {
		return 2, err
	}
	bad := r.finish(allowed)
	if len(bad) == 0 {
		return 0, nil
	}
	sort.Slice(bad, func(i, j int) bool { return bad[i].pkg+bad[i].test < bad[j].pkg+bad[j].test })
	fmt.Fprintf(out, "FAIL: %d tests skipped that %s does not allow (make them run, or add them there with the reason):\n", len(bad), allowPath)
	for _, s := range bad {
		fmt.Fprintf(out, "  %s %s: %s\n", s.pkg, s.test, s.reason)
	}
	return 1, nil
}

func main() {
	module := flag.String("module", "", "the module path, taken off package names")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: go test -json ... | testreport -module M ALLOWLIST")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 || *module == "" {
		flag.Usage()
		os.Exit(2)
	}
	code, err := run(os.Stdin, os.Stdout, *module, flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
	}
	os.Exit(code)
}
