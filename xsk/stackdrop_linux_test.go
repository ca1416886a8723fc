package xsk

import (
	"net"
	"strings"
	"testing"
	"time"
)

// TestStackSlowPathNeverReachesTheStack: with SlowPathStack the classifier
// passes worker-bound frames to the kernel, and the TC ingress program drops
// them after the AF_PACKET taps, so the appliance namespace's own stack never
// answers one, even a SYN addressed to an address and MAC it owns. Before
// the bump is attached (and after it is closed) the same SYN is answered,
// so the test can fail.
func TestStackSlowPathNeverReachesTheStack(t *testing.T) {
	requireRoot(t)
	const host, bmp = "xskt-sdh", "xskt-sdb"
	newNetns(t, host)
	newNetns(t, bmp)
	vethPair(t, host, "h0", bmp, "p0")
	vethPair(t, bmp, "p1", host, "h1")
	sh(t, "ip", "-n", bmp, "addr", "add", "10.77.0.1/24", "dev", "p0")
	sh(t, "ip", "-n", host, "addr", "add", "10.77.0.2/24", "dev", "h0")
	mac := strings.Fields(sh(t, "ip", "-n", bmp, "-o", "link", "show", "p0"))
	var lladdr string
	for i, f := range mac {
		if f == "link/ether" && i+1 < len(mac) {
			lladdr = mac[i+1]
		}
	}
	// ARP would take the fast path to p1 and go unanswered: a static entry.
	sh(t, "ip", "-n", host, "neigh", "replace", "10.77.0.1", "lladdr", lladdr, "dev", "h0")
	var ln net.Listener
	if err := inNetns(bmp, func() (err error) { ln, err = net.Listen("tcp4", "10.77.0.1:7777"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	dial := func() error {
		return inNetns(host, func() error {
			c, err := net.DialTimeout("tcp4", "10.77.0.1:7777", 500*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return err
		})
	}
	if err := dial(); err != nil {
		t.Fatalf("without the bump the appliance's stack does not answer (the test cannot fail): %v", err)
	}
	p0, p1 := ifindexIn(t, bmp, "p0"), ifindexIn(t, bmp, "p1")
	var b *Bump
	if err := inNetns(bmp, func() (err error) {
		b, err = AttachBump(p0, p1, AttachOptions{SlowPath: SlowPathStack})
		if err == nil {
			err = b.SetFastPath(true)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := dial(); err == nil {
		t.Fatal("a SYN passed to the stack was answered")
	}
	st := b.Stats().Inside
	// The host's own traffic (IPv6 neighbour discovery and MLD reports,
	// whatever came before SetFastPath) may be passed too: every worker
	// reason ends in the stack, none at a socket.
	workers := st.SYN + st.FINRST + st.UnknownFlow + st.Truncated + st.Fragment + st.IPv6Ext + st.Unparsed + st.ICMPError + st.AllToXSK
	if st.SYN == 0 || st.ToStack != workers || st.StackDropped == 0 || st.ToXSK+st.NoSocket != 0 {
		t.Fatalf("inside counters %+v: want SYNs passed to the stack and dropped there", st)
	}
	if b.SlowPath() != SlowPathStack {
		t.Fatalf("SlowPath() = %s", b.SlowPath())
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := dial(); err != nil {
		t.Fatalf("after Close the drop program stays: %v", err)
	}
}

// TestZeroCopyAndGRO: a veth offers no zero-copy AF_XDP; GRO reads back
// what SetGRO set.
func TestZeroCopyAndGRO(t *testing.T) {
	requireRoot(t)
	const ns = "xskt-zc"
	newNetns(t, ns)
	vethPair(t, ns, "z0", ns, "z1")
	idx := ifindexIn(t, ns, "z0")
	if err := inNetns(ns, func() error {
		if zc, err := ZeroCopyCapable(idx); err != nil || zc {
			t.Errorf("veth zero-copy capable: %v, %v", zc, err)
		}
		for _, on := range []bool{true, false, true} {
			if err := SetGRO(idx, on); err != nil {
				return err
			}
			if got, err := GRO(idx); err != nil || got != on {
				t.Errorf("GRO after SetGRO(%v): %v, %v", on, got, err)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if out := sh(t, "ip", "netns", "exec", ns, "ethtool", "-k", "z0"); !strings.Contains(out, "generic-receive-offload: on") {
		t.Errorf("ethtool -k z0 after SetGRO(true):\n%s", out)
	}
}
