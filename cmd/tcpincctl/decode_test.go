package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/keylog/keylogtest"
	"github.com/tcpinc/tcpinc/appliance/pcapng"
)

// decode writes each direction's plaintext, byte for byte what was sent,
// and says what it did; a capture the key log does not cover is an error.
func TestDecode(t *testing.T) {
	var data [2][][]byte
	for side, who := range []string{"client", "server"} {
		for i := 0; i < 4; i++ {
			data[side] = append(data[side], []byte(strings.Repeat(fmt.Sprintf("%s line %d\n", who, i), 40)))
		}
	}
	res, err := keylogtest.Build(keylogtest.Options{Data: data, RekeyAt: [2]int{2, 0}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	capPath, keyPath, out := filepath.Join(dir, "c.pcapng"), filepath.Join(dir, "keys"), filepath.Join(dir, "out")
	var buf bytes.Buffer
	w, _ := pcapng.NewWriter(&buf)
	for _, f := range res.Frames {
		_ = w.WritePacket(time.Unix(0, 0), f)
	}
	if err := os.WriteFile(capPath, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, []byte(res.KeyLog), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, "", nil, "decode", "--keylog", keyPath, "-o", out, capPath)
	if r.code != 0 {
		t.Fatalf("exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	for side, name := range []string{"1-192.0.2.1_40000-198.51.100.2_443.bin", "1-198.51.100.2_443-192.0.2.1_40000.bin"} {
		got, err := os.ReadFile(filepath.Join(out, name))
		if err != nil || !bytes.Equal(got, bytes.Join(data[side], nil)) {
			t.Fatalf("%s: %d bytes, %v\n%s", name, len(got), err, r.stdout)
		}
	}
	for _, want := range []string{"connection 1: 192.0.2.1:40000 -> 198.51.100.2:443: session ", "aes128gcm, fresh key exchange",
		"in 4 frames, 2 key generations, FINp", "in 4 frames, 1 key generation, FINp"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	// Another session's keys decrypt nothing.
	other, _ := keylogtest.Build(keylogtest.Options{Data: data})
	if err := os.WriteFile(keyPath, []byte(other.KeyLog), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, "", nil, "decode", "--keylog", keyPath, "-o", out, capPath)
	if r.code != 1 || !strings.Contains(r.stderr, "could be decrypted") || !strings.Contains(r.stdout, "authentication failed") {
		t.Fatalf("wrong key: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r = runCLI(t, "", nil, "decode", capPath); r.code != 2 {
		t.Fatalf("no --keylog: exit %d", r.code)
	}
}

// While the daemon writes a key log, status says so first.
func TestStatusWarning(t *testing.T) {
	fix, addr := daemon(t, "")
	fix.SetWarnings([]string{"KEY LOG ON: test"})
	r := runCLI(t, "", nil, "--admin", addr, "status")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "WARNING: KEY LOG ON: test\n") {
		t.Fatalf("exit %d:\n%s", r.code, r.stdout)
	}
}
