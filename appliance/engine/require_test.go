package engine

import (
	"bytes"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// Under the require policy every way a negotiation can end short of
// encryption resets both hosts: none lets the connection go on in plain TCP
// (RFC 8547 §4.7, mandatory encryption).

var (
	addrA6 = netip.AddrPortFrom(packettest.HostA6, 40000)
	addrB6 = netip.AddrPortFrom(packettest.HostB6, 443)
)

// longDstOpts is an IPv6 destination-options header of 248 bytes (one PadN
// option): with it the link, IP and TCP headers no longer fit the engine's
// 256-byte template.
var longDstOpts = []packettest.Ext{{Proto: 60, Data: append([]byte{1, 244}, make([]byte, 244)...)}}

func tcp6Frame(src, dst netip.AddrPort, ext []packettest.Ext, seq, ack uint32, flags uint8, win uint16, opts []byte) []byte {
	return packettest.Frame{Src: src.Addr(), Dst: dst.Addr(), Ext: ext, TCP: &packettest.TCP{
		SrcPort: src.Port(), DstPort: dst.Port(), Seq: seq, Ack: ack, Flags: flags, Window: win, Options: opts}}.Bytes()
}

func requireFor(a netip.Addr) []PolicyRule {
	return []PolicyRule{{Prefix: netip.PrefixFrom(a, a.BitLen()), Policy: Require}}
}

// kept checks that the engine sends frame on unchanged but keeps its flow
// (ForwardInPlace: not on the fast path), as while a require policy waits
// for the far side's TCP-ENO: on the fast path the kernel would carry the
// segment that must be checked past the engine.
func kept(t *testing.T, g *gw, from PortID, frame []byte) {
	t.Helper()
	f := slices.Clone(frame)
	if v := g.e.Handle(g.now, from, f, g.tx); v != ForwardInPlace || !bytes.Equal(f, frame) {
		t.Fatalf("segment from port %d: %v (changed: %v), want forward-in-place unchanged", from, v, !bytes.Equal(f, frame))
	}
	if in, out := g.in.take(), g.out.take(); len(in)+len(out) != 0 {
		t.Fatalf("segment from port %d: %d frames sent besides", from, len(in)+len(out))
	}
}

// resetBoth checks that one RST went to each host and nothing else, and
// returns them.
func resetBoth(t *testing.T, what string, toIn, toOut [][]byte) (in, out segv) {
	t.Helper()
	in, out = one(t, what+": to the inside host", toIn), one(t, what+": to the far side", toOut)
	if in.flags&rstF == 0 || out.flags&rstF == 0 || len(in.payload) != 0 || len(out.payload) != 0 {
		t.Fatalf("%s: want an RST each way, got %+v and %+v", what, in, out)
	}
	return in, out
}

// An on-path attacker lengthens the far side's SYN-ACK with a 248-byte IPv6
// destination-options header, so its headers do not fit the template the
// engine builds segments to the inside host from. Host A fell back to plain
// TCP then, and the SYN-ACK went to the host as it came, whatever the
// policy. Under require both hosts are reset instead (the RST to the inside
// host is built from the SYN's headers, turned around).
func TestRequireSYNACKWithLongHeadersResets(t *testing.T) {
	ga := newGW(t, Config{TEPs: testTEPs, Policies: requireFor(addrB6.Addr())})
	_, out := ga.push(Inside, tcp6Frame(addrA6, addrB6, nil, isnA, 0, synF, 64240, synOpts(1460, 1)))
	one(t, "SYN", out)
	sa := tcp6Frame(addrB6, addrA6, longDstOpts, isnB, isnA+1, synF|ackF, 65160, append(synOpts(1460, 5), 69, 4, 0x01, 0x23))
	toIn, toOut := ga.push(Outside, sa)
	in, rb := resetBoth(t, "long SYN-ACK under require", toIn, toOut)
	if in.flags != rstF|ackF || in.ack != isnA+1 || in.dst != addrA6 || in.src != addrB6 {
		t.Fatalf("RST to a: %+v", in)
	}
	if rb.seq != isnA+1 || rb.dst != addrB6 {
		t.Fatalf("RST to b: %+v", rb)
	}
	// Nothing of the connection is left to let a repeat through.
	if ga.e.NumFlows() != 0 {
		t.Fatalf("%d flows kept", ga.e.NumFlows())
	}
	if v := ga.e.Handle(0, Outside, sa, ga.tx); v == Passthrough || v == ForwardInPlace {
		t.Fatalf("repeated SYN-ACK: %v", v)
	}
}

// Host B's failure paths under require: the inside host's SYN-ACK leaves no
// room for the ENO option, or its headers do not fit the template, or it
// changes its ISN on a repeat. Each went on in plain TCP.
func TestRequireHostSYNACKFailuresReset(t *testing.T) {
	// 38 bytes without a NOP to squeeze: no room for any ENO option.
	full := append([]byte{2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 5, 0, 0, 0, 0, 3, 3, 7}, 253, 19, 0x12, 0x34)
	full = append(full, make([]byte, 15)...)
	if len(full) != 38 {
		t.Fatalf("options %d bytes", len(full))
	}
	farENO := append(synOpts(1460, 1), 69, 4, 0x24, 0x23)
	for _, c := range []struct {
		name   string
		v6     bool
		first  []byte // a SYN-ACK that negotiates, or nil
		synack func() []byte
	}{
		{"no room for ENO", false, nil, func() []byte {
			return tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, full, nil)
		}},
		{"headers too long", true, nil, func() []byte {
			return tcp6Frame(addrB6, addrA6, longDstOpts, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 5))
		}},
		{"ISN changed on a repeat", false, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 5), nil), func() []byte {
			return tcpFrame(addrB, addrA, isnB+999, isnA+1, synF|ackF, 65160, synOpts(1460, 5), nil)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b := addrA, addrB
			syn := tcpFrame(a, b, isnA, 0, synF, 64240, farENO, nil)
			if c.v6 {
				a, b = addrA6, addrB6
				syn = tcp6Frame(a, b, nil, isnA, 0, synF, 64240, farENO)
			}
			gb := newGW(t, Config{TEPs: testTEPs, Policies: requireFor(a.Addr())})
			toIn, _ := gb.push(Outside, syn)
			one(t, "SYN at b", toIn)
			if c.first != nil {
				_, out := gb.push(Inside, c.first)
				one(t, "first SYN-ACK", out)
			}
			toIn, toOut := gb.push(Inside, c.synack())
			in, out := resetBoth(t, c.name, toIn, toOut)
			if in.seq != isnA+1 || in.dst != b {
				t.Fatalf("RST to b: %+v", in)
			}
			if out.ack != isnA+1 || out.dst != a || out.flags&ackF == 0 {
				t.Fatalf("RST to the far side: %+v", out)
			}
			if gb.e.NumFlows() != 0 {
				t.Fatalf("%d flows kept", gb.e.NumFlows())
			}
		})
	}
}

