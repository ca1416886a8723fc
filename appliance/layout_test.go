package appliance

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/tcpinc/tcpinc/"

// goTool finds the go command that runs the tests.
func goTool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err != nil {
		t.Skip("no go command to inspect the build with")
	}
	return p
}

// TestCoreImportsNoBackend: the data-plane core, the portable vocabulary
// and the port backends depend on each other only one way: the core on
// package bump and flow, never on a backend (appliance/afxdp, memport,
// xsk, afpacket) or on the control adapters; a backend never on the core.
func TestCoreImportsNoBackend(t *testing.T) {
	for pkg, never := range map[string][]string{
		"appliance":              {"appliance/afxdp", "appliance/memport", "appliance/control", "xsk", "afpacket"},
		"afpacket":               {"appliance", "appliance/control", "xsk"},
		"bump":                   {"appliance", "xsk"},
		"flow":                   {"appliance", "xsk", "bump", "flowtable"},
		"appliance/packet":       {"flowtable", "appliance", "xsk"},
		"appliance/memport":      {"appliance", "appliance/control", "xsk"},
		"appliance/afxdp":        {"appliance", "appliance/control", "appliance/memport", "appliance/afpacketport"},
		"appliance/backend":      {"appliance", "appliance/control", "appliance/memport"},
		"appliance/afpacketport": {"appliance", "appliance/control", "appliance/memport", "appliance/afxdp", "xsk"},
		"appliance/engine":       {"appliance", "xsk", "appliance/control"},
		"appliance/control":      {"appliance/afxdp", "appliance/memport", "xsk"},
		"appliance/admin":        {"appliance", "appliance/control"},
		"appliance/config":       {"appliance", "appliance/engine"},
		"flowtable":              {"appliance", "xsk", "bump"},
		"cmd/tcpincctl":          {"appliance", "xsk"},
		"appliance/keylog":       {"appliance", "xsk"},
		"appliance/negstate":     {"appliance", "xsk", "appliance/engine"}, // the engine's tests use it
		"appliance/tcpcrypt":     {"appliance", "xsk", "appliance/engine"},
	} {
		out, err := exec.Command(goTool(t), "list", "-deps", module+pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		deps := strings.Fields(string(out))
		for _, n := range never {
			if slices.Contains(deps, module+n) {
				t.Errorf("%s imports %s", pkg, n)
			}
		}
	}
}

// TestPortableBuild: everything but the AF_XDP backend and the daemon
// builds for a system without AF_XDP (darwin), the in-memory backend
// included, so the core's portable types stay in portable files.
func TestPortableBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles the standard library on a cold cache")
	}
	pkgs := []string{"appliance", "appliance/admin", "appliance/engine", "appliance/eno", "appliance/tcpcrypt",
		"appliance/packet", "appliance/memport", "appliance/afpacketport", "appliance/control", "appliance/negstate", "cryptopool", "flowtable", "flow", "bump",
		"cmd/tcpincctl"}
	args := []string{"build", "-o", os.DevNull}
	for _, p := range pkgs {
		args = append(args, module+p)
	}
	cmd := exec.Command(goTool(t), args...)
	cmd.Env = append(os.Environ(), "GOOS=darwin")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GOOS=darwin go build: %v\n%s", err, out)
	}
}
