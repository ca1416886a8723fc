package engine

import (
	"encoding/binary"
	"testing"
)

// tsVal is the TSval of a segment's timestamps option (0 without one).
func tsVal(t *testing.T, s segv) uint32 {
	t.Helper()
	o := option(s.opts, 8)
	if len(o) != 10 {
		return 0
	}
	return binary.BigEndian.Uint32(o[2:])
}

// The appliance as host B: the inside host's first SYN-ACK is lost, the far
// host resends its SYN and the inside host its SYN-ACK, with a newer TSval,
// which the far host takes as TS.Recent. The segments the appliance then
// sends on the inside host's behalf (Init2 first) must not carry the older
// TSval: the far TCP would drop them as old duplicates (RFC 7323 §5.3,
// PAWS), Init2 would never arrive and the key exchange would time out (seen
// in the interop matrix as "no Init2" with Linux as host A).
func TestInit2TSvalAfterRetransmittedSYNACK(t *testing.T) {
	ga, gb := newGW(t, Config{TEPs: testTEPs}), newGW(t, Config{TEPs: testTEPs})
	syn := tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1000), nil)
	_, toOut := ga.push(Inside, syn)
	wireSYN := one(t, "G_A SYN", toOut)
	toIn, _ := gb.push(Outside, tcpFrameFrom(wireSYN))
	one(t, "G_B SYN inside", toIn)
	_, toOut = gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 5000), nil))
	one(t, "G_B first SYN-ACK", toOut) // lost on the way
	// a's SYN again, and b's SYN-ACK again, 1 s later by b's clock.
	toIn, _ = gb.push(Outside, tcpFrameFrom(wireSYN))
	one(t, "G_B repeated SYN inside", toIn)
	_, toOut = gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 6000), nil))
	synack := one(t, "G_B second SYN-ACK", toOut)
	if tsVal(t, synack) != 6000 {
		t.Fatalf("second SYN-ACK TSval %d, want 6000", tsVal(t, synack))
	}
	toIn, _ = ga.push(Outside, tcpFrameFrom(synack))
	one(t, "G_A SYN-ACK inside", toIn)
	_, toOut = ga.push(Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF, 502, tsOpt(1001, 6000), nil))
	if len(toOut) != 2 {
		t.Fatalf("G_A third segment: %d frames, want ACK and Init1", len(toOut))
	}
	third, init1 := parse(t, toOut[0]), parse(t, toOut[1])
	gb.push(Outside, tcpFrameFrom(third))
	_, toOut = gb.push(Outside, tcpFrameFrom(init1))
	init2 := one(t, "G_B Init2", toOut)
	if len(init2.payload) == 0 {
		t.Fatalf("G_B sent no Init2: %+v", init2)
	}
	if got := tsVal(t, init2); got < 6000 {
		t.Fatalf("Init2 TSval %d is older than the TSval of the SYN-ACK the far host kept (6000)", got)
	}
}
