package engine

import (
	"testing"

	"github.com/tcpinc/tcpinc/appliance/packet"
)

// FuzzHandle feeds arbitrary frames from either port into an engine that
// holds an encrypted flow: the engine must never panic, and every frame it
// emits must be well formed (checkFrame).
func FuzzHandle(f *testing.F) {
	t0 := &testing.T{}
	pr := handshake(t0)
	h := newHosts()
	w := pr.aSends(&h, []byte("seed data"), pshF)
	f.Add(false, w[0].frame())
	f.Add(true, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF|pshF, 502, tsOpt(1, 1), []byte("x")))
	f.Add(false, tcpFrame(addrB, addrA, isnB+1, isnA+1, ackF|finF, 502, append(tsOpt(1, 1), 1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 9), nil))
	f.Add(true, tcpFrame(addrA, addrB, isnA+1, isnB+1, rstF, 0, nil, nil))
	f.Fuzz(func(t *testing.T, inside bool, frame []byte) {
		from := Outside
		if inside {
			from = Inside
		}
		// A frame with a wrong checksum may come out with a wrong checksum
		// (incremental updates keep it wrong); judge output only for valid
		// input.
		var p packet.Packet
		valid := p.Decode(frame) == nil && p.IsTCP() && p.VerifyL4Checksum() && (p.IPVersion() != 4 || p.VerifyIPv4Checksum())
		for _, g := range []*gw{pr.ga, pr.gb} {
			g.e.Handle(g.now, from, append([]byte(nil), frame...), g.tx)
			for _, s := range [][][]byte{g.in.take(), g.out.take()} {
				for _, fr := range s {
					if valid {
						checkFrame(t, fr)
					}
				}
			}
			g.tick(1e9)
		}
	})
}

// FuzzSegments sends well-formed segments with arbitrary numbers, flags,
// options and payload on the encrypted flow's own tuple, from either side,
// so the input reaches deep into the state machine. Nothing may panic and
// every emitted frame must be valid.
func FuzzSegments(f *testing.F) {
	f.Add(true, int32(0), int32(0), uint8(ackF|pshF), []byte{}, []byte("abc"))
	f.Add(false, int32(75), int32(74), uint8(ackF), []byte{}, make([]byte, 40))
	f.Add(false, int32(-1), int32(0), uint8(ackF|finF), []byte{1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 9}, []byte{})
	f.Add(true, int32(-1), int32(0), uint8(ackF), []byte{}, []byte{0})
	f.Fuzz(func(t *testing.T, inside bool, dseq, dack int32, flags uint8, opts, payload []byte) {
		if len(opts) > 40 || len(payload) > 3000 {
			return
		}
		pr := handshake(&testing.T{})
		h := newHosts()
		pr.toB(pr.aSends(&h, []byte("some data first"), pshF))
		var fr []byte
		if inside {
			fr = tcpFrame(addrA, addrB, h.aNext+uint32(dseq), h.bNext+uint32(dack), flags, 502, opts, payload)
		} else {
			fr = tcpFrame(addrB, addrA, isnB+1+74+uint32(dseq), isnA+1+75+uint32(dack), flags, 502, opts, payload)
		}
		for _, g := range []*gw{pr.ga, pr.gb} {
			for i := 0; i < 2; i++ {
				g.e.Handle(g.now, map[bool]PortID{true: Inside, false: Outside}[inside], append([]byte(nil), fr...), g.tx)
				g.tick(3e8)
			}
			for _, s := range [][][]byte{g.in.take(), g.out.take()} {
				for _, x := range s {
					checkFrame(t, x)
				}
			}
		}
	})
}
