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
		// No pure ACK first: the data again, as the third segment.
		_, o = ga.push(Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF|pshF, 502, tsOpt(2, 2), data))
		var got []byte
		for _, f := range o {
			if bytes.Contains(f, data) {
				t.Fatalf("cookie %x: the data left in plaintext", cookie)
			}
			toB, back := gb.push(Outside, f)
			for _, s := range toB {
				got = append(got, parse(t, s).payload...)
			}
			for _, b := range back {
				_, more := ga.push(Outside, b)
				for _, m := range more {
					if bytes.Contains(m, data) {
						t.Fatalf("cookie %x: the data left in plaintext", cookie)
					}
					toB, _ := gb.push(Outside, m)
					for _, s := range toB {
						got = append(got, parse(t, s).payload...)
					}
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
	ga.e.notePlainPeer(2*answeredWithoutFor, addrB.Addr(), false)
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

// TestENODroppingPathRemembered: a path that drops SYNs with options it
// does not know costs a connection its SYNs with ENO (3 s with Linux's
// timers) before the host's SYN without it gets through (resendSYN). Once
// that SYN is answered, the next connections to that far address go
// without ENO at once, SYN data and all, for droppedFor; then ENO is
// offered again. A far host that answered nothing at all (down, not a
// path that drops ENO) is not remembered, nor is one under require.
func TestENODroppingPathRemembered(t *testing.T) {
	ga := newGW(t, Config{TEPs: testTEPs})
	port := addrA.Port()
	synFrom := func(data []byte) (netip.AddrPort, []byte) {
		port++
		a := netip.AddrPortFrom(addrA.Addr(), port)
		return a, tcpFrame(a, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), data)
	}
	// The SYNs with ENO go unanswered; the fourth goes without.
	unanswered := func(now int64) netip.AddrPort {
		a, syn := synFrom(nil)
		for i := range DefaultSYNsWithENO {
			ga.e.Handle(now, Inside, syn, ga.tx)
			if s := one(t, "SYN", ga.out.take()); option(s.opts, 69) == nil {
				t.Fatalf("SYN %d: options %x, want ENO", i+1, s.opts)
			}
		}
		if v := ga.e.Handle(now, Inside, syn, ga.tx); v != Passthrough {
			t.Fatalf("SYN %d: %v, want it passed as it came", DefaultSYNsWithENO+1, v)
		}
		return a
	}
	offersENO := func(now int64, data []byte) bool {
		t.Helper()
		_, syn := synFrom(data)
		if v := ga.e.Handle(now, Inside, syn, ga.tx); v == Passthrough {
			none(t, "SYN passed as it came", ga.out.take())
			return false
		}
		s := one(t, "SYN", ga.out.take())
		if option(s.opts, 69) == nil {
			t.Fatalf("a SYN without ENO left changed: %+v", s)
		}
		return true
	}

	unanswered(0)
	if !offersENO(1e9, nil) {
		t.Fatal("no answer at all (a far host down) kept the next SYN from offering ENO")
	}
	a := unanswered(2e9)
	// A late SYN-ACK with ENO to one of the first SYNs: not a path that
	// drops ENO, only a slow one.
	ga.e.Handle(3e9, Outside, tcpFrame(addrB, a, isnB, isnA+1, synF|ackF, 65160, append(synOpts(1460, 2), 69, 4, 0x01, 0x23), nil), ga.tx)
	ga.in.take()
	if !offersENO(3e9, nil) {
		t.Fatal("a SYN-ACK with ENO was taken for a path that drops ENO")
	}
	a = unanswered(4e9)
	if v := ga.e.Handle(5e9, Outside, tcpFrame(addrB, a, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 2), nil), ga.tx); v != Passthrough {
		t.Fatalf("the SYN-ACK to the SYN without ENO: %v, want it passed as it came", v)
	}
	before := ga.e.Counters().Fallbacks[FallbackSYNRetries].Load()
	if offersENO(6e9, nil) || offersENO(6e9, []byte("syn data")) {
		t.Fatal("after the path dropped our SYNs with ENO, the next SYN offered it again")
	}
	if n := ga.e.Counters().Fallbacks[FallbackSYNRetries].Load() - before; n != 2 {
		t.Fatalf("%d syn_retries fallbacks for the two SYNs, want 2", n)
	}
	if !offersENO(5e9+droppedFor, nil) {
		t.Fatal("ENO not offered again once the memory expired")
	}
	// Under require, ENO is always offered.
	ga.e.notePlainPeer(6e9+droppedFor, addrB.Addr(), true)
	if err := ga.e.Reconfigure(Config{TEPs: testTEPs, Policies: requireFor(addrB.Addr())}); err != nil {
		t.Fatal(err)
	}
	if !offersENO(6e9+droppedFor, nil) {
		t.Fatal("under require, a SYN left without ENO")
	}
}
