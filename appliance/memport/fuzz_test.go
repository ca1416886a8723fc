package memport

import (
	"net/netip"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

func tcpFrame(src, dst netip.Addr, sp, dp uint16, flags uint8, seq, ack uint32, payload []byte, tags ...packettest.Tag) []byte {
	return packettest.Frame{Tags: tags, Src: src, Dst: dst, TCP: &packettest.TCP{
		SrcPort: sp, DstPort: dp, Seq: seq, Ack: ack, Flags: flags, Window: 65535, Payload: payload,
	}}.Bytes()
}

// FuzzClassifyMatchesParser: when both the classifier model and the packet
// parser see a TCP segment, they agree on its flow key.
func FuzzClassifyMatchesParser(f *testing.F) {
	vlan := packettest.Tag{TPID: 0x8100, TCI: 7}
	for _, seed := range [][]byte{
		tcpFrame(packettest.HostA4, packettest.HostB4, 40000, 80, packettest.SYN, 100, 0, nil),
		tcpFrame(packettest.HostB4, packettest.HostA4, 80, 40000, packettest.ACK|packettest.PSH, 500, 101, []byte("data")),
		tcpFrame(packettest.HostA4, packettest.HostB4, 40002, 22, packettest.FIN|packettest.ACK, 7, 9, nil, vlan),
		tcpFrame(packettest.HostA6, packettest.HostB6, 40001, 443, packettest.ACK, 1, 2, []byte("v6")),
		{},
		make([]byte, 14),
	} {
		f.Add(seed)
	}
	b := NewBump(nil, nil, [2]func([]byte){}, true, 1)
	var p packet.Packet
	f.Fuzz(func(t *testing.T, frame []byte) {
		_, key, tcp := b.classify(frame)
		if !tcp || p.Decode(frame) != nil || !p.IsTCP() {
			return
		}
		if got, _ := p.FlowKey(); got != key {
			t.Fatalf("classifier key %+v, parser key %+v", key, got)
		}
	})
}
