package netns

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if err := RequireRoot(); err != nil {
		t.Skip(err.Error() + "; CI runs these tests as root")
	}
}

func TestEnvLifecycle(t *testing.T) {
	requireRoot(t)
	e := NewEnv()
	t.Cleanup(func() { _ = e.Close() })
	const a, b = "tt-ns-a", "tt-ns-b"
	for _, ns := range []string{a, b} {
		if err := e.AddNamespace(ns); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.AddVeth(a, "p0", b, "p1", 1400); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ ns, ifc, v4, v6 string }{
		{a, "p0", "10.250.0.1/24", "fd00:250::1/64"},
		{b, "p1", "10.250.0.2/24", "fd00:250::2/64"},
	} {
		if err := e.AddAddr(c.ns, c.ifc, c.v4); err != nil {
			t.Fatal(err)
		}
		if err := e.AddAddr(c.ns, c.ifc, c.v6); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.AddRoute(a, "10.251.0.0/24", "via", "10.250.0.2"); err != nil {
		t.Fatal(err)
	}
	if err := e.Sysctl(b, "net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	if err := e.Ethtool(a, "p0", "tx", "off", "tso", "off"); err != nil {
		t.Fatal(err)
	}
	// nodad makes the v6 address usable at once.
	for _, dst := range []string{"10.250.0.2", "fd00:250::2"} {
		if out, err := e.Run(a, "ping", "-c", "1", "-W", "2", dst); err != nil {
			t.Fatalf("ping %s: %v\n%s", dst, err, out)
		}
	}
	if out, _ := Run(a, "ip", "link", "show", "p0"); !strings.Contains(out, "mtu 1400") {
		t.Errorf("mtu not applied:\n%s", out)
	}
	if out, _ := Run(b, "sysctl", "-n", "net.ipv4.ip_forward"); strings.TrimSpace(out) != "1" {
		t.Errorf("sysctl not applied: %q", out)
	}

	// A background process with a child: both must die with the group.
	p, err := e.Start(a, "sleeper", "sh", "-c", "sleep 300 & echo started; wait")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitOutput("started", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	pids, err := Pids(a)
	if err != nil || len(pids) < 2 {
		t.Fatalf("pids in %s: %v %v (want the shell and its sleep)", a, pids, err)
	}

	// A failing cleanup step must not stop the others.
	e.Defer("failing step", func() error { return errors.New("boom") })

	err = e.Close()
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("Close: want the failing step's error, got %v", err)
	}
	for _, ns := range []string{a, b} {
		if Exists(ns) {
			t.Errorf("namespace %s survived Close", ns)
		}
	}
	for _, pid := range pids {
		if Alive(pid) {
			t.Errorf("process %d survived Close", pid)
		}
	}
	if err := e.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestDeleteKillsStragglers(t *testing.T) {
	requireRoot(t)
	const ns = "tt-ns-c"
	e := NewEnv()
	t.Cleanup(func() { _ = e.Close() })
	if err := e.AddNamespace(ns); err != nil {
		t.Fatal(err)
	}
	// A process not started through the Env (say, by a test that forgot it),
	// which ignores SIGTERM.
	p, err := StartProcess(ns, "stubborn", "sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitOutput("ready", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := Delete(ns, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	if Exists(ns) {
		t.Error("namespace survived Delete")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Delete took %v", d)
	}
	// A stale namespace of the same name is replaced by AddNamespace.
	if _, err := Cmd("ip", "netns", "add", ns); err != nil {
		t.Fatal(err)
	}
	if err := e.AddNamespace(ns); err != nil {
		t.Fatalf("AddNamespace over a stale one: %v", err)
	}
}

func TestProcessStopAndOutput(t *testing.T) {
	requireRoot(t)
	p, err := StartProcess("", "echo", "sh", "-c", "echo out; echo err >&2; sleep 300")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitOutput("err", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.Output(), "out") {
		t.Errorf("stdout missing: %q", p.Output())
	}
	if done, _ := p.Exited(); done {
		t.Fatal("exited early")
	}
	_ = p.StopWith(syscall.SIGINT, time.Second)
	if done, _ := p.Exited(); !done {
		t.Error("still running after Stop")
	}
	if Alive(p.Pid()) {
		t.Error("pid alive after Stop")
	}
	// WaitOutput on an exited process fails fast with the output.
	if err := p.WaitOutput("never", time.Minute); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Errorf("WaitOutput after exit: %v", err)
	}
}

func TestCmdErrorKeepsOutput(t *testing.T) {
	_, err := Cmd("sh", "-c", "echo why >&2; exit 3")
	var ce *CmdError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "why") {
		t.Fatalf("got %v", err)
	}
	if got := ExecArgs("x", "a"); strings.Join(got, " ") != "ip netns exec x a" {
		t.Errorf("ExecArgs: %v", got)
	}
	if got := ExecArgs("", "a"); len(got) != 1 {
		t.Errorf("ExecArgs host: %v", got)
	}
}

func TestOutputCap(t *testing.T) {
	var b outBuf
	b.changed = make(chan struct{})
	chunk := make([]byte, 1<<20)
	for i := 0; i < 6; i++ {
		_, _ = b.Write(chunk)
	}
	if s, _ := b.snapshot(); len(s) > maxOutput {
		t.Errorf("buffer %d bytes, cap %d", len(s), maxOutput)
	}
}

func TestVLANEmulation(t *testing.T) {
	requireRoot(t)
	// Two namespaces joined by a veth, a VLAN 100 sub-interface on each end,
	// addresses only on the VLAN: traffic must flow, tagged on the veth.
	e := NewEnv()
	t.Cleanup(func() { _ = e.Close() })
	const a, b = "tt-ns-va", "tt-ns-vb"
	for _, ns := range []string{a, b} {
		if err := e.AddNamespace(ns); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.AddVeth(a, "eth0", b, "eth0", 1500); err != nil {
		t.Fatal(err)
	}
	for i, ns := range []string{a, b} {
		dev, err := e.AddVLAN(ns, "eth0", 100)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.AddAddr(ns, dev, []string{"10.252.0.1/24", "10.252.0.2/24"}[i]); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := Run(a, "ping", "-c", "2", "-i", "0.2", "-W", "2", "10.252.0.2"); err != nil {
		t.Fatalf("ping over VLAN: %v\n%s", err, out)
	}
	// Untagged traffic on the parent is left alone by the pop program.
	if err := e.AddAddr(a, "eth0", "10.253.0.1/24"); err != nil {
		t.Fatal(err)
	}
	if err := e.AddAddr(b, "eth0", "10.253.0.2/24"); err != nil {
		t.Fatal(err)
	}
	if out, err := Run(a, "ping", "-c", "1", "-W", "2", "10.253.0.2"); err != nil {
		t.Fatalf("untagged ping: %v\n%s", err, out)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(pinDir(a)); len(ents) != 0 {
		t.Errorf("bpffs pins left after Close: %v", ents)
	}
}
