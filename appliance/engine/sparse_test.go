package engine

import (
	"net/netip"
	"testing"
)

// sparseConn is a connection through G_A whose far side R places bytes past
// a hole it never fills.
type sparseConn struct {
	a    netip.AddrPort
	wire segv // a's first frame on the wire: its ACK is R's next expected byte
	f    *flow
}

// openSparse opens the connection from a's port through ga and gb.
func openSparse(t *testing.T, ga, gb *gw, port uint16) sparseConn {
	t.Helper()
	a := netip.AddrPortFrom(addrA.Addr(), port)
	_, wire := connectAddrs(t, ga, gb, a, addrB)
	f := ga.e.flows[flowKey{in: a, out: addrB}]
	if f == nil || f.state != stOpen {
		t.Fatalf("connection from port %d not encrypted", port)
	}
	return sparseConn{a: a, wire: wire, f: f}
}

// byteAt has R send G_A one byte at d bytes past the next one it expects.
func (c sparseConn) byteAt(ga *gw, d int64) {
	ga.push(Outside, tcpFrame(addrB, c.a, c.wire.ack+uint32(d), c.wire.seq, ackF, 1000, nil, []byte{0}))
}

// atEdge has R send G_A one byte at the furthest offset of the window G_A
// gave it: what a TCP receiver accepts too.
func (c sparseConn) atEdge(ga *gw) {
	d := &c.f.rcv
	c.byteAt(ga, d.toldEdge-1-d.rcvW)
}

// A far side's byte far past a hole must not cost the span up to it. G_A
// took R's bytes up to the re-delivery cap (4 MiB) and a frame past what b
// acknowledged, whatever window it had given R, and the reassembly reserved
// the whole span from the next expected byte to the byte's end: a one-byte
// segment 4 MiB ahead held 4 MiB of the budget, and 15 of them in a 64 MiB
// budget left every new connection plain. Now a byte past every edge R was
// told is dropped as TCP drops it (RFC 9293 §3.10.7.4), and one at the edge
// costs at most the window.
func TestSparseByteReservesNoSpan(t *testing.T) {
	m := NewMemory(64 << 20)
	ga, gb := newGWMem(t, Config{TEPs: testTEPs}, m), newGW(t, Config{TEPs: testTEPs})
	var conns []sparseConn
	for i := range 20 {
		c := openSparse(t, ga, gb, uint16(41000+i))
		conns = append(conns, c)
		used, oow := m.Used(), ga.e.Counters().Drops[DropOutOfWindow].Load()
		c.byteAt(ga, 4<<20-100)
		if m.Used() != used || c.f.rcv.held.n != 0 {
			t.Fatalf("connection %d: a byte 4 MiB ahead took %d bytes of the budget (window %d)", i, m.Used()-used, c.f.rcv.toldEdge-c.f.rcv.rcvW)
		}
		if ga.e.Counters().Drops[DropOutOfWindow].Load() != oow+1 {
			t.Fatalf("connection %d: the byte past the window was not dropped as out of window", i)
		}
		win := c.f.rcv.toldEdge - c.f.rcv.rcvW
		c.atEdge(ga)
		if c.f.rcv.held.n != 1 || m.Used()-used > 2*win {
			t.Fatalf("connection %d: the byte at the window's edge: %d ranges held, %d bytes of the budget for a window of %d", i, c.f.rcv.held.n, m.Used()-used, win)
		}
	}
	if n := ga.e.Counters().Fallbacks[FallbackMemory].Load(); n != 0 {
		t.Fatalf("%d connections left plain for memory", n)
	}
	expireAll(t, m, ga)
}
