package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/netns/netnstest"
)

// Two tcpinc-host processes (each with its own cgroup and sock_ops program)
// over loopback in a namespace of their own: the listener and the client
// print the same session ID, and the second connection resumes.
func TestListenConnect(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespace, BPF, cgroups")
	}
	bin := filepath.Join(t.TempDir(), "tcpinc-host")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ns := fmt.Sprintf("hmc-%d", os.Getpid())
	netnstest.New(t, "hmc-", ns)

	var srvOut bytes.Buffer
	srv := exec.Command("ip", "netns", "exec", ns, bin, "listen", "-addr", "127.0.0.1:7000", "-frame", "65000", "-rekey", "5")
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Signal(syscall.SIGTERM); srv.Wait() }()
	for i := 0; !strings.Contains(srvOut.String(), `"listening"`); i++ {
		if i > 100 {
			t.Fatalf("listener did not start: %s", srvOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, err := exec.Command("ip", "netns", "exec", ns, bin, "connect", "-addr", "127.0.0.1:7000",
		"-count", "2", "-bytes", "1000000", "-frame", "100", "-rekey", "5", "-split-init").Output()
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, out)
	}
	time.Sleep(300 * time.Millisecond)
	cl, sv := parse(t, string(out)), parse(t, srvOut.String())
	if len(cl) != 2 || len(sv) != 2 {
		t.Fatalf("records: client %d, server %d\n%s\n%s", len(cl), len(sv), out, srvOut.String())
	}
	for i := range 2 {
		c, s := cl[i], sv[i]
		if c.EchoOK == nil || !*c.EchoOK || !c.Encrypted || c.SessionID == "" || c.SessionID != s.SessionID ||
			c.Role != "A" || s.Role != "B" || c.SelfName != s.PeerName || c.Resumed != (i == 1) || s.Resumed != (i == 1) {
			t.Errorf("conn %d: client %+v\nserver %+v", i+1, c, s)
		}
	}
}

func parse(t *testing.T, out string) []record {
	var rs []record
	for _, l := range strings.Split(out, "\n") {
		var r record
		if json.Unmarshal([]byte(l), &r) == nil && r.Event == "conn" {
			rs = append(rs, r)
		}
	}
	return rs
}
