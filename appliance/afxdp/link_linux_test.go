package afxdp

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/netns"
	"github.com/tcpinc/tcpinc/deploy/netns/netnstest"
)

// TestReadLink: ReadLink gives what the kernel says of an interface (the
// loopback here, as net.InterfaceByName sees it: its index, MTU, and that
// it is up and running) and ErrNoInterface for a name no interface has.
func TestReadLink(t *testing.T) {
	ifi, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	l, err := ReadLink("lo")
	if err != nil || l.Index != ifi.Index || l.MTU != ifi.MTU {
		t.Fatalf("ReadLink(lo) = %+v, %v; want index %d, MTU %d", l, err, ifi.Index, ifi.MTU)
	}
	if up, running := ifi.Flags&net.FlagUp != 0, ifi.Flags&net.FlagRunning != 0; l.Up != up || l.Running != running {
		t.Fatalf("ReadLink(lo) = %+v; want up %v, running %v (flags %v)", l, up, running, ifi.Flags)
	}
	if _, err := ReadLink("tdi-nonexist0"); !errors.Is(err, ErrNoInterface) {
		t.Fatalf("ReadLink of a missing interface: %v, want ErrNoInterface", err)
	}
}

// TestReadLinkState: a veth end is up and running while both ends are up;
// up but not running (no carrier) when its peer is set down, as a port
// whose cable is pulled; neither when it is set down itself.
func TestReadLinkState(t *testing.T) {
	netnstest.RequireRoot(t, "a veth pair in a namespace")
	const ns = "afxdp-link"
	netnstest.New(t, "afxdp-", ns)
	netnstest.Sh(t, "ip", "-n", ns, "link", "add", "p0", "type", "veth", "peer", "name", "p1")
	for _, c := range []struct {
		p0, p1      string // ip link set ... of each end
		up, running bool   // p0's
	}{
		{"up", "up", true, true},
		{"up", "down", true, false},
		{"down", "up", false, false},
		{"up", "up", true, true},
	} {
		netnstest.Sh(t, "ip", "-n", ns, "link", "set", "p0", c.p0)
		netnstest.Sh(t, "ip", "-n", ns, "link", "set", "p1", c.p1)
		// The kernel sets the operational state after the carrier
		// (linkwatch), at once for a veth's.
		var l Link
		var err error
		for end := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			err = netns.Do(ns, func() (err error) { l, err = ReadLink("p0"); return err })
			if err != nil || l.Up == c.up && l.Running == c.running || time.Now().After(end) {
				break
			}
		}
		if err != nil || l.Up != c.up || l.Running != c.running {
			t.Errorf("p0 %s, p1 %s: ReadLink(p0) = %+v, %v; want up %v, running %v", c.p0, c.p1, l, err, c.up, c.running)
		}
	}
}
