// Package netnstest has the helpers of tests that make network namespaces
// of their own: skip without root, run a command or fail with its output,
// and a namespace that is removed when the test ends, also on failure.
package netnstest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// RequireRoot skips t unless it runs as root; why says what needs it.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("this test needs root (%s); CI runs it as root", why)
	}
}

// Sh runs a command and fails t with its output on error.
func Sh(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// New creates namespace name, which must start with the caller's prefix so
// tests of different packages never share one, with its loopback up. A
// leftover of the same name goes first; the namespace goes when t ends.
func New(t testing.TB, prefix, name string) {
	t.Helper()
	if !strings.HasPrefix(name, prefix) {
		t.Fatalf("namespace %q lacks the %s prefix", name, prefix)
	}
	_ = exec.Command("ip", "netns", "del", name).Run()
	Sh(t, "ip", "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	Sh(t, "ip", "-n", name, "link", "set", "lo", "up")
}
