package engine

import (
	"bytes"
	"testing"
)

// Init2 split across segments, its tail sharing a segment with the first
// frame (docs/protocol.md §8: the stream may be cut anywhere).
func TestSplitInitSharedWithFrame(t *testing.T) {
	ga := newGW(t, Config{TEPs: testTEPs})
	gb := newGW(t, Config{TEPs: testTEPs})
	o := toThirdSegment(ga, gb)
	gb.push(Outside, o[0])
	_, o = gb.push(Outside, o[1])
	init2 := one(t, "Init2", o)
	// b sends data at once; G_B frames it after Init2.
	_, o = gb.push(Inside, tcpFrame(addrB, addrA, isnB+1, isnA+1, ackF|pshF, 509, tsOpt(3, 2), []byte("first words from b")))
	fr := one(t, "b's first frame", o)
	first := init2
	first.payload = init2.payload[:30]
	first.flags = ackF
	second := init2
	second.seq += 30
	second.payload = append(append([]byte{}, init2.payload[30:]...), fr.payload...)
	in, _ := ga.push(Outside, first.frame())
	if len(in) != 0 && parse(t, in[0]).flags&rstF != 0 {
		t.Fatal("RST after the first part")
	}
	in, _ = ga.push(Outside, second.frame())
	var got []byte
	for _, f := range in {
		s := parse(t, f)
		if s.flags&rstF != 0 {
			t.Fatalf("aborted: %d auth failures", ga.e.Counters().AuthFailures.Load())
		}
		got = append(got, s.payload...)
	}
	if !bytes.Equal(got, []byte("first words from b")) {
		t.Fatalf("a got %q", got)
	}
}
