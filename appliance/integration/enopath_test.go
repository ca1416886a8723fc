package integration

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/netns"
	"github.com/tcpinc/tcpinc/deploy/topology"
)

// Paths that lose TCP-ENO after the SYNs (RFC 8547 §9, type-2 failures;
// docs/protocol.md §7): rtr passes the SYNs' options and strips or drops
// TCP-ENO on every later segment. hA's first connection to hB fails
// cleanly (both hosts reset, hB's server never reads a byte of Init1), and
// the appliance that saw it remembers the far address: the next transfer
// is plain from its SYN and completes.

// enoPathTransfers runs a transfer from hA to hB that must fail, then one
// that must complete, and returns the first, the second and the counter
// deltas of both appliances.
func enoPathTransfers(t *testing.T, e *encEnv, rules string) (first, second result, d map[topology.Node]statusCounters, ok bool) {
	t.Helper()
	if err := netns.Nft(e.topo.NS(topology.Router), rules); err != nil {
		t.Fatal(err)
	}
	dst := netip.AddrPortFrom(e.topo.Addr(topology.HostB).V4, 5001)
	const n = 1 << 20
	d, ok = e.measure(t, func() {
		first = e.transfer(t, topology.HostA, dst, e.streamB, n, n, time.Minute)
		second = e.transfer(t, topology.HostA, dst, e.streamB, n, n, time.Minute)
	})
	if first.clientErr == nil {
		t.Fatalf("the first transfer completed over a path that loses TCP-ENO after the SYNs:\n%s", first.clientOut)
	}
	t.Logf("first transfer: %v after %v", first.clientErr, first.elapsed.Round(time.Millisecond))
	checkTransfer(t, second, n, n)
	return first, second, d, ok
}

// TestENOStrippedAfterSYNs: rtr blanks TCP-ENO in every segment after the
// SYNs (nftables `reset tcp option`). gwB falls back at hA's third segment
// (ENO-28) while gwA encrypts (ENO-34); gwB finds Init1 where hA's first
// bytes should be, drops it and resets both hosts at once. Before, hB's
// server read Init1 as the header of a stream (and the transfer failed
// 30 s later), and every later connection failed the same way.
func TestENOStrippedAfterSYNs(t *testing.T) {
	e := newEncEnv(t, 78)
	first, second, d, ok := enoPathTransfers(t, e, `table inet tcpinc_enostrip {
  chain forward {
    type filter hook forward priority -20; policy accept;
    tcp flags & syn == 0 tcp option 69 exists counter reset tcp option 69
  }
}
`)
	if first.elapsed > 10*time.Second {
		t.Errorf("the first transfer failed after %v, want at once", first.elapsed.Round(time.Millisecond))
	}
	// The server got no header: it read nothing before the RST.
	if !headerFailed(e.streamB.Output(), e.topo.Addr(topology.HostA).V4, first.local, second.local) {
		t.Errorf("hB's server read the first connection's header (Init1 reached it?); its output:\n%s", e.streamB.Output())
	}
	if !ok {
		return
	}
	if b := d[topology.GwB]; b.Events["eno_path_failures"] != 1 || b.Fallbacks["eno_path_stripped"] != 1 {
		t.Errorf("gwB: events %v, fallbacks %v; want one eno_path_failures and one eno_path_stripped", nonZero(b.Events), nonZero(b.Fallbacks))
	}
}

// headerFailed reports whether the stream server's output shows the first
// connection's header read ending in an error. The client knows its
// address only if its connect completed: the reset can reach hA before
// the dial's own check of the socket (a "connect: connection reset"), and
// then the first connection is the one from src that is not the second's.
func headerFailed(out string, src netip.Addr, first, second netip.AddrPort) bool {
	if first.IsValid() {
		return strings.Contains(out, fmt.Sprintf("conn %v: header:", first))
	}
	for _, line := range strings.Split(out, "\n") {
		var addr string
		if _, err := fmt.Sscanf(line, "conn %s header:", &addr); err != nil {
			continue
		}
		ap, err := netip.ParseAddrPort(strings.TrimSuffix(addr, ":"))
		if err == nil && ap.Addr().Unmap() == src && ap != second {
			return true
		}
	}
	return false
}

// TestENODroppedAfterSYNs: rtr drops every segment after the SYNs that
// carries TCP-ENO. hB's SYN-ACK repeats; gwA gives up after its Init tries
// (about 25 s) and resets both hosts. Before, every later connection failed
// the same way. (That hB gets its RST at once, not only from hA's kernel at
// its next SYN-ACK, the scenario test TestPathDropsENOAfterSYNs shows.)
func TestENODroppedAfterSYNs(t *testing.T) {
	e := newEncEnv(t, 79)
	first, _, d, ok := enoPathTransfers(t, e, `table inet tcpinc_enodrop2 {
  chain forward {
    type filter hook forward priority -20; policy accept;
    tcp flags & syn == 0 tcp option 69 exists counter drop
  }
}
`)
	if first.elapsed > 40*time.Second {
		t.Errorf("the first transfer failed after %v, want at gwA's last Init try", first.elapsed.Round(time.Millisecond))
	}
	if !ok {
		return
	}
	if a := d[topology.GwA]; a.Events["eno_path_failures"] != 1 || a.Fallbacks["eno_path_stripped"] != 1 {
		t.Errorf("gwA: events %v, fallbacks %v; want one eno_path_failures and one eno_path_stripped", nonZero(a.Events), nonZero(a.Fallbacks))
	}
	if b := d[topology.GwB]; b.Handshakes["encrypted"] != 0 || b.Events["eno_path_failures"] != 0 {
		t.Errorf("gwB: handshakes %v, events %v; want none encrypted and no eno_path_failures (gwB never saw the segments after the SYNs)", nonZero(b.Handshakes), nonZero(b.Events))
	}
}
