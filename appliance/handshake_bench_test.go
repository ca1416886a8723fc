package appliance

import (
	"net/netip"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

// BenchmarkConnection is one whole short connection (handshake, a 4-byte
// request, a 4-byte answer, FIN both ways) through two appliances back to
// back, in the worker code with Poll, the public-key work inline: the
// per-connection cost of the connection-rate bench without the kernel.
// "fresh" does the X25519 key exchange every time, "resumed" resumes from
// the cached session (RFC 8548 §3.5). For profiles:
//
//	go test -run XXX -bench Connection -cpuprofile cpu.out ./appliance
func BenchmarkConnection(b *testing.B) {
	for _, tc := range []struct {
		name   string
		resume bool
	}{{"fresh", false}, {"resumed", true}} {
		b.Run(tc.name, func(b *testing.B) {
			var engines []*engine.Engine
			mk := func() *rig {
				cfg := engine.Config{NoResumption: !tc.resume}
				deps := engine.Deps{}
				if tc.resume {
					deps.Cache = tcpcrypt.NewCache[netip.Addr](tcpcrypt.CacheConfig{})
				}
				e, err := engine.New(cfg, deps)
				if err != nil {
					b.Fatal(err)
				}
				engines = append(engines, e)
				return newRig(b, rigOpts{countOnly: false, handler: func(int) (FrameHandler, error) { return e, nil }})
			}
			gA, gB := mk(), mk()
			shuttle := func() {
				shuttleOutside(gA, gB)
				gA.out[Inside], gB.out[Inside] = nil, nil
			}
			const S, A, P, F = packettest.SYN, packettest.ACK, packettest.PSH, packettest.FIN
			const isnA, isnB = 1000, 5000
			conn := func(port uint16) {
				gA.send(Inside, seg(a4, b4, port, 80, S, isnA, 0, nil))
				shuttle()
				gB.send(Inside, seg(b4, a4, 80, port, S|A, isnB, isnA+1, nil))
				shuttle()
				gA.send(Inside, seg(a4, b4, port, 80, A, isnA+1, isnB+1, nil))
				shuttle()
				gA.send(Inside, seg(a4, b4, port, 80, A|P, isnA+1, isnB+1, []byte("ping")))
				shuttle()
				gB.send(Inside, seg(b4, a4, 80, port, A|P, isnB+1, isnA+5, []byte("pong")))
				shuttle()
				gA.send(Inside, seg(a4, b4, port, 80, A|F, isnA+5, isnB+5, nil))
				shuttle()
				gB.send(Inside, seg(b4, a4, 80, port, A|F, isnB+5, isnA+6, nil))
				shuttle()
				gA.send(Inside, seg(a4, b4, port, 80, A, isnA+6, isnB+6, nil))
				shuttle()
			}
			conn(1024) // the resumed case's first connection is fresh
			b.ResetTimer()
			for i := range b.N {
				conn(uint16(1025 + i%60000))
			}
			b.StopTimer()
			for _, e := range engines {
				c := e.Counters()
				want := uint64(0)
				if tc.resume {
					want = uint64(b.N)
				}
				if c.Encrypted.Load() != uint64(b.N+1) || c.Resumed.Load() != want {
					b.Fatalf("%d encrypted, %d resumed; want %d, %d", c.Encrypted.Load(), c.Resumed.Load(), b.N+1, want)
				}
			}
		})
	}
}

// shuttleOutside carries what each of two back-to-back bumps sent out of
// its outside port into the other's, until neither sends more.
func shuttleOutside(gA, gB *rig) {
	for len(gA.out[Outside])+len(gB.out[Outside]) > 0 {
		fa, fb := gA.out[Outside], gB.out[Outside]
		gA.out[Outside], gB.out[Outside] = nil, nil
		for _, f := range fa {
			gB.send(Outside, f)
		}
		for _, f := range fb {
			gA.send(Outside, f)
		}
	}
}
