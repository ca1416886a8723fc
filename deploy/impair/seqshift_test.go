package impair

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

func sackOpt(edges ...uint32) []byte {
	o := []byte{1, 1, 5, byte(2 + 4*len(edges))}
	for _, e := range edges {
		o = binary.BigEndian.AppendUint32(o, e)
	}
	return o
}

// withVnet puts a virtio_net_hdr with flags in front of frame.
func withVnet(flags byte, frame []byte) []byte {
	return append([]byte{flags, 0, 0, 0, 0, 0, 0, 0, 0, 0}, frame...)
}

// The shifted segment is the segment built with the shifted numbers, its
// checksum right: sequence number plus the direction's offset, ACK and SACK
// edges less the other direction's (unless RawSACK), everything else as it
// came; segments it cannot rewrite pass unchanged.
func TestSeqShift(t *testing.T) {
	var offA, offB uint32 = 0x89abcdef, 0x12345678
	seg := func(src, dst packettest.Frame, seq, ack uint32, flags uint8, opts []byte) []byte {
		f := src
		f.Dst = dst.Src
		f.TCP = &packettest.TCP{SrcPort: 40000, DstPort: 80, Seq: seq, Ack: ack, Flags: flags, Window: 500,
			Options: opts, Payload: []byte("seventeen bytes!!")}
		return f.Bytes()
	}
	for _, fam := range []struct{ a, b packettest.Frame }{
		{packettest.Frame{Src: packettest.HostA4, DF: true}, packettest.Frame{Src: packettest.HostB4}},
		{packettest.Frame{Src: packettest.HostA6}, packettest.Frame{Src: packettest.HostB6}},
	} {
		for _, raw := range []bool{false, true} {
			s := &SeqShift{Offset: [2]uint32{offA, offB}, RawSACK: raw}
			// a to b: data with SACK blocks of b's stream.
			in := withVnet(0, seg(fam.a, fam.b, 1000, 0xfffffff0, packettest.ACK|packettest.PSH, sackOpt(5000, 6000, 0xfffffff8, 8)))
			edges := sackOpt(5000-offB, 6000-offB, 0xfffffff8-offB, 8-offB)
			if raw {
				edges = sackOpt(5000, 6000, 0xfffffff8, 8)
			}
			want := withVnet(0, seg(fam.a, fam.b, 1000+offA, 0xfffffff0-offB, packettest.ACK|packettest.PSH, edges))
			if !s.Apply(0, in) || !bytes.Equal(in, want) {
				t.Errorf("%v raw=%v a->b:\n got %x\nwant %x", fam.a.Src, raw, in, want)
			}
			// b to a: the other offsets.
			in = withVnet(0, seg(fam.b, fam.a, 7, 1000+offA, packettest.ACK, nil))
			want = withVnet(0, seg(fam.b, fam.a, 7+offB, 1000, packettest.ACK, nil))
			if !s.Apply(1, in) || !bytes.Equal(in, want) {
				t.Errorf("%v b->a:\n got %x\nwant %x", fam.a.Src, in, want)
			}
			// A SYN: no ACK flag, the ACK field stays.
			in = withVnet(0, seg(fam.a, fam.b, 99, 1234, packettest.SYN, packettest.MSSOption(1460)))
			want = withVnet(0, seg(fam.a, fam.b, 99+offA, 1234, packettest.SYN, packettest.MSSOption(1460)))
			if !s.Apply(0, in) || !bytes.Equal(in, want) {
				t.Errorf("%v SYN:\n got %x\nwant %x", fam.a.Src, in, want)
			}
			wantLeft := uint64(0)
			if raw {
				wantLeft = 2
			}
			if s.Shifted[0].Load() != 2 || s.Shifted[1].Load() != 1 || s.SACKLeft[0].Load() != wantLeft {
				t.Errorf("counters: shifted %d/%d, SACK blocks left %d", s.Shifted[0].Load(), s.Shifted[1].Load(), s.SACKLeft[0].Load())
			}
		}
	}

	s := &SeqShift{Offset: [2]uint32{offA, offB}}
	// A partial checksum (the kernel completes it): the field stays.
	in := withVnet(vnetNeedsCsum, seg2(t, 1000, 50))
	want := append([]byte(nil), in...)
	binary.BigEndian.PutUint32(want[vnetHdrLen+34+4:], 1000+offA)
	binary.BigEndian.PutUint32(want[vnetHdrLen+34+8:], 50-offB)
	if !s.Apply(0, in) || !bytes.Equal(in, want) {
		t.Errorf("partial checksum:\n got %x\nwant %x", in, want)
	}
	// Left alone: a fragment, UDP, ARP, a cut frame.
	frag := packettest.Frame{Src: packettest.HostA4, Dst: packettest.HostB4, MoreFragments: true,
		TCP: &packettest.TCP{SrcPort: 1, DstPort: 2, Seq: 3, Flags: packettest.ACK, Payload: make([]byte, 40)}}.Bytes()
	udp := packettest.Frame{Src: packettest.HostA4, Dst: packettest.HostB4, Proto: 17, L4: packettest.UDP(1, 2, []byte("x"))}.Bytes()
	arp := packettest.ARP(packettest.HostA4, packettest.HostB4)
	// An IPv4 header claiming 60 bytes in a 30-byte packet.
	longIHL := seg2(t, 1, 2)[:14+30]
	longIHL[14] = 0x4f
	for _, f := range [][]byte{frag, udp, arp, seg2(t, 1, 2)[:40], longIHL} {
		in := withVnet(0, f)
		keep := append([]byte(nil), in...)
		if s.Apply(0, in) || !bytes.Equal(in, keep) {
			t.Errorf("rewrote what it cannot: %x", keep)
		}
	}
}

// seg2 is an IPv4 TCP ACK segment with seq and ack (20-byte IP header, so
// the TCP header starts at byte 34 of the frame).
func seg2(t *testing.T, seq, ack uint32) []byte {
	t.Helper()
	return packettest.Frame{Src: packettest.HostA4, Dst: packettest.HostB4,
		TCP: &packettest.TCP{SrcPort: 1, DstPort: 2, Seq: seq, Ack: ack, Flags: packettest.ACK, Payload: []byte("abc")}}.Bytes()
}