// The inside host repeats its SYN with data (Fast Open after a timeout).
// Once, host A dropped the negotiation and let the SYN out in plain TCP,
// where the far side's plain SYN-ACK would then pass. Under require the
// repeat leaves as the first SYN did, with ENO and without its data, and
// the negotiation goes on.
func TestRequireSYNRepeatWithDataHeldBack(t *testing.T) {
	ga := newGW(t, Config{TEPs: testTEPs, Policies: requireFor(addrB.Addr())})
	ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	v := ga.e.Handle(0, Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), []byte("GET /")), ga.tx)
	if s := one(t, "repeated SYN", ga.out.take()); v != Forwarded || len(s.payload) != 0 || option(s.opts, 69) == nil {
		t.Fatalf("SYN with data under require: %v, %+v; want it with ENO and without its data", v, s)
	}
	if fi := flowInfo(t, ga.e); fi.State != "syn-sent" {
		t.Fatalf("flow %+v", fi)
	}
	// A plain SYN-ACK still resets both.
	toIn, toOut := ga.push(Outside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 2), nil))
	resetBoth(t, "plain SYN-ACK", toIn, toOut)
	for _, f := range append(toIn, toOut...) {
		if bytes.Contains(f, []byte("GET /")) {
			t.Fatal("SYN data on the wire")
		}
	}
}

