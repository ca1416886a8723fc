package control

import (
	"net/netip"
	"testing"

	"github.com/tcpinc/tcpinc/appliance"
	"github.com/tcpinc/tcpinc/appliance/memport"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

var a4, b4 = packettest.HostA4, packettest.HostB4

// seg is a TCP segment with an MSS option on SYNs.
func seg(src, dst netip.Addr, sp, dp uint16, flags uint8, seq, ack uint32, payload []byte) []byte {
	var opts []byte
	if flags&packettest.SYN != 0 {
		opts = packettest.MSSOption(1460)
	}
	return packettest.Frame{Src: src, Dst: dst, TCP: &packettest.TCP{
		SrcPort: sp, DstPort: dp, Seq: seq, Ack: ack, Flags: flags, Window: 65535, Options: opts, Payload: payload,
	}}.Bytes()
}

// newAppliance is an appliance of queues workers over in-memory ports whose
// frames go nowhere, not started (Inspect runs in the caller's goroutine).
// newHandler nil: every worker runs appliance.Passthrough.
func newAppliance(t testing.TB, queues int, newHandler appliance.NewHandlerFunc) *appliance.Appliance {
	t.Helper()
	var in, out []appliance.Port
	for range queues {
		for _, side := range []*[]appliance.Port{&in, &out} {
			p, err := memport.New(64, 2048, nil)
			if err != nil {
				t.Fatal(err)
			}
			*side = append(*side, p)
		}
	}
	a, err := appliance.New(in, out, appliance.Options{NewHandler: newHandler})
	if err != nil {
		t.Fatal(err)
	}
	return a
}
