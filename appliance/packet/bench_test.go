package packet_test

import (
	"testing"

	"github.com/tcpinc/tcpinc/appliance/packet"
	pt "github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

func benchDecode(b *testing.B, frame []byte) {
	var p packet.Packet
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Decode(frame); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	b.Run("tcp4", func(b *testing.B) {
		benchDecode(b, pt.Frame{Src: pt.HostA4, Dst: pt.HostB4,
			TCP: tcpSeg(pt.ACK, pt.TimestampOption(1, 2), make([]byte, 1448))}.Bytes())
	})
	b.Run("vlan-tcp6", func(b *testing.B) {
		benchDecode(b, pt.Frame{Tags: []pt.Tag{{TPID: 0x8100, TCI: 10}}, Src: pt.HostA6, Dst: pt.HostB6,
			TCP: tcpSeg(pt.ACK, pt.TimestampOption(1, 2), make([]byte, 1428))}.Bytes())
	})
}

func BenchmarkUpdate(b *testing.B) {
	frame := pt.Frame{Src: pt.HostA4, Dst: pt.HostB4, TCP: tcpSeg(pt.ACK, pt.TimestampOption(1, 2), make([]byte, 1448))}.Bytes()
	var p packet.Packet
	p.Decode(frame)
	b.Run("Update32", func(b *testing.B) {
		b.ReportAllocs()
		hc := uint16(0x1234)
		var i uint32
		for b.Loop() {
			i++
			hc = packet.Update32(hc, i, i*7)
		}
		_ = hc
	})
	b.Run("SetSeq+SetAck", func(b *testing.B) {
		b.ReportAllocs()
		var i uint32
		for b.Loop() {
			i++
			p.SetSeq(i)
			p.SetAck(i)
		}
	})
	b.Run("FullRecompute1448", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(p.L4())))
		for b.Loop() {
			p.FixL4Checksum()
		}
	})
	b.Run("ReplaceOptions", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, len(frame)+40)
		copy(buf, frame)
		p.Decode(buf[:len(frame)])
		a, c := []byte{2, 4, 5, 0xb4, 69, 4, 0x20, 0x23}, pt.TimestampOption(1, 2)
		for b.Loop() {
			p.ReplaceOptions(buf, a)
			p.ReplaceOptions(buf, c)
		}
	})
}
