package appliance

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// insideRouter sends ICMP errors about segments it forwarded toward an
// inside host (a router between the appliance and the host).
var insideRouter = netip.MustParseAddr("198.51.100.254")

// timeExceeded is an ICMPv4 time exceeded from src about frame, quoting up
// to 548 bytes of its datagram as Linux does (576 minus the headers).
func timeExceeded(src netip.Addr, frame []byte) []byte {
	dst := netip.AddrFrom4([4]byte(frame[26:30])) // the quoted segment's source
	return packettest.Frame{Src: src, Dst: dst, Proto: 1,
		L4: packettest.ICMP(11, 0, 0, packettest.Quote(frame, 548))}.Bytes()
}

// TestICMPErrorQuotingDeliveredPlaintext: over in-memory ports (memport) and the real
// engines of two appliances, a connection is encrypted and a segment
// delivered decrypted to host b; an inside router's time exceeded quoting
// that segment must not leave b's appliance: it would carry the plaintext
// of an encrypted connection onto the untrusted side (ENO-37, TC-5). The
// worker hands every ICMP error quoting TCP to the engine; before the
// classifier sent every ICMP error to the workers, its fast path took this
// one straight to the outside port.
func TestICMPErrorQuotingDeliveredPlaintext(t *testing.T) {
	gA, _ := engineRig(t)
	gB, eB := engineRig(t)
	var toB [][]byte
	shuttle := func() {
		for len(gA.out[Outside])+len(gB.out[Outside])+len(gA.out[Inside])+len(gB.out[Inside]) > 0 {
			fa, fb := gA.out[Outside], gB.out[Outside]
			toB = append(toB, gB.out[Inside]...)
			gA.out, gB.out = [2][][]byte{}, [2][][]byte{}
			for _, f := range fa {
				gB.send(Outside, f)
			}
			for _, f := range fb {
				gA.send(Outside, f)
			}
		}
	}
	const isnA, isnB = 1000, 5000
	gA.send(Inside, seg(a4, b4, 6001, 443, packettest.SYN, isnA, 0, nil))
	shuttle()
	gB.send(Inside, seg(b4, a4, 443, 6001, packettest.SYN|packettest.ACK, isnB, isnA+1, nil))
	shuttle()
	gA.send(Inside, seg(a4, b4, 6001, 443, packettest.ACK, isnA+1, isnB+1, nil))
	shuttle()
	if eB.Counters().Encrypted.Load() != 1 {
		t.Fatal("the connection was not encrypted")
	}
	marker := []byte("tcpinc-icmp-plaintext-marker")
	toB = nil
	gA.send(Inside, seg(a4, b4, 6001, 443, packettest.ACK|packettest.PSH, isnA+1, isnB+1, marker))
	shuttle()
	var delivered []byte
	for _, f := range toB {
		if bytes.Contains(f, marker) {
			delivered = f
		}
	}
	if delivered == nil {
		t.Fatal("host b did not get the data")
	}
	icmp := timeExceeded(insideRouter, delivered)
	if !bytes.Contains(icmp, marker) {
		t.Fatal("test error: the ICMP error does not quote the plaintext")
	}
	drops := eB.Counters().Drops[engine.DropICMPQuote].Load()
	gB.send(Inside, icmp)
	for _, f := range gB.out[Outside] {
		if bytes.Contains(f, marker) {
			t.Fatal("the ICMP error carried the delivered plaintext to the outside port")
		}
	}
	if n := len(gB.out[Outside]); n != 0 {
		t.Fatalf("%d frames left the outside port, want none", n)
	}
	if eB.Counters().Drops[engine.DropICMPQuote].Load() != drops+1 {
		t.Fatal("the engine did not see and drop the ICMP error (icmp_quote)")
	}
	if gB.bump.Redirected(Inside) != 0 {
		t.Fatal("the ICMP error took the fast path")
	}
}

// TestICMPErrorQuotingPlainFlow: for a connection that fell back to plain
// TCP (on the fast path), the same ICMP error goes through the engine and
// leaves unchanged (Passthrough), so plain connections keep their path MTU
// discovery and error reporting.
func TestICMPErrorQuotingPlainFlow(t *testing.T) {
	r, e := engineRig(t)
	r.send(Inside, seg(a4, b4, 5001, 80, packettest.SYN, 100, 0, nil))
	r.send(Outside, seg(b4, a4, 80, 5001, packettest.SYN|packettest.ACK, 900, 101, nil))
	if e.Counters().Fallbacks[engine.FallbackNoENO].Load() != 1 {
		t.Fatal("no fallback")
	}
	data := seg(b4, a4, 80, 5001, packettest.ACK|packettest.PSH, 901, 101, []byte("plain data"))
	r.send(Outside, data)
	r.out = [2][][]byte{}
	icmp := timeExceeded(insideRouter, data)
	s0 := r.a.Stats()
	passBefore := s0[0].Verdict(engine.Passthrough)
	r.send(Inside, icmp)
	if len(r.out[Outside]) != 1 || !bytes.Equal(r.out[Outside][0], icmp) {
		t.Fatalf("%d frames out, want the ICMP error unchanged", len(r.out[Outside]))
	}
	if s1 := r.a.Stats(); s1[0].Verdict(engine.Passthrough) != passBefore+1 {
		t.Fatal("the ICMP error did not go through the engine (Passthrough)")
	}
}
