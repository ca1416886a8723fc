package deploy_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDebianPackage builds the package with `make deb` and installs it with
// dpkg into a scratch root (its own dpkg database): the files are where
// the package says, the configuration is a conffile (kept on remove, gone
// on purge), the unit runs the packaged binary, and the installed tcpincd
// reports the version it was built with.
func TestDebianPackage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("dpkg --root needs root; CI runs as root")
	}
	for _, tool := range []string{"make", "dpkg", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (scripts/deps.sh installs it): %v", tool, err)
		}
	}
	out := t.TempDir()
	const version = "9.8.7-test"
	mk := exec.Command("make", "-C", "..", "deb", "OUT="+out, "DEB_VERSION=9.8.7", "VERSION="+version)
	if b, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make deb: %v\n%s", err, b)
	}
	debs, _ := filepath.Glob(filepath.Join(out, "tcpinc_9.8.7_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb made %v", debs)
	}
	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	dpkg := func(args ...string) string {
		t.Helper()
		b, err := exec.Command("dpkg", append([]string{"--root=" + root}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg %v: %v\n%s", args, err, b)
		}
		return string(b)
	}
	dpkg("-i", debs[0])
	files := map[string]os.FileMode{
		"usr/bin/tcpincd":                    0o755,
		"usr/bin/tcpincctl":                  0o755,
		"etc/tcpinc/tcpincd.yaml":            0o644,
		"lib/systemd/system/tcpincd.service": 0o644,
		"usr/share/doc/tcpinc/copyright":     0o644,
	}
	lua, _ := filepath.Glob(filepath.Join(root, "usr/lib/*/wireshark/plugins/tcpinc.lua"))
	if len(lua) != 1 {
		t.Errorf("dissector: %v", lua)
	}
	for p, mode := range files {
		st, err := os.Stat(filepath.Join(root, p))
		if err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: %v %v, want mode %v", p, st.Mode(), err, mode)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/tcpinc/tcpincd.yaml")); !bytes.Equal(b, mustRead(t, "tcpincd.example.yaml")) {
		t.Error("the packaged configuration is not deploy/tcpincd.example.yaml")
	}
	unit, _ := os.ReadFile(filepath.Join(root, "lib/systemd/system/tcpincd.service"))
	if !strings.Contains(string(unit), "ExecStart=/usr/bin/tcpincd --config /etc/tcpinc/tcpincd.yaml") {
		t.Errorf("unit does not run the packaged binary:\n%s", unit)
	}
	if s := dpkg("--status", "tcpinc"); !strings.Contains(s, "Status: install ok installed") || !strings.Contains(s, "/etc/tcpinc/tcpincd.yaml") {
		t.Errorf("dpkg --status:\n%s", s)
	}
	v, err := exec.Command(filepath.Join(root, "usr/bin/tcpincd"), "--version").Output()
	if err != nil || strings.TrimSpace(string(v)) != "tcpincd "+version {
		t.Errorf("tcpincd --version: %q, %v", v, err)
	}
	if h, err := exec.Command(filepath.Join(root, "usr/bin/tcpincctl"), "-h").CombinedOutput(); err != nil || !strings.Contains(string(h), "decode") {
		t.Errorf("tcpincctl -h: %v\n%s", err, h)
	}
	dpkg("--remove", "tcpinc")
	if _, err := os.Stat(filepath.Join(root, "usr/bin/tcpincd")); err == nil {
		t.Error("remove left tcpincd")
	}
	if _, err := os.Stat(filepath.Join(root, "etc/tcpinc/tcpincd.yaml")); err != nil {
		t.Errorf("remove took the conffile: %v", err)
	}
	dpkg("--purge", "tcpinc")
	if _, err := os.Stat(filepath.Join(root, "etc/tcpinc/tcpincd.yaml")); err == nil {
		t.Error("purge left the conffile")
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