// An inside host that speaks TCP-ENO itself negotiates end to end and the
// appliance stays out. Under require that let the connection run in plain
// TCP whenever the far side's SYN-ACK (host A inside) or third segment
// (host B inside) came without the option, as it does when an attacker on
// the path strips it: TCP-ENO then falls back. Both hosts are reset
// instead; with the option there, the segments pass untouched.
func TestRequireEndToEndWithoutENOResets(t *testing.T) {
	hostOpt := []byte{69, 3, 0x23}
	// Host A inside.
	for _, strip := range []bool{true, false} {
		ga := newGW(t, Config{TEPs: testTEPs, Policies: requireFor(addrB.Addr())})
		pass(t, ga, Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, append(synOpts(1460, 1), hostOpt...), nil))
		opts := append(synOpts(1460, 5), 69, 4, 0x01, 0x23)
		if strip {
			opts = synOpts(1460, 5)
		}
		sa := tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, opts, nil)
		if !strip {
			pass(t, ga, Outside, sa)
			continue
		}
		// A blind one (wrong ACK) is the host's to judge; the flow stays
		// with the engine, off the fast path, until the real one came.
		kept(t, ga, Outside, tcpFrame(addrB, addrA, isnB, isnA+99, synF|ackF, 65160, opts, nil))
		toIn, toOut := ga.push(Outside, sa)
		in, out := resetBoth(t, "SYN-ACK without ENO", toIn, toOut)
		if in.flags != rstF|ackF || in.ack != isnA+1 || out.seq != isnA+1 || ga.e.NumFlows() != 0 {
			t.Fatalf("RSTs %+v / %+v, %d flows", in, out, ga.e.NumFlows())
		}
	}
	// Host B inside.
	for _, strip := range []bool{true, false} {
		gb := newGW(t, Config{TEPs: testTEPs, Policies: requireFor(addrA.Addr())})
		gb.push(Outside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, append(synOpts(1460, 1), farENOOpt...), nil))
		kept(t, gb, Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, append(synOpts(1460, 5), 69, 4, 0x01, 0x23), nil))
		var opts []byte
		if !strip {
			opts = []byte{69, 2}
		}
		third := tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF, 502, opts, nil)
		// Corrupted on the way, it is the host's to drop: no reset, and
		// no ENO seen in it either (a diff review: it reset the
		// connection).
		gb.pushCorrupted(Outside, third)
		if !strip {
			pass(t, gb, Outside, third)
			continue
		}
		kept(t, gb, Outside, tcpFrame(addrA, addrB, isnA+1, isnB+77, ackF, 502, nil, nil)) // blind
		toIn, toOut := gb.push(Outside, third)
		in, out := resetBoth(t, "third segment without ENO", toIn, toOut)
		if in.seq != isnA+1 || out.seq != isnB+1 || out.ack != isnA+1 || gb.e.NumFlows() != 0 {
			t.Fatalf("RSTs %+v / %+v, %d flows", in, out, gb.e.NumFlows())
		}
	}
}

// The same third segment without ENO, with data and fragmented on the way:
// its fragments passed as a plain flow's, and host b fell back to plain
// TCP under require. Whole again, the datagram meets the same check.
func TestRequireEndToEndThirdSegmentFragmented(t *testing.T) {
	gb := newGW(t, Config{TEPs: testTEPs, Policies: requireFor(addrA.Addr())})
	gb.push(Outside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, append(synOpts(1460, 1), farENOOpt...), nil))
	kept(t, gb, Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, append(synOpts(1460, 5), 69, 4, 0x01, 0x23), nil))
	third := tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF|pshF, 502, nil, make([]byte, 1000))
	toIn, toOut := gb.pushAll(Outside, fragmentFrame(t, third, 504, 3))
	in, out := resetBoth(t, "fragmented third segment without ENO", toIn, toOut)
	if in.seq != isnA+1 || out.seq != isnB+1 || gb.e.NumFlows() != 0 {
		t.Fatalf("RSTs %+v / %+v, %d flows", in, out, gb.e.NumFlows())
	}
}

// With the flow table full (a remote host can fill it with SYNs: records of
// plain connections stay 5 minutes), a new connection was passed through
// untracked, its SYN without TCP-ENO, and with the fast path the whole
// connection then ran in plain TCP, even to a prefix whose policy requires
// encryption. Under the require policy such a SYN is dropped, both ways.
func TestRequireAtFlowCapDrops(t *testing.T) {
	// An encrypted connection takes the only slot (a live record: a
	// finished one would be reclaimed, a handshake evicted).
	g := handshake(t).ga
	c := g.e.Config()
	c.MaxFlows, c.Policies = 1, []PolicyRule{{Prefix: mustPrefix(addrB.Addr().String() + "/32"), Policy: Require}}
	if err := g.e.Reconfigure(c); err != nil {
		t.Fatal(err)
	}
	if g.e.NumFlows() != 1 {
		t.Fatalf("%d flows", g.e.NumFlows())
	}
	addrA := netip.AddrPortFrom(addrA.Addr(), addrA.Port()+1)
	if v := g.e.Handle(0, Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil), g.tx); v != Dropped {
		t.Fatalf("outbound SYN to a require prefix at the flow cap: %v", v)
	}
	syn := tcpFrame(addrB, netip.AddrPortFrom(addrA.Addr(), 8080), isnB, 0, synF, 64240, append(synOpts(1460, 1), 69, 4, 0x24, 0x23), nil)
	if v := g.e.Handle(0, Outside, syn, g.tx); v != Dropped {
		t.Fatalf("inbound SYN with ENO from a require prefix at the flow cap: %v", v)
	}
	if g.e.Counters().FlowsCapped.Load() != 2 {
		t.Fatalf("capped %d", g.e.Counters().FlowsCapped.Load())
	}
}

