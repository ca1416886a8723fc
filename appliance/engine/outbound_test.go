package engine

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

// A host retransmission is served whole from the store: the same bytes at
// the same sequence numbers (docs/protocol.md §12, TC-45). The store kept only
// [ackW, nextW), so once R acknowledged part of a frame, new frames could
// overwrite that part's bytes and the repeat carried other ciphertext at
// the frame's first sequence numbers.
func TestRetransmitAfterPartialAckSameBytes(t *testing.T) {
	pr := handshake(t)
	cfg := pr.ga.e.Config()
	cfg.RetransmitBytes = 2 * tcpcrypt.MaxFrameLen / 16 // the smallest store: 8192
	if err := pr.ga.e.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	var f *flow
	for _, g := range pr.ga.e.list {
		f = g
	}
	f.enc.store = ring{max: cfg.RetransmitBytes} // as a new flow would have it
	pr.ga.undrained = true                       // the swap above bypasses the budget
	f.enc.store.reserve(0, 0, f.enc.initLen)
	h := newHosts()
	first := pr.aSends(&h, bytes.Repeat([]byte{'x'}, 1000), pshF)
	orig := first[0]
	// R acknowledges half the frame.
	half := orig.seq + 500
	pr.ga.push(Outside, tcpFrame(addrB, addrA, isnB+1+74, half, ackF, 65535, tsOpt(pr.tsB, pr.tsA), nil))
	// More data, up to what the store takes.
	for i := 0; i < 7; i++ {
		pr.aSends(&h, bytes.Repeat([]byte{'y'}, 1000), pshF)
	}
	pr.aSends(&h, bytes.Repeat([]byte{'z'}, 500), pshF)
	// a retransmits its first segment.
	_, toOut := pr.ga.push(Inside, tcpFrame(addrA, addrB, isnA+1, h.bNext, ackF|pshF, 502, tsOpt(pr.tsA, pr.tsB), bytes.Repeat([]byte{'x'}, 1000)))
	var again *segv
	for _, o := range toOut {
		s := parse(t, o)
		if s.seq == orig.seq {
			again = &s
		}
	}
	if again == nil {
		t.Fatalf("no retransmission of the first frame (%d segments out)", len(toOut))
	}
	hasBytes(t, "retransmitted frame", again.payload, orig.payload)
}

// An MSS option of 0 (or a few bytes) in a SYN made the segmenting loops
// spin for ever: the far side's MSS in sendInit (a remote host hangs the
// worker, every flow with it, by offering TCP-ENO with MSS 0), the inside
// host's in sendPlain. MSS values are floored as Linux does (TCP_MIN_MSS).
func TestTinyMSSNoHang(t *testing.T) {
	for _, side := range []string{"far", "inside"} {
		done := make(chan string, 1)
		go func() {
			defer func() {
				if r := recover(); r != nil {
					done <- fmt.Sprint("panic: ", r)
				}
			}()
			ga := newGW(t, Config{TEPs: testTEPs})
			gb := newGW(t, Config{TEPs: testTEPs})
			synOptsA := synOpts(1460, 1)
			if side == "inside" {
				synOptsA = synOpts(0, 1)
			}
			_, out := ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOptsA, nil))
			syn := parse(t, out[0])
			if side == "far" {
				syn.opts[2], syn.opts[3] = 0, 0 // MSS 0 from the far side
			}
			gb.push(Outside, syn.frame())
			_, out = gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 5), nil))
			ga.push(Outside, out[0])
			_, out = ga.push(Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF, 502, tsOpt(2, 5), nil))
			var back [][]byte
			for _, o := range out {
				_, b := gb.push(Outside, o)
				back = append(back, b...)
			}
			for _, o := range back {
				ga.push(Outside, o)
			}
			// b sends data to a.
			_, out = gb.push(Inside, tcpFrame(addrB, addrA, isnB+1, isnA+1, ackF|pshF, 509, tsOpt(6, 2), make([]byte, 500)))
			for _, o := range out {
				ga.push(Outside, o)
			}
			done <- ""
		}()
		select {
		case msg := <-done:
			if msg != "" {
				t.Fatalf("%s MSS 0: %s", side, msg)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s MSS 0: the engine hangs", side)
		}
	}
}

// An RST from the inside host during the key exchange, after it queued
// data the appliance could not send yet: it goes to R at the wire's
// SND.NXT (the end of Init1), the only number R's RFC 5961 check accepts
// at once, not past bytes that never left.
func TestHostRSTDuringKexAtSndNxt(t *testing.T) {
	ga := newGW(t, Config{TEPs: testTEPs})
	gb := newGW(t, Config{TEPs: testTEPs})
	o := toThirdSegment(ga, gb)
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
