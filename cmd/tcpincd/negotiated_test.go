package main

import (
	"bytes"
	"errors"
	"log/slog"
	"net/netip"
	"os"
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