// Under the require policy a SYN with data and a Fast Open cookie leaves
// with ENO and without either, even toward a far address that answered
// without ENO before (where, without require, Fast Open goes plain:
// TestFastOpenToPlainPeer). Its data never leaves in plaintext. (A SYN the
// engine cannot negotiate for, one signed end to end, is dropped:
// TestSignedSYNsLeftAlone.)
func TestRequireSYNDataLeftOut(t *testing.T) {
	g := newGW(t, Config{TEPs: testTEPs, Policies: []PolicyRule{{Prefix: mustPrefix("198.51.100.0/24"), Policy: Require}}})
	g.e.noteAnsweredWithoutENO(0, addrB.Addr())
	opts := append(synOpts(1460, 1), 34, 10, 1, 2, 3, 4, 5, 6, 7, 8)
	if v := g.e.Handle(0, Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 1, opts, []byte("data")), g.tx); v != Forwarded {
		t.Fatalf("verdict %v", v)
	}
	if s := one(t, "SYN", g.out.take()); len(s.payload) != 0 || option(s.opts, 69) == nil || option(s.opts, 34) != nil {
		t.Fatalf("SYN %+v, want ENO and neither the data nor the cookie", s)
	}
}

// Require as host B: a third segment without ENO resets both hosts.
func TestRequireThirdSegmentWithoutENO(t *testing.T) {
	gb := newGW(t, Config{TEPs: testTEPs, Policies: []PolicyRule{{Prefix: mustPrefix("192.0.2.0/24"), Policy: Require}}})
	gb.push(Outside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, append(synOpts(1460, 1), 69, 3, 0x23), nil))
	gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 1, synOpts(1460, 2), nil))
	toIn, toOut := gb.push(Outside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF, 1, nil, nil))
	l, r := one(t, "RST to b", toIn), one(t, "RST to the far side", toOut)
	if l.flags != rstF || l.seq != isnA+1 || r.flags != rstF|ackF || r.seq != isnB+1 {
		t.Fatalf("RSTs %+v / %+v", l, r)
	}
	if gb.e.NumFlows() != 0 {
		t.Fatal("flow kept")
	}
}

// Under require the one connection that passes as plain TCP is one whose
// inside host negotiated TCP-ENO end to end (its bytes are its own
// tcpcrypt). Its record goes after plain_retention while the kernel fast
// path carries its data, and a restart forgets it: its later segments
// (the FIN at least, which always reaches the engine) meet no record.
// They must pass: resetting every unknown mid-stream segment of a require
// prefix, as defence in depth against a set lost in a reboot, would reset
// such a connection at its close and after every restart.
func TestRequireEndToEndOutlivesItsRecord(t *testing.T) {
	hostOpt := []byte{69, 3, 0x23}
	ga := newGW(t, Config{TEPs: testTEPs, Policies: requireFor(addrB.Addr()), PlainRetention: time.Second})
	pass(t, ga, Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, append(synOpts(1460, 1), hostOpt...), nil))
	pass(t, ga, Outside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, append(synOpts(1460, 5), 69, 4, 0x01, 0x23), nil))
	pass(t, ga, Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF, 502, nil, nil))
	for range 20 {
		ga.tick(int64(100 * time.Millisecond))
	}
	if ga.e.NumFlows() != 0 {
		t.Fatalf("%d flows after plain_retention", ga.e.NumFlows())
	}
	pass(t, ga, Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF|pshF|finF, 502, nil, []byte("the host's own tcpcrypt frame")))
	if n := ga.e.Counters().StrayResets.Load(); n != 0 {
		t.Fatalf("%d stray resets", n)
	}
}
