package scenario

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

// The harness checks itself: two Peers talk through Hosts' segments, and the
// link applies its rules. If these fail, scenario failures mean nothing.

func TestHarnessPeersTalk(t *testing.T) {
	ha := &Host{Addr: netip.AddrPortFrom(packettest.HostA4, 40000), Peer: netip.AddrPortFrom(packettest.HostB4, 80), ISN: 1000}
	hb := &Host{Addr: ha.Peer, Peer: ha.Addr, ISN: 5000}
	pa, pb := NewPeer(tcpcrypt.RoleA, hb.ISN), NewPeer(tcpcrypt.RoleB, ha.ISN)
	if got := pa.SYNOption(); !bytes.Equal(got, []byte{69, 3, 0x23}) {
		t.Fatalf("A's option %x", got)
	}
	ack, err := pb.AnswerSYN(pa.SYNOpt)
	if err != nil || !bytes.Equal(ack, []byte{69, 4, 1, 0x23}) {
		t.Fatalf("B's option %x, %v", ack, err)
	}
	if err := pa.GotSYNACK(ack); err != nil {
		t.Fatal(err)
	}
	// Init1 split across three segments (TC-7).
	init1 := pa.Init
	for _, cut := range [][2]int{{0, 10}, {10, 50}, {50, len(init1)}} {
		s, err := ParseFrame(ha.Data(cut[0], hb.ISN+1, init1[cut[0]:cut[1]]))
		if err != nil {
			t.Fatal(err)
		}
		if err := pb.Receive(s); err != nil {
			t.Fatal(err)
		}
	}
	if !pb.Ready() || len(pb.Init) != 74 {
		t.Fatalf("B not ready after Init1 (Init2 %d bytes)", len(pb.Init))
	}
	// Init2 and two frames in one segment.
	seg := append(append(append([]byte(nil), pb.Init...), pb.Seal([]byte("one"), false)...), pb.Seal([]byte("two"), true)...)
	s, _ := ParseFrame(hb.Data(0, ha.Seq(len(init1)), seg))
	if err := pa.Receive(s); err != nil {
		t.Fatal(err)
	}
	if string(pa.Data()) != "onetwo" || !pa.FIN() {
		t.Fatalf("A got %q fin %v", pa.Data(), pa.FIN())
	}
	if pa.Session.ID != pb.Session.ID {
		t.Fatal("session IDs differ")
	}
	// A big frame over many segments, with a retransmitted piece.
	big := bytes.Repeat([]byte("x"), 60000)
	f := pa.Seal(big, false)
	off := int(len(init1))
	for i := 0; i < len(f); i += 1000 {
		e := min(i+1000, len(f))
		s, _ := ParseFrame(ha.Data(off+i, 0, f[i:e]))
		if err := pb.Receive(s); err != nil {
			t.Fatal(err)
		}
		if i == 3000 {
			if err := pb.Receive(s); err != nil { // duplicate: same bytes
				t.Fatal(err)
			}
		}
	}
	if !bytes.Equal(pb.Data(), big) {
		t.Fatal("big frame lost")
	}
	// A conflicting retransmission is caught by the model (TC-45).
	s, _ = ParseFrame(ha.Data(off, 0, []byte{f[0] ^ 1}))
	if pb.Receive(s) == nil {
		t.Fatal("conflicting bytes accepted")
	}
}

func TestHarnessLinkRules(t *testing.T) {
	h := &Host{Addr: netip.AddrPortFrom(packettest.HostA4, 1), Peer: netip.AddrPortFrom(packettest.HostB4, 2), ISN: 1}
	l := &Link{Latency: 10}
	l.Add(Rule{Dir: AtoB, Match: func(n int, _ Seg) bool { return n == 1 }, Drop: true})
	hold := l.Add(Rule{Dir: AtoB, Match: func(n int, _ Seg) bool { return n == 2 }, Hold: true})
	l.Add(Rule{Dir: AtoB, Match: func(n int, _ Seg) bool { return n == 3 }, Dup: 1})
	for i := range 5 {
		l.Send(0, AtoB, h.Data(i, 0, []byte{byte(i)}))
	}
	l.Release(5, hold)
	var got []byte
	for now := int64(0); now < 100; now++ {
		for {
			_, f, ok := l.Pop(now)
			if !ok {
				break
			}
			s, err := ParseFrame(f)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, s.Payload...)
		}
	}
	if want := []byte{0, 3, 3, 4, 2}; !bytes.Equal(got, want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
}

func TestHarnessChecksums(t *testing.T) {
	for _, src := range []netip.Addr{packettest.HostA4, packettest.HostA6} {
		dst := packettest.HostB4
		if src.Is6() {
			dst = packettest.HostB6
		}
		h := &Host{Addr: netip.AddrPortFrom(src, 1), Peer: netip.AddrPortFrom(dst, 2), ISN: 7}
		f := h.Data(0, 9, []byte("payload"), SACKOpt([2]uint32{1, 2}))
		s, err := ParseFrame(f)
		if err != nil || string(s.Payload) != "payload" || s.Seq != 8 || s.Ack != 9 || s.SACK()[0] != [2]uint32{1, 2} {
			t.Fatalf("%v: %v %v", src, s, err)
		}
		f[len(f)-1] ^= 1
		if _, err := ParseFrame(f); err != ErrTCPChecksum {
			t.Fatalf("%v: corrupted payload gave %v", src, err)
		}
		FixChecksums(f)
		if s, err := ParseFrame(f); err != nil || string(s.Payload) != "payloae" {
			t.Fatalf("%v: after FixChecksums: %v %v", src, s, err)
		}
	}
}
