package appliance

import (
	"testing"

	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// TestDroppedSYNNotTracked: a frame the handler drops went nowhere, so it
// neither opens nor ends a connection in the workers' flow table. A SYN on
// the tuple of a plain connection on the fast path that the engine drops
// (shed under a SYN flood, or a blind one) leaves the connection on the fast
// path; before, the worker took it off (two map deletes per dropped SYN,
// which under a flood also made the worker fall behind its receive ring).
func TestDroppedSYNNotTracked(t *testing.T) {
	var p packet.Packet
	syns := 0
	r, _ := scriptedRig(t, true, func(_ engine.PortID, frame []byte, _ [2]TxSink) Verdict {
		if p.Decode(frame) != nil {
			t.Fatal("undecodable")
		}
		if p.Flags()&(packet.FlagSYN|packet.FlagACK) == packet.FlagSYN {
			if syns++; syns > 1 {
				return engine.Dropped
			}
		}
		return engine.Passthrough
	})
	k := key4(a4, b4, 1234, 80)
	for _, s := range conn("d", a4, b4, 1234, 80, packettest.FIN)[:3] {
		r.send(s.port, s.b)
	}
	if !r.bump.Listed(k) || !r.bump.Listed(keyRev(k)) {
		t.Fatal("the plain connection is not on the fast path")
	}
	r.send(Outside, tcpFrame(b4, a4, 80, 1234, packettest.SYN, 7000, 0, nil))
	if !r.bump.Listed(k) || !r.bump.Listed(keyRev(k)) {
		t.Fatal("a dropped SYN took the connection off the fast path")
	}
}
