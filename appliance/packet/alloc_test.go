package packet_test

import (
	"testing"

	"github.com/tcpinc/tcpinc/appliance/packet"
	pt "github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// TestZeroAllocs proves the per-packet operations do not allocate.
func TestZeroAllocs(t *testing.T) {
	frames := namedFrames()
	var p packet.Packet
	check := func(name string, f func()) {
		t.Helper()
		if n := testing.AllocsPerRun(200, f); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", name, n)
		}
	}
	check("Decode every frame kind", func() {
		for i := range frames {
			p.Decode(frames[i].frame)
		}
	})
	check("Decode malformed", func() {
		p.Decode(frames[0].frame[:30])
		p.Decode(nil)
	})
	frame := pt.Frame{Tags: []pt.Tag{{TPID: 0x8100, TCI: 3}}, Src: pt.HostA6, Dst: pt.HostB6,
		TCP: tcpSeg(pt.ACK, append(pt.MSSOption(1460), pt.TimestampOption(1, 2)...), make([]byte, 100))}.Bytes()
	buf := make([]byte, len(frame), len(frame)+64)
	copy(buf, frame)
	if err := p.Decode(buf); err != nil {
		t.Fatal(err)
	}
	var seq uint32
	check("in-place writers", func() {
		seq++
		p.SetSeq(seq)
		p.SetAck(seq * 3)
		p.SetWindow(uint16(seq))
		p.SetFlags(pt.ACK | uint8(seq&1))
		p.ClampMSS(1400 - uint16(seq&1))
		o, _, _ := p.FindOption(packet.OptTimestamp)
		p.PatchTCP(o.Off+2, o.Data[4:8])
	})
	check("options", func() {
		it := p.Options()
		for _, ok := it.Next(); ok; _, ok = it.Next() {
		}
		p.MSS()
	})
	check("checksums and keys", func() {
		p.VerifyL4Checksum()
		p.FixL4Checksum()
		p.FlowKey()
		p.SrcAddr()
	})
	short := []byte{1, 1, 1, 1}
	long := []byte{2, 4, 5, 0xb4, 69, 4, 0x20, 0x23}
	check("ReplaceOptions in place", func() {
		p.ReplaceOptions(buf[:cap(buf)], long)
		p.ReplaceOptions(buf[:cap(buf)], short)
	})
	if !p.VerifyL4Checksum() {
		t.Error("checksum broken after the loops")
	}
	icmp := pt.Frame{Src: pt.HostA4, Dst: pt.HostB4, Proto: 1, L4: pt.ICMP(3, 4, 1400,
		pt.Quote(pt.Frame{Src: pt.HostB4, Dst: pt.HostA4, TCP: tcpSeg(pt.ACK, nil, nil)}.Bytes(), 28))}.Bytes()
	check("ICMP quote", func() {
		p.Decode(icmp)
		s, _ := p.QuotedSeq()
		p.SetQuotedSeq(s + 1)
		p.SetMTU(1380)
		p.QuotedFlowKey()
	})
}
