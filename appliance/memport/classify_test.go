package memport

import (
	"net/netip"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

var a4, b4 = packettest.HostA4, packettest.HostB4

func tcpFrame(src, dst netip.Addr, sp, dp uint16, flags uint8, seq, ack uint32, payload []byte, tags ...packettest.Tag) []byte {
	return packettest.Frame{Tags: tags, Src: src, Dst: dst, TCP: &packettest.TCP{
		SrcPort: sp, DstPort: dp, Seq: seq, Ack: ack, Flags: flags, Window: 65535, Payload: payload,
	}}.Bytes()
}

// TestClassifyICMPErrors: like the XDP classifier, the model sends every
// ICMP error message to a worker (from the inside one may quote decrypted
// plaintext; for a path MTU error the engine translates the quoted sequence
// number and lowers the MTU of an encrypted flow); informational ICMP and
// errors it could not read take the fast path. Every ICMPv4 fragment goes
// to a worker: a later one shows no type and may carry the rest of a quote.
func TestClassifyICMPErrors(t *testing.T) {
	seg4 := tcpFrame(a4, b4, 40000, 443, packettest.ACK, 100, 200, []byte("data"))
	seg6 := tcpFrame(packettest.HostA6, packettest.HostB6, 40000, 443, packettest.ACK, 100, 200, []byte("data"))
	icmp4 := func(typ, code uint8, frag bool) []byte {
		return packettest.Frame{Src: b4, Dst: a4, Proto: 1, MoreFragments: frag,
			L4: packettest.ICMP(typ, code, 1280, packettest.Quote(seg4, 28))}.Bytes()
	}
	icmp6 := func(typ, code uint8, tags ...packettest.Tag) []byte {
		return packettest.Frame{Tags: tags, Src: packettest.HostB6, Dst: packettest.HostA6, Proto: 58,
			L4: packettest.ICMP(typ, code, 1280, packettest.Quote(seg6, 48))}.Bytes()
	}
	for _, c := range []struct {
		name   string
		frame  []byte
		worker bool
	}{
		{"ICMPv4 fragmentation needed", icmp4(3, 4, false), true},
		{"ICMPv4 port unreachable", icmp4(3, 3, false), true},
		{"ICMPv4 source quench", icmp4(4, 0, false), true},
		{"ICMPv4 redirect", icmp4(5, 1, false), true},
		{"ICMPv4 time exceeded", icmp4(11, 0, false), true},
		{"ICMPv4 parameter problem", icmp4(12, 0, false), true},
		{"ICMPv4 echo", icmp4(8, 0, false), false},
		{"ICMPv4 echo reply", icmp4(0, 0, false), false},
		{"ICMPv4 timestamp", icmp4(13, 0, false), false},
		{"ICMPv4 fragmentation needed, fragmented", icmp4(3, 4, true), true},
		{"ICMPv4 echo, fragmented", icmp4(8, 0, true), true},
		{"ICMPv6 destination unreachable", icmp6(1, 4), true},
		{"ICMPv6 packet too big", icmp6(2, 0), true},
		{"VLAN ICMPv6 packet too big", icmp6(2, 0, packettest.Tag{TPID: 0x8100, TCI: 7}), true},
		{"ICMPv6 time exceeded", icmp6(3, 0), true},
		{"ICMPv6 parameter problem", icmp6(4, 0), true},
		{"ICMPv6 type 0", icmp6(0, 0), false},
		{"ICMPv6 type 5", icmp6(5, 0), false},
		{"ICMPv6 echo", icmp6(128, 0), false},
	} {
		for _, fast := range []bool{true, false} {
			b := NewBump(nil, nil, [2]func([]byte){}, fast, 1)
			toPeer, _, tcp := b.classify(c.frame)
			if want := fast && !c.worker; toPeer != want || tcp {
				t.Errorf("%s (fast path %v): to peer %v tcp %v, want to peer %v", c.name, fast, toPeer, tcp, want)
			}
		}
	}
}

// FuzzClassifyMatchesParser: when both the classifier model and the packet
// parser see a TCP segment, they agree on its flow key.
func FuzzClassifyMatchesParser(f *testing.F) {
	vlan := packettest.Tag{TPID: 0x8100, TCI: 7}
	for _, seed := range [][]byte{
		tcpFrame(a4, b4, 40000, 80, packettest.SYN, 100, 0, nil),
		tcpFrame(b4, a4, 80, 40000, packettest.ACK|packettest.PSH, 500, 101, []byte("data")),
		tcpFrame(a4, b4, 40002, 22, packettest.FIN|packettest.ACK, 7, 9, nil, vlan),
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
