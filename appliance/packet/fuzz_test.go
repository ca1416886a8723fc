package packet_test

import (
	"bytes"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/packet"
	pt "github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// FuzzDecode: Decode never panics, every accessor stays inside the frame, and
// a rewrite that changes nothing leaves a frame that decodes the same way.
func FuzzDecode(f *testing.F) {
	for _, tc := range namedFrames() {
		f.Add(tc.frame)
		f.Add(tc.frame[:len(tc.frame)*2/3])
	}
	// Regressions found by the fuzzer: a checksum of 0xffff (-0) must survive
	// no-op rewrites of the TCP header and of the IPv4 total length.
	f.Add([]byte("000000000000\b\x00E0\x00(00\x00\x000\x060000000000000000000000X000\xff\xff000"))
	f.Add([]byte("000000000000\b\x00E0\x00(00\x00\x000\x06\xff\xff00000000000000000000X0000000"))
	f.Fuzz(func(t *testing.T, frame []byte) {
		var p packet.Packet
		err := p.Decode(frame)
		touchAll(&p)
		if err != nil {
			return
		}
		n := len(frame)
		if p.End() > n || p.L3Offset() > p.End() || p.L4Offset() > p.End() || p.PayloadOffset() > p.End() {
			t.Fatalf("offsets out of range: l3 %d l4 %d pay %d end %d len %d", p.L3Offset(), p.L4Offset(), p.PayloadOffset(), p.End(), n)
		}
		if q, ok := p.Quote(); ok && (q.L3 > q.End || q.L4 > q.End || q.End > p.End()) {
			t.Fatalf("quote out of range: %+v", q)
		}
		orig := append([]byte(nil), frame...)
		verified := p.VerifyL4Checksum()
		if p.IsTCP() {
			p.SetSeq(p.Seq())
			p.SetAck(p.Ack())
			p.SetWindow(p.Window())
			p.SetFlags(p.Flags())
			p.ClampMSS(0xffff)
			it := p.Options()
			for o, ok := it.Next(); ok; o, ok = it.Next() {
				p.PatchTCP(o.Off, frame[o.Off:o.Off+o.Total])
			}
			if !bytes.Equal(frame, orig) {
				t.Fatalf("no-op writers changed the frame")
			}
			if !p.IsFragment() {
				dst := make([]byte, n+40)
				m, err := p.ReplaceOptions(dst, append([]byte(nil), p.OptionBytes()...))
				if err != nil {
					t.Fatalf("ReplaceOptions with the same options: %v", err)
				}
				var a, b packet.Packet
				if err := a.Decode(orig); err != nil {
					t.Fatal(err)
				}
				if err := b.Decode(dst[:m]); err != nil {
					t.Fatalf("re-decode after no-op ReplaceOptions: %v", err)
				}
				if !sameDecode(&a, &b) {
					t.Fatalf("no-op ReplaceOptions changed the decode")
				}
				// Byte for byte the same up to the datagram end, except that a
				// checksum of 0xffff (-0) may come back as 0x0000 (+0).
				c := a.L4Offset() + 16
				if !bytes.Equal(dst[:c], orig[:c]) || !bytes.Equal(dst[c+2:m], orig[c+2:a.End()]) {
					t.Fatalf("no-op ReplaceOptions changed bytes")
				}
				if b.VerifyL4Checksum() != verified {
					t.Fatalf("no-op ReplaceOptions changed checksum validity")
				}
				r := append([]byte(nil), orig...)
				var rp packet.Packet
				if err := rp.Decode(r); err != nil {
					t.Fatal(err)
				}
				if err := rp.ResizePayload(len(rp.Payload())); err != nil {
					t.Fatalf("no-op ResizePayload: %v", err)
				}
				if !sameDecode(&a, &rp) || !bytes.Equal(rp.Frame(), orig[:a.End()]) {
					t.Fatalf("no-op ResizePayload changed the frame")
				}
			}
		}
		if s, ok := p.QuotedSeq(); ok {
			p.SetQuotedSeq(s)
		}
		if m, ok := p.MTU(); ok {
			p.SetMTU(m)
		}
		if !bytes.Equal(frame, orig) {
			t.Fatalf("no-op ICMP writers changed the frame")
		}
		var again packet.Packet
		if err := again.Decode(frame); err != nil || !sameDecode(&p, &again) {
			t.Fatalf("re-decode differs: %v", err)
		}
	})
}

// sameDecode compares everything a caller can see through the accessors.
func sameDecode(a, b *packet.Packet) bool {
	qa, oka := a.Quote()
	qb, okb := b.Quote()
	return a.IPVersion() == b.IPVersion() && a.EtherType() == b.EtherType() && a.VLANCount() == b.VLANCount() &&
		a.Proto() == b.Proto() && a.IsTCP() == b.IsTCP() && a.IsUDP() == b.IsUDP() && a.IsICMP() == b.IsICMP() &&
		a.IsFragment() == b.IsFragment() && a.IsNonFirstFragment() == b.IsNonFirstFragment() &&
		a.L3Offset() == b.L3Offset() && a.L4Offset() == b.L4Offset() && a.End() == b.End() &&
		bytes.Equal(a.Payload(), b.Payload()) && bytes.Equal(a.OptionBytes(), b.OptionBytes()) &&
		len(a.Datagram()) == len(b.Datagram()) && a.Seq() == b.Seq() && a.Ack() == b.Ack() &&
		oka == okb && qa == qb
}

// touchAll calls every read accessor; the fuzzer catches any out-of-range index.
func touchAll(p *packet.Packet) {
	_ = p.Frame()
	for i := -1; i < 3; i++ {
		p.VLAN(i)
	}
	p.Src()
	p.Dst()
	p.SrcAddr()
	p.DstAddr()
	p.Datagram()
	p.L4()
	p.Payload()
	p.SrcPort()
	p.DstPort()
	p.Seq()
	p.Ack()
	p.Flags()
	p.Window()
	p.Urgent()
	p.TCPChecksum()
	p.TCPHeader()
	p.OptionBytes()
	it := p.Options()
	for _, ok := it.Next(); ok; _, ok = it.Next() {
	}
	p.MSS()
	p.ICMPType()
	p.ICMPCode()
	p.IsPathMTU()
	p.MTU()
	p.QuotedSeq()
	p.QuotedPorts()
	p.QuotedFlowKey()
	p.FlowKey()
	p.VerifyIPv4Checksum()
	p.VerifyL4Checksum()
}

// FuzzOptions: the option walker stays inside its region whatever the bytes,
// and ReplaceOptions puts any options block of up to 40 bytes into a SYN with
// every length and checksum right.
func FuzzOptions(f *testing.F) {
	f.Add([]byte{2, 4, 5, 0xb4, 1, 3, 3, 7, 4, 2, 69, 4, 0x20, 0x23})
	f.Add([]byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2})
	f.Add([]byte{5, 10, 0, 0, 0, 1, 0, 0, 0, 2})
	f.Add([]byte{2, 1})
	f.Add([]byte{0})
	base := pt.Frame{Src: pt.HostA6, Dst: pt.HostB6, TCP: &pt.TCP{SrcPort: 1, DstPort: 2, Flags: pt.SYN, Options: pt.MSSOption(1440), Payload: []byte("d")}}.Bytes()
	f.Fuzz(func(t *testing.T, opts []byte) {
		it := packet.ParseOptions(opts)
		for o, ok := it.Next(); ok; o, ok = it.Next() {
			if o.Off < 0 || o.Off+o.Total > len(opts) || len(o.Data) != o.Total-2 {
				t.Fatalf("option out of range: %+v in %d bytes", o, len(opts))
			}
		}
		var p packet.Packet
		buf := make([]byte, len(base)+40)
		copy(buf, base)
		if err := p.Decode(buf[:len(base)]); err != nil {
			t.Fatal(err)
		}
		n, err := p.ReplaceOptions(buf, opts)
		if len(opts) > packet.MaxOptionsLen {
			if err != packet.ErrOptionsTooLong {
				t.Fatalf("%d bytes of options: %v", len(opts), err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(p.OptionBytes()[:len(opts)], opts) || string(p.Payload()) != "d" || n != p.End() {
			t.Fatalf("rewritten frame wrong")
		}
		if !p.VerifyL4Checksum() {
			t.Fatal("checksum wrong after ReplaceOptions")
		}
	})
}
