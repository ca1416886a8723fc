package engine

import (
	"bytes"
	"net/netip"
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

// Flows are keyed without VLAN IDs (one address space per appliance,
// docs/architecture.md), and a segment of another VLAN's connection on an
// encrypted flow's tuple was taken as the flow's own: inside the window,
// its bytes were sealed into the encrypted stream and reached that
// connection's far host (a frames review: "X-TENANT-SECRET" delivered to
// b). Such segments are dropped and counted, from either side; the flow's
// own frames with a priority tag (VID 0) are still its own.
func TestOtherVLANNeverJoinsAFlow(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	tagged := func(src, dst netip.AddrPort, seq, ack uint32, tci uint16, payload []byte) []byte {
		return packettest.Frame{Src: src.Addr(), Dst: dst.Addr(), DF: true,
			Tags: []packettest.Tag{{TPID: 0x8100, TCI: tci}},
			TCP: &packettest.TCP{SrcPort: src.Port(), DstPort: dst.Port(), Seq: seq, Ack: ack,
				Flags: ackF | pshF, Window: 502, Payload: payload}}.Bytes()
	}
	secret := []byte("X-TENANT-SECRET")
	for _, c := range []struct {
		g    *gw
		from PortID
		fr   []byte
	}{
		{pr.ga, Inside, tagged(addrA, addrB, h.aNext, h.bNext, 10, secret)},
		{pr.gb, Outside, tagged(addrA, addrB, isnA+1+75, h.bNext, 10, secret)},
		{pr.gb, Inside, tagged(addrB, addrA, h.bNext, h.aNext, 10, secret)},
	} {
		toIn, toOut := c.g.push(c.from, c.fr)
		if len(toIn)+len(toOut) != 0 {
			t.Fatalf("a segment of VLAN 10 from port %d: %d frames in, %d out; want none", c.from, len(toIn), len(toOut))
		}
	}
	if d := pr.ga.e.Counters().Drops[DropOtherVLAN].Load() + pr.gb.e.Counters().Drops[DropOtherVLAN].Load(); d != 3 {
		t.Fatalf("other_vlan drops %d, want 3", d)
	}
	// The connection goes on; its own frames, priority-tagged, too.
	atB, _ := pr.toB(pr.aSends(&h, []byte("own data"), pshF))
	if len(atB) != 1 || string(atB[0].payload) != "own data" {
		t.Fatalf("b got %+v", atB)
	}
	pr.tsA++
	_, out := pr.ga.push(Inside, tagged(addrA, addrB, h.aNext, h.bNext, 5<<13, []byte("prio")))
	if len(out) != 1 || bytes.Contains(out[0], []byte("prio")) {
		t.Fatalf("a's priority-tagged data: %d frames out, or in plaintext", len(out))
	}
}
