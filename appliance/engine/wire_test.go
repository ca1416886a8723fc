package engine

import (
	"testing"

	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// The template's header sums (tmpl.sums) stand in for summing every built
// frame's headers: frames built from templates of every shape, turned
// around or not, at several lengths, carry the checksums a full computation
// gives (packettest's reference, independent of package packet's).
func TestTemplateSums(t *testing.T) {
	tcp := &packettest.TCP{SrcPort: 40000, DstPort: 443, Seq: 1, Ack: 2, Flags: packettest.ACK, Window: 100}
	shapes := map[string]packettest.Frame{
		"v4":         {Src: packettest.HostA4, Dst: packettest.HostB4, TCP: tcp},
		"v4 options": {Src: packettest.HostA4, Dst: packettest.HostB4, IPv4Options: []byte{7, 7, 4, 0, 0, 0, 0, 1}, TCP: tcp},
		"v4 vlan":    {Src: packettest.HostA4, Dst: packettest.HostB4, Tags: []packettest.Tag{{TPID: 0x8100, TCI: 5}}, TCP: tcp},
		"v6":         {Src: packettest.HostA6, Dst: packettest.HostB6, TCP: tcp},
		"v6 ext":     {Src: packettest.HostA6, Dst: packettest.HostB6, Ext: []packettest.Ext{{Proto: 60, Data: []byte{1, 4, 0, 0, 0, 0}}}, TCP: tcp},
	}
	for name, fr := range shapes {
		for _, rev := range []bool{false, true} {
			var p packet.Packet
			if err := p.Decode(fr.Bytes()); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			var tm tmpl
			if !tm.set(&p) {
				t.Fatalf("%s: template refused", name)
			}
			if rev {
				tm.reverse()
			}
			for _, n := range []int{0, 1, 1400, 8928} {
				buf := make([]byte, 10000)
				s := seg{seq: 7, ack: 9, flags: packet.FlagACK, win: 3, opts: []byte{1, 1, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8}}
				hl, pl := tm.build(buf, &s, n)
				for i := range pl {
					pl[i] = byte(i*13 + n)
				}
				var ids uint16
				tm.finish(buf, hl+n, true, &ids)
				var q packet.Packet
				if err := q.Decode(buf[:hl+n]); err != nil {
					t.Fatalf("%s rev=%v n=%d: %v", name, rev, n, err)
				}
				l4 := buf[q.L4Offset() : hl+n]
				if q.IPVersion() == 4 && packettest.RefChecksum(buf[q.L3Offset():q.L4Offset()]) != 0 {
					t.Errorf("%s rev=%v n=%d: IPv4 header checksum wrong", name, rev, n)
				}
				if packettest.RefChecksum(packettest.Pseudo(q.SrcAddr(), q.DstAddr(), 6, len(l4)), l4) != 0 {
					t.Errorf("%s rev=%v n=%d: TCP checksum wrong", name, rev, n)
				}
			}
		}
	}
}
