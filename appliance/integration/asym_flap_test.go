package integration

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/topology"
)

// TestAsymmetricRouteFlap: an encrypted connection from hA to hB whose
// return path moves around gwA for 2 s and back (a route flap, an ECMP
// rehash and back) 300 ms after it opened, on up to three connections. Plain TCP does
// not notice: both paths deliver the same bytes. Here gwB's frames reach hA
// as they are for those 2 s. Their sequence numbers are the wire's, ahead
// of hA's by the key exchange and the frame headers so far, and hA's TCP
// keeps what falls in its window as out-of-order data (RFC 9293
// §3.10.7.4) and acknowledges it selectively (RFC 2018). Once gwA delivers
// again, the plaintext fills the hole up to that ciphertext, and hA's TCP
// hands the ciphertext on as the next bytes of the stream: the application
// reads bytes that were never sent. The connection may end (a reset, a
// stall) but no application may read a byte that is not the stream's.
func TestAsymmetricRouteFlap(t *testing.T) {
	e := newEncEnvOpts(t, encOpts{net: 69})
	by := e.addBypass(t)
	dst := netip.AddrPortFrom(e.topo.Addr(topology.HostB).V4, 5001)
	// A first connection, so that the flapped ones resume its session
	// (RFC 8548 §3.5), as most connections between two appliances do.
	checkTransfer(t, e.asymRun(t, topology.HostA, dst, e.streamB, 1<<20), 1<<20, 1<<20)
	for i := 1; i <= 3; i++ {
		bad := false
		t.Run(fmt.Sprintf("flap%d", i), func(t *testing.T) {
			bad = e.flap(t, by, dst)
		})
		if bad {
			break
		}
	}
}

// flap runs one connection of TestAsymmetricRouteFlap and reports whether
// an application read bytes that were not sent.
func (e *encEnv) flap(t *testing.T, by *asymBypass, dst netip.AddrPort) bool {
	p, r, seed := e.startPaced(t, "stream-client-flap", dst, 2<<20) // 4 s at the rate
	defer p.Stop()
	t0 := time.Now()
	for deadline := t0.Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		fa, okA, _ := e.flowOf(topology.GwA, r.local, dst)
		fb, okB, _ := e.flowOf(topology.GwB, r.local, dst)
		if okA && okB && fa.Encrypted && fb.Encrypted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the connection is not listed encrypted by both appliances: gwA %+v, gwB %+v", fa, fb)
		}
	}
	// Early in the connection: the wire runs ahead of the host stream by
	// the Init message and 20 bytes a frame (RFC 8548 §3.3, §4.2), and hA
	// takes hB's segments only while it has more than that in flight (one
	// acknowledging data it never sent is dropped, RFC 9293 §3.10.7.4).
	time.Sleep(time.Until(t0.Add(300 * time.Millisecond)))
	by.route(t, asymReturn)
	t.Logf("%s: hB -> hA bypasses gwA", stamp())
	time.Sleep(2 * time.Second)
	t.Logf("hA during the flap: %s", e.runIn(topology.HostA, "ss", "-tnio", "dst", dst.String()))
	by.route(t, asymSymmetric)
	t.Logf("%s: back through gwA", stamp())
	select {
	case <-p.Done():
	case <-time.After(20 * time.Second):
		t.Errorf("the client still runs 20 s after the flap")
	}
	out := p.Output()
	parseClient(&r, out)
	parseServer(&r, e.streamB, seed, 2*time.Second)
	t.Logf("client: %s\nserver: %s", strings.TrimSpace(tailLines(out, 3)), r.serverLine)
	for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
		if c, err := e.counters(gw); err == nil {
			t.Logf("%s so far: drops %v stray_resets %d auth_failures %d events %v", gw, nonZero(c.Drops), c.StrayResets, c.AuthFailures, nonZero(c.Events))
		}
	}
	if strings.Contains(out+r.serverLine, "CORRUPT") {
		t.Errorf("an application read bytes that were never sent (the ciphertext that reached hA around gwA)")
		return true
	}
	return false
}
