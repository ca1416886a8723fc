package engine

import (
	"bytes"
	"net/netip"
	"testing"
)

// TestFastOpenSYNDataHeldBack: a Fast Open client with a cookie (RFC 7413)
// sends its first bytes in its SYN with the cookie. ENO may not ride with
// either (RFC 8547 §4.7), so G_A leaves both out, offers ENO and counts
// it; the repeat of the SYN goes the same way; the SYN-ACK acknowledges
// only the ISN, so the client sends its data again after the handshake,
// in its third segment, as Linux does when a server refuses its data; and
// that data crosses encrypted. Before, such a SYN kept its connection
// plain, and with it every later one to that server while the client kept
// the cookie.
func TestFastOpenSYNDataHeldBack(t *testing.T) {
	for _, cookie := range [][]byte{
		{34, 10, 1, 2, 3, 4, 5, 6, 7, 8},
		{254, 12, 0xf9, 0x89, 1, 2, 3, 4, 5, 6, 7, 8},
		nil, // data without a cookie (Linux's TFO_CLIENT_NO_COOKIE)
	} {
		ga, gb := newGW(t, Config{TEPs: testTEPs}), newGW(t, Config{TEPs: testTEPs})
		data := []byte("GET / HTTP/1.1\r\n\r\n")
		opts := append(synOpts(1460, 1), cookie...)
		var syn segv
		for i := range 2 { // the SYN and its retransmission
			_, o := ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, opts, data))
			syn = one(t, "SYN", o)
			if len(syn.payload) != 0 || syn.seq != isnA || syn.flags != synF {
				t.Fatalf("cookie %x, SYN %d: %q at %x flags %x, want no data", cookie, i, syn.payload, syn.seq, syn.flags)
			}
			if option(syn.opts, 69) == nil || cookie != nil && option(syn.opts, cookie[0]) != nil {
				t.Fatalf("cookie %x, SYN %d: options %x, want ENO and no cookie", cookie, i, syn.opts)
			}
		}
		if n := ga.e.Counters().SYNDataHeldBack.Load(); n != 1 {
			t.Fatalf("cookie %x: syn_data_held_back %d, want 1", cookie, n)
		}
		gb.push(Outside, syn.frame())
		_, o := gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 2), nil))
		toA, _ := ga.push(Outside, one(t, "SYN-ACK", o).frame())
		if sa := one(t, "SYN-ACK to a", toA); sa.ack != isnA+1 {
			t.Fatalf("SYN-ACK to a acknowledges %x, want the ISN only", sa.ack)
		}
		// Had that SYN-ACK been lost on its way to a, a would repeat its
		// SYN: it leaves as the first did, not answered with a challenge
		// ACK (which a host in SYN-SENT ignores).
		_, o = ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, opts, data))
		if s := one(t, "repeated SYN", o); len(s.payload) != 0 || s.flags != synF || option(s.opts, 69) == nil {
			t.Fatalf("cookie %x: repeated SYN after the SYN-ACK: %+v, want ENO and no data", cookie, s)
		}
		// No pure ACK first: the data again, as the third segment.
		_, o = ga.push(Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF|pshF, 502, tsOpt(2, 2), data))
		// Each of G_A's frames to G_B: no plaintext in it, and what G_B
		// delivers to b; G_B's answers go back through G_A.
		var got []byte
		toB := func(f []byte) (back [][]byte) {
			if bytes.Contains(f, data) {
				t.Fatalf("cookie %x: the data left in plaintext", cookie)
			}
			in, back := gb.push(Outside, f)
			for _, s := range in {
				got = append(got, parse(t, s).payload...)
			}
			return back
		}
		for _, f := range o {
			for _, b := range toB(f) {
				_, more := ga.push(Outside, b)
				for _, m := range more {
					toB(m)
				}
			}
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("cookie %x: b received %q, want %q", cookie, got, data)
		}
		if fi := flowInfo(t, ga.e); !fi.Encrypted {
			t.Fatalf("cookie %x: flow %+v, want encrypted", cookie, fi)
		}
	}
}

// TestFastOpenToPlainPeer: toward a far address whose answer to our last
// ENO offer came without ENO, a SYN with data and a cookie goes as the
// host sent it, so Fast Open saves its round trip where the connection is
// plain anyway; once that answer is older than answeredWithoutFor, or after the
// address answered with ENO, such a SYN is offered ENO again.
func TestFastOpenToPlainPeer(t *testing.T) {
	ga := newGW(t, Config{TEPs: testTEPs})
	cookie := []byte{34, 10, 1, 2, 3, 4, 5, 6, 7, 8}
	data := []byte("hello")
	port := addrA.Port()
	dataSYN := func(now int64) (Verdict, []byte) {
		port++
		a := netip.AddrPortFrom(addrA.Addr(), port)
		f := tcpFrame(a, addrB, isnA, 0, synF, 64240, append(synOpts(1460, 1), cookie...), data)
		return ga.e.Handle(now, Inside, f, ga.tx), f
	}
	// A first connection (no Fast Open yet): the SYN-ACK comes without ENO.
	ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, append(synOpts(1460, 1), 34, 2), nil))
	ga.push(Outside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, append(synOpts(1460, 2), cookie...), nil))
	before := ga.e.Counters().Fallbacks[FallbackSYNData].Load()
	if v, _ := dataSYN(1e9); v != Passthrough {
		t.Fatalf("SYN with data to a plain far side: %v, want it passed as sent", v)
	}
	if ga.e.Counters().Fallbacks[FallbackSYNData].Load() != before+1 || ga.e.Counters().SYNDataHeldBack.Load() != 0 {
		t.Fatal("not counted as a syn_data fallback")
	}
	ga.out.take()
	// A minute on: ENO is offered again, without the data.
	if v, _ := dataSYN(answeredWithoutFor + 1); v != Forwarded {
		t.Fatalf("SYN with data a minute on: %v, want it rewritten with ENO", v)
	}
	if s := one(t, "SYN", ga.out.take()); len(s.payload) != 0 || option(s.opts, 69) == nil {
		t.Fatalf("SYN %+v, want ENO and no data", s)
	}
	// Plain again, then an answer with ENO to a SYN without data: the next
	// SYN with data is offered ENO at once.
	ga.e.noteAnsweredWithoutENO(2*answeredWithoutFor, addrB.Addr())
	gb := newGW(t, Config{TEPs: testTEPs})
	a := netip.AddrPortFrom(addrA.Addr(), 1)
	_, o := ga.push(Inside, tcpFrame(a, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	gb.push(Outside, one(t, "SYN", o).frame())
	_, o = gb.push(Inside, tcpFrame(addrB, a, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 2), nil))
	ga.e.Handle(2*answeredWithoutFor, Outside, one(t, "SYN-ACK", o).frame(), ga.tx)
	ga.out.take()
	if v, _ := dataSYN(2 * answeredWithoutFor); v != Forwarded {
		t.Fatalf("SYN with data after an answer with ENO: %v, want it rewritten with ENO", v)
	}
}
