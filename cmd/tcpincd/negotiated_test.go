package main

import (
	"bytes"
	"errors"
	"golang.org/x/sys/unix"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/config"
	"github.com/tcpinc/tcpinc/appliance/engine"
)

// TestNegotiatedDiskCopy: the set a daemon leaves in state_dir (written at
// its stop) is what the next one starts with when it finds no pin (here:
// no pin_dir), a held tuple kept engine.IdleLinger; a second daemon on the
// same copy is refused; a damaged copy stops the start, with what to do.
func TestNegotiatedDiskCopy(t *testing.T) {
	cfg := config.Default()
	cfg.Inside, cfg.Outside, cfg.PinDir, cfg.StateDir = "in", "out", "", t.TempDir()
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	in, out := netip.MustParseAddrPort("10.0.0.1:40000"), netip.MustParseAddrPort("192.0.2.1:443")

	n, err := openNegotiated(cfg, 16, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openNegotiated(cfg, 16, log); err == nil || !strings.Contains(err.Error(), "in use by another tcpincd") {
		t.Fatalf("a second daemon on the same copy: %v", err)
	}
	n.set.Restore(in, out, 0)
	n.close()

	if n, err = openNegotiated(cfg, 16, log); err != nil {
		t.Fatal(err)
	}
	if !n.set.Contains(in, out) || !strings.Contains(logged.String(), `from="disk copy"`) {
		t.Fatalf("the next daemon's set: %v\n%s", n.set.Contains(in, out), logged.String())
	}
	n.set.Each(func(_, _ netip.AddrPort, d int64) {
		if left := time.Duration(d - n.set.Mono()); left < engine.IdleLinger-time.Minute {
			t.Errorf("the held tuple is kept %v", left)
		}
	})
	path := n.file.Path()
	n.close()

	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = openNegotiated(cfg, 16, log)
	if err == nil || !strings.Contains(err.Error(), "move it away") {
		t.Fatalf("a damaged copy: %v", err)
	}
	if !errors.As(err, new(usageError)) {
		t.Fatal("a damaged copy is not an operator's error (exit status 2, no restart loop under systemd)")
	}
}

// After a reboot (nothing pinned), a disk copy that is refused leaves no
// pin behind: the operator puts the right copy back, and the next start
// loads it. Before, the refused start had pinned an empty map, which the
// next start took for the previous run's (a restart) and never read the
// copy: the formerly encrypted tuple passed in plaintext, and the next
// clean stop wrote the empty set over the good copy (a review of the
// merged disk copy).
func TestRefusedCopyLeavesNoPin(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root (bpffs): scripts/test.sh runs the tests as root")
	}
	pins := t.TempDir()
	if err := unix.Mount("bpf", pins, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(pins, unix.MNT_DETACH) })
	cfg := config.Default()
	cfg.Inside, cfg.Outside, cfg.PinDir, cfg.StateDir = "in", "out", pins, t.TempDir()
	log := slog.New(slog.DiscardHandler)
	in, out := netip.MustParseAddrPort("10.0.0.1:40000"), netip.MustParseAddrPort("192.0.2.1:443")

	n, err := openNegotiated(cfg, 16, log)
	if err != nil {
		t.Fatal(err)
	}
	n.set.Restore(in, out, 0)
	path := n.file.Path()
	n.close()
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	emptyDir := func() {
		t.Helper()
		ents, _ := filepath.Glob(filepath.Join(pins, "negotiated*"))
		for _, e := range ents {
			if err := os.Remove(e); err != nil {
				t.Fatal(err)
			}
		}
	}
	emptyDir() // the reboot
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := openNegotiated(cfg, 16, log); err == nil {
		t.Fatal("a damaged copy was not refused")
	}
	if ents, _ := filepath.Glob(filepath.Join(pins, "negotiated*")); len(ents) != 0 {
		t.Fatalf("the refused start left pins %v", ents)
	}
	if err := os.WriteFile(path, good, 0o600); err != nil { // the operator puts it right
		t.Fatal(err)
	}
	n, err = openNegotiated(cfg, 16, log)
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	if !n.set.Contains(in, out) {
		t.Fatal("the copy put back was not loaded: the tuple is not in the set")
	}
}
