package appliance

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// TestRestartedFlows: after a restart the workers see connections only
// mid-stream. With a real engine behind them, a plain one (its tuple not in
// the negotiated set) passes unchanged and goes back on the fast path once
// a segment from each side passed; a negotiated one is reset, never passed,
// and stays off the fast path.
func TestRestartedFlows(t *testing.T) {
	set := engine.NewNegotiatedSet(engine.NegotiatedConfig{})
	// a4:40001 <-> b4:443 was encrypted before the restart (a4 inside).
	set.Add(netip.AddrPortFrom(a4, 40001), netip.AddrPortFrom(b4, 443), time.Time{})
	r := newRig(t, rigOpts{fastPath: true, handler: func(int) (FrameHandler, error) {
		return engine.New(engine.Config{}, engine.Deps{Negotiated: set})
	}})

	plain := tcpFrame(a4, b4, 40000, 80, packettest.ACK|packettest.PSH, 1000, 2000, []byte("plain data"))
	r.send(Inside, plain)
	if len(r.out[1]) != 1 || string(r.out[1][0]) != string(plain) || len(r.out[0]) != 0 {
		t.Fatalf("plain segment: out %d frames, back %d", len(r.out[1]), len(r.out[0]))
	}
	k := key4(a4, b4, 40000, 80)
	if r.bump.Listed(k) || r.bump.Listed(keyRev(k)) {
		t.Error("the plain connection is on the fast path after a segment from one side")
	}
	reply := tcpFrame(b4, a4, 80, 40000, packettest.ACK, 2000, 1010, nil)
	r.send(Outside, reply)
	if len(r.out[0]) != 1 || string(r.out[0][0]) != string(reply) {
		t.Fatalf("plain reply: %d frames back", len(r.out[0]))
	}
	if !r.bump.Listed(k) || !r.bump.Listed(keyRev(k)) {
		t.Error("the plain connection is not back on the fast path")
	}

	r.out = [2][][]byte{}
	enc := tcpFrame(a4, b4, 40001, 443, packettest.ACK|packettest.PSH, 1000, 2000, []byte("MARKER plaintext"))
	r.send(Inside, enc)
	if len(r.out[0]) != 1 {
		t.Fatalf("negotiated segment: %d frames back to the host, want its RST", len(r.out[0]))
	}
	for _, f := range r.out[1] {
		if bytes.Contains(f, []byte("MARKER")) {
			t.Fatal("the negotiated connection's plaintext left on the wire")
		}
	}
	k = key4(a4, b4, 40001, 443)
	if r.bump.Listed(k) || r.bump.Listed(keyRev(k)) {
		t.Error("the negotiated tuple went on the fast path")
	}
}

// The same with the engine off (tcpincd's engine.enabled: false): the
// workers' handler is a guard over the pinned negotiated set
// (engine.NewGuard), not Passthrough, which let the negotiated
// connection's plaintext onto the wire. The plain connection still goes on
// the fast path.
func TestRestartedFlowsEngineOff(t *testing.T) {
	set := engine.NewNegotiatedSet(engine.NegotiatedConfig{})
	set.Add(netip.AddrPortFrom(a4, 40001), netip.AddrPortFrom(b4, 443), time.Now().Add(engine.IdleLinger))
	r := newRig(t, rigOpts{fastPath: true, handler: func(int) (FrameHandler, error) { return engine.NewGuard(set, nil) }})

	r.send(Inside, tcpFrame(a4, b4, 40000, 80, packettest.ACK|packettest.PSH, 1000, 2000, []byte("plain data")))
	r.send(Outside, tcpFrame(b4, a4, 80, 40000, packettest.ACK, 2000, 1010, nil))
	if len(r.out[0]) != 1 || len(r.out[1]) != 1 {
		t.Fatalf("plain connection: %d and %d frames passed, want 1 each way", len(r.out[1]), len(r.out[0]))
	}
	if k := key4(a4, b4, 40000, 80); !r.bump.Listed(k) || !r.bump.Listed(keyRev(k)) {
		t.Error("the plain connection is not back on the fast path")
	}

	r.out = [2][][]byte{}
	r.send(Inside, tcpFrame(a4, b4, 40001, 443, packettest.ACK|packettest.PSH, 1000, 2000, []byte("MARKER plaintext")))
	if len(r.out[0]) != 1 {
		t.Fatalf("negotiated segment: %d frames back to the host, want its RST", len(r.out[0]))
	}
	for _, f := range r.out[1] {
		if bytes.Contains(f, []byte("MARKER")) {
			t.Fatal("the negotiated connection's plaintext left on the wire")
		}
	}
	if k := key4(a4, b4, 40001, 443); r.bump.Listed(k) || r.bump.Listed(keyRev(k)) {
		t.Error("the negotiated tuple went on the fast path")
	}
}
