package control

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance"
	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// With the engine off, the guards over a previous run's negotiated set
// reset its connections (engine.NewGuard), but the admin API read engine
// counters only from running engines: stray_resets, the drops and
// negotiated_set_entries stayed 0, so an operator could not see connections
// being reset, nor when the set had drained. The guards' counters are now
// the engine counters the API reports.
func TestAdminSourceGuardCounters(t *testing.T) {
	set := engine.NewNegotiatedSet(engine.NegotiatedConfig{Capacity: 16})
	a4, b4 := netip.AddrPortFrom(packettest.HostA4, 40001), netip.AddrPortFrom(packettest.HostB4, 443)
	set.Add(a4, b4, time.Now().Add(engine.IdleLinger))
	guards := NewGuards(set, slog.New(slog.DiscardHandler))
	a := newAppliance(t, 2, guards.NewHandler)
	src, err := NewAdminSource(a, nil, AdminInfo{Version: "t", Guards: guards})
	if err != nil {
		t.Fatal(err)
	}
	frame := packettest.Frame{Src: a4.Addr(), Dst: b4.Addr(), TCP: &packettest.TCP{
		SrcPort: a4.Port(), DstPort: b4.Port(), Seq: 1000, Ack: 2000, Flags: packettest.ACK | packettest.PSH,
		Window: 502, Payload: []byte("MARKER plaintext after restart"),
	}}.Bytes()
	var in, out discard
	guards.mu.Lock()
	g := guards.list[1]
	guards.mu.Unlock()
	if v := g.Handle(0, engine.Inside, frame, [2]appliance.TxSink{&in, &out}); v == engine.Passthrough {
		t.Fatal("the guard passed a negotiated tuple's segment")
	}
	c := src.Counters()
	if c.StrayResets != 1 || c.NegotiatedEntries == 0 || c.Drops["stale"] == 0 {
		t.Fatalf("admin counters with the engine off: stray_resets %d, negotiated_set_entries %d, drops %v; want 1, >0, stale counted",
			c.StrayResets, c.NegotiatedEntries, c.Drops)
	}
}
