package engine

import "testing"

// An RST from the inside host during the key exchange, after it queued
// data the appliance could not send yet: it goes to R at the wire's
// SND.NXT (the end of Init1), the only number R's RFC 5961 check accepts
// at once, not past bytes that never left.
func TestHostRSTDuringKexAtSndNxt(t *testing.T) {
	ga := newGW(t, Config{TEPs: testTEPs})
	gb := newGW(t, Config{TEPs: testTEPs})
	_, o := ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	gb.push(Outside, o[0])
	_, o = gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 2), nil))
	ga.push(Outside, o[0])
	_, o = ga.push(Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF, 502, tsOpt(2, 2), nil))
	if len(o) != 2 || parse(t, o[0]).seq != isnA+1 || parse(t, o[1]).seq != isnA+1 {
		t.Fatalf("third segment and Init1: %d frames", len(o))
	}
	data := []byte("queued before the keys")
	_, o = ga.push(Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF|pshF, 502, tsOpt(3, 2), data))
	none(t, "pre-key data on the wire", o)
	_, o = ga.push(Inside, tcpFrame(addrA, addrB, isnA+1+uint32(len(data)), isnB+1, rstF|ackF, 0, nil, nil))
	r := one(t, "RST on the wire", o)
	if r.flags&rstF == 0 || r.seq != isnA+1+75 || len(r.payload) != 0 {
		t.Fatalf("RST: seq %x flags %x, want RST at %x (after Init1)", r.seq, r.flags, isnA+1+75)
	}
}
