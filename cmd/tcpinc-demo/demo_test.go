package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/netns"
)

// TestDemoCI runs the demo in its non-interactive form, as CI does: two
// appliances in namespaces (prefix tdm-), an HTTP transfer with its sha256,
// a held connection whose session IDs must match at both ends, iperf3, a far
// host without an appliance, and the capture of the untrusted link (ENO
// options, no marker in encrypted payloads). It passes only when every
// check of the demo passes.
func TestDemoCI(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the demo needs root (network namespaces, XDP, AF_XDP); CI runs it as root")
	}
	var out, errs bytes.Buffer
	start := time.Now()
	code := run([]string{"--ci", "--prefix", "tdm-", "--net", "78"}, &out, &errs)
	t.Logf("demo output (%v):\n%s", time.Since(start).Round(time.Millisecond), out.String())
	if code != 0 {
		t.Fatalf("tcpinc-demo --ci exited %d:\n%s", code, errs.String())
	}
}

// TestDemoFailsWithoutEncryption: with the appliances' engine switched off
// (they forward everything in clear), the demo's checks catch it: exit 1,
// "engine not available", and the capture shows the marker.
func TestDemoFailsWithoutEncryption(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the demo needs root (network namespaces, XDP, AF_XDP); CI runs it as root")
	}
	conf := filepath.Join(t.TempDir(), "plain.yaml")
	if err := os.WriteFile(conf, []byte("engine:\n  enabled: false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errs bytes.Buffer
	code := run([]string{"--ci", "--prefix", "tdm-", "--net", "78", "--size", "1000000", "--iperf", "1", "--tcpincd-config", conf}, &out, &errs)
	if code != 1 || !strings.Contains(errs.String(), "engine not available") ||
		!strings.Contains(out.String(), "FAIL HTTP hA→hB: gwA added TCP-ENO to the SYN") ||
		!strings.Contains(out.String(), "FAIL HTTP hA→hB: no plaintext on the wire: the marker appears in") {
		t.Errorf("exit %d; stderr:\n%s\nstdout:\n%s", code, errs.String(), out.String())
	}
}

// TestRunFlags: bad flags exit 2 before anything is built or created.
func TestRunFlags(t *testing.T) {
	var o, e bytes.Buffer
	if code := run([]string{"--nope"}, &o, &e); code != 2 {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}
	if code := run([]string{"--ci", "extra"}, &o, &e); code != 2 {
		t.Errorf("extra argument: exit %d, want 2", code)
	}
	if code := run([]string{"-h"}, &o, &e); code != 0 {
		t.Errorf("-h: exit %d, want 0", code)
	}
}

// TestENOOption: the capture reader finds the ENO option among others and
// spells out the b bit.
func TestENOOption(t *testing.T) {
	s := segment{options: []byte{2, 4, 0x05, 0xb4, 1, 1, 4, 2, 69, 4, 0x01, 0x23}}
	c, ok := s.eno()
	if !ok || !bytes.Equal(c, []byte{0x01, 0x23}) {
		t.Fatalf("eno() = % x, %v", c, ok)
	}
	for _, tc := range []struct {
		contents []byte
		want     string
	}{
		{[]byte{0x01, 0x23}, "ENO [global b=1 a=0, x25519]"},
		{[]byte{0x21, 0x24, 0x23}, "ENO [p256, x448, x25519]"},
		{append([]byte{0x24, 0xa3}, make([]byte, 17)...), "ENO [x448, x25519 v=1 (17 bytes: resumption)]"},
		{nil, "ENO [empty]"},
	} {
		if got := describeENO(tc.contents); got != tc.want {
			t.Errorf("describeENO(% x) = %q, want %q", tc.contents, got, tc.want)
		}
	}
	for _, bad := range [][]byte{{2, 4, 0x05}, {69, 1}, {69, 9, 1}, {0, 69, 2}} {
		if c, ok := (segment{options: bad}).eno(); ok {
			t.Errorf("options % x: found ENO % x in a malformed list", bad, c)
		}
	}
}

// TestStatusProxy: the proxy reaches a server that listens only on the
// loopback of another namespace.
func TestStatusProxy(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	const ns = "tdm-proxy"
	env := netns.NewEnv()
	t.Cleanup(func() {
		if err := env.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := env.AddNamespace(ns); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "ui"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ui", "index.html"), []byte("inside the namespace"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, err := env.Start(ns, "http", "python3", "-u", "-m", "http.server", "9470", "--bind", "127.0.0.1", "--directory", dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.WaitOutput("Serving HTTP", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	u, stop, err := statusProxy(ns, "127.0.0.1:9470")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	res, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || string(body) != "inside the namespace" {
		t.Fatalf("GET %s: %d %q", u, res.StatusCode, body)
	}
}
