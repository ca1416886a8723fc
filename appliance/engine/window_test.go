package engine

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

// farFrame seals data as one frame with G_A's keys at G_A's next wire
// offset, as a far host that frames as it likes (up to 64 KiB) sends it to
// G_B, and returns it as one segment.
func farFrame(t *testing.T, pr *pair, hdr tcpcrypt.FrameHeader, data []byte) segv {
	t.Helper()
	f := pr.ga.e.flows[flowKey{in: addrA, out: addrB}]
	return segv{src: addrA, dst: addrB, seq: wrap(isnA, f.enc.nextW), ack: isnB + 1 + 74, flags: ackF | pshF, win: 502,
		payload: farFrameAt(t, pr, hdr, data, f.enc.nextW)}
}

// farFrameAt seals data as one frame with G_A's keys at wire offset w.
func farFrameAt(t *testing.T, pr *pair, hdr tcpcrypt.FrameHeader, data []byte, w int64) []byte {
	t.Helper()
	f := pr.ga.e.flows[flowKey{in: addrA, out: addrB}]
	sk, err := f.keys.Send(len(data), hdr.FIN)
	if err != nil {
		t.Fatal(err)
	}
	hdr.Rekey = sk.Rekey
	buf := make([]byte, len(data)+hdr.Overhead())
	copy(buf[hdr.DataStart():], data)
	fr, err := sk.Sealer.Seal(buf, hdr, len(data), uint64(w))
	if err != nil {
		t.Fatal(err)
	}
	return fr
}

// rOpensWindow has R tell G_A that its window is wide open (0xffff << 7
// bytes), as a far side with room to spare would: a's data then goes on at
// once, whatever G_B itself advertised.
func (pr *pair) rOpensWindow() {
	pr.t.Helper()
	f := pr.ga.onlyFlow()
	pr.tsB++
	pr.ga.push(Outside, tcpFrame(addrB, addrA, wrap(isnB, f.rcv.rcvW), wrap(isnA, f.enc.ackW), ackF, 0xffff, tsOpt(pr.tsB, pr.tsA), nil))
}

// bOpensWindow has b open its window wide (0xffff << 7 bytes) and shut it
// again (509 << 7), and R get only the first of the two ACKs G_B sends for
// them: G_A then sends what a sends at once, up to the edge G_B gave R,
// which G_B accepts whatever b's window is now (RFC 9293 §3.8.6).
func (pr *pair) bOpensWindow(h *hosts) {
	pr.t.Helper()
	var told [][]byte
	for _, win := range []uint16{0xffff, 509} {
		pr.tsB++
		_, out := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, h.aNext, ackF, win, tsOpt(pr.tsB, pr.tsA), nil))
		told = append(told, out...)
	}
	if len(told) != 2 {
		pr.t.Fatalf("G_B sent R %d ACKs for b's two window updates, want 2", len(told))
	}
	pr.ga.push(Outside, told[0])
}

// cut splits a segment into segments of at most n payload bytes.
func cut(s segv, n int) (out []segv) {
	for off := 0; off < len(s.payload); off += n {
		c := s
		c.seq += uint32(off)
		c.payload = s.payload[off:min(off+n, len(s.payload))]
		out = append(out, c)
	}
	return out
}

// R may send up to any right edge G_B gave it (RFC 9293 §3.8.6: a receiver
// that shrinks its window still accepts what reaches an edge it
// advertised). A far host's large frame opens whole while b acknowledges
// only part of it; G_B acknowledges to R the frame's bytes but its last
// (custody), and the window must count from that ACK, not from the end of
// the frames b acknowledged, and reach no further than the reassembly
// holds. Before, the window counted from b's frames, so the edge R was
// told lay up to a frame beyond what G_B took: with 64 KiB frames past the
// acceptance bound (out_of_window), with 16 KiB frames past the
// reassembly's cap (reassembly_full); and the acceptance bound, fixed at
// the delivery ring's cap and a frame beyond b's frames, fell short of an
// edge given before the cap was lowered.
func TestFarSideMaySendUpToEveryEdgeItWasGiven(t *testing.T) {
	for _, c := range []struct {
		name    string
		n, k    int // k frames of n bytes
		unacked int // b acknowledges all but these
		cfg     Config
		bWin    uint16 // b's window, in units of its shift 7
	}{
		{"65518", tcpcrypt.MaxData, 1, 1000, Config{}, 0xffff},
		{"16384", 16384, 1, 1000, Config{}, 0xffff},
		{"16384/caps256KiB", 16384, 1, 1000, Config{DeliverBytes: 256 << 10, ReassemblyBytes: 256 << 10}, 8192},
		{"16384/reassembly64KiB", 16384, 1, 1000, Config{ReassemblyBytes: 64 << 10}, 0xffff},
		{"16384/deliverCapLowered", 16384, 1, 1000, Config{}, 0xffff},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			cfg.TEPs = testTEPs
			pr := handshakeOn(t, newGW(t, Config{TEPs: testTEPs}), newGW(t, cfg))
			var edge int64 // the furthest right edge G_B gave R, from a's ISN+1
			note := func(out []segv) {
				for _, s := range out {
					edge = max(edge, int64(s.ack-(isnA+1))+int64(s.win)<<7)
				}
			}
			bAck := func(ack uint32) (out [][]byte) {
				pr.tsB++
				_, toOut := pr.gb.push(Inside, tcpFrame(addrB, addrA, isnB+1, ack, ackF, c.bWin, tsOpt(pr.tsB, pr.tsA), nil))
				for _, f := range toOut {
					note([]segv{parse(t, f)})
				}
				return toOut
			}
			d := &pr.gb.onlyFlow().rcv
			edge = d.lastAckW + int64(d.lastWin)<<7 // from the handshake
			bAck(isnA + 1)                          // b opens its window
			data := bytes.Repeat([]byte("0123456789abcdef"), c.n*c.k/16+1)[:c.n*c.k]
			stream := farFrame(t, pr, tcpcrypt.FrameHeader{}, data[:c.n])
			for i := 1; i < c.k; i++ {
				w := int64(stream.seq-(isnA+1)) + int64(len(stream.payload))
				stream.payload = append(stream.payload, farFrameAt(t, pr, tcpcrypt.FrameHeader{}, data[i*c.n:(i+1)*c.n], w)...)
			}
			cnt := &pr.gb.e.Counters().Drops
			oow, full := cnt[DropOutOfWindow].Load(), cnt[DropReasmFull].Load()
			// R sends what its window takes, as a TCP sender does.
			var got []byte
			sent := int64(stream.seq - (isnA + 1))
			for _, s := range cut(stream, 1448) {
				end := int64(s.seq-(isnA+1)) + int64(len(s.payload))
				if end > edge {
					break
				}
				atB, back := pr.toB([]segv{s})
				note(back)
				for _, a := range atB {
					got = append(got, a.payload...)
				}
				sent = end
			}
			if !bytes.HasPrefix(data, got) || len(got) < len(data)-c.unacked {
				t.Fatalf("b got %d of the %d bytes", len(got), len(data))
			}
			bAck(isnA + 1 + uint32(len(data)-c.unacked))
			if c.name == "16384/deliverCapLowered" {
				// The operator lowers the cap (PUT /api/v1/config): the
				// edges R was given stand.
				cfg := pr.gb.e.Config()
				cfg.DeliverBytes = 4096
				if err := pr.gb.e.Reconfigure(cfg); err != nil {
					t.Fatal(err)
				}
			}
			// Then 1000 bytes ending at the furthest edge it was told: the
			// stream's where it has them (a TCP sender resends the same
			// bytes), held past a hole.
			far := segv{src: addrA, dst: addrB, seq: isnA + 1 + uint32(edge-1000), ack: isnB + 1 + 74, flags: ackF, win: 502, payload: make([]byte, 1000)}
			if i := int(far.seq - stream.seq); i < len(stream.payload) {
				copy(far.payload, stream.payload[i:])
			}
			nudge, back := pr.toB([]segv{far})
			if d1, d2 := cnt[DropOutOfWindow].Load()-oow, cnt[DropReasmFull].Load()-full; d1 != 0 || d2 != 0 {
				t.Fatalf("R's segments within the edges it was told (the last ending at %d): dropped (out_of_window %d, reassembly_full %d)", edge, d1, d2)
			}
			answer := toFrames(back)
			if len(back) == 0 && len(nudge) == 1 {
				// b has not acknowledged all it got: G_B nudged it, and
				// b's ACK carries the answer (dupack.go).
				answer = bAck(isnA + 1 + uint32(len(got)))
			}
			s := one(t, "G_B's answer", answer)
			if s.flags != ackF || pr.gb.onlyFlow().state != stOpen {
				t.Fatalf("G_B's answer %+v, flow state %d", s, pr.gb.onlyFlow().state)
			}
			if b := sackBlocks(s.opts); edge-1000 > sent && (len(b) != 1 || b[0] != [2]uint32{far.seq, far.seq + 1000}) {
				t.Fatalf("G_B's answer has SACK %v, want the 1000 bytes held", b)
			}
		})
	}
}

// A host writing short segments (TCP_NODELAY, small messages) pays the
// frame's 20 bytes for each, more than the full-segment overhead its window
// allows for (scaleWin): G_A sends R no byte past R's right edge, and the
// frames that do not fit go as R's ACKs open its window. Before, a host
// that filled its window with 10-byte segments had G_A send three times
// past R's window (a far host's TCP drops what starts beyond it). And a's
// right edge never moves back (RFC 9293 §3.8.6), which each short frame's
// overhead made it do.
func TestShortHostSegmentsStayInRsWindow(t *testing.T) {
	for _, k := range []int{1000, 100, 10} {
		t.Run(fmt.Sprint(k), func(t *testing.T) {
			pr := handshake(t)
			h := newHosts()
			var edgeR, edgeA int64 // R's right edge (wire), a's (host), from a's ISN+1
			bAck := isnA + 1
			bWindow := func() [][]byte {
				pr.tsB++
				_, toOut := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, bAck, ackF, 64, tsOpt(pr.tsB, pr.tsA), nil)) // 8 KiB
				if len(toOut) == 0 {
					return nil
				}
				w := one(t, "b's ACK on the wire", toOut)
				edgeR = max(edgeR, int64(w.ack-(isnA+1))+int64(w.win)<<7)
				toIn, toOut := pr.ga.push(Outside, w.frame())
				for _, f := range toIn {
					s := parse(t, f)
					e := int64(s.ack-(isnA+1)) + int64(s.win)<<7
					if e < edgeA {
						t.Errorf("a's right edge moved back from %d to %d", edgeA, e)
					}
					edgeA = max(edgeA, e)
				}
				return toOut
			}
			bWindow()
			inWindow := func(wire []segv) {
				t.Helper()
				for _, s := range wire {
					if end := int64(s.seq-(isnA+1)) + int64(len(s.payload)); end > edgeR {
						t.Fatalf("G_A sent wire bytes up to %d, past R's right edge %d", end, edgeR)
					}
				}
			}
			var sent, got []byte
			var wire []segv
			for i := 0; int64(h.aNext-(isnA+1))+int64(k) <= edgeA; i++ {
				msg := bytes.Repeat([]byte{byte('a' + i%26)}, k)
				sent = append(sent, msg...)
				w := pr.aSends(&h, msg, pshF)
				inWindow(w)
				wire = append(wire, w...)
			}
			// a resends its last segment (Linux's tail loss probe): the
			// frames before it still wait for R's window, and so does it.
			w, _ := pr.aSendsAt(&h, h.aNext-uint32(k), sent[len(sent)-k:], pshF)
			inWindow(w)
			wire = append(wire, w...)
			for round := 0; len(got) < len(sent); round++ {
				if round == 20 {
					t.Fatalf("b got %d of %d bytes", len(got), len(sent))
				}
				atB, _ := pr.toB(wire)
				for _, s := range atB {
					off := int(s.seq - (isnA + 1))
					if off > len(got) {
						t.Fatalf("b got bytes at %d past a hole at %d", off, len(got))
					}
					if end := off + len(s.payload); end > len(got) {
						got = append(got, s.payload[len(got)-off:]...)
					}
				}
				bAck = isnA + 1 + uint32(len(got))
				wire = nil
				for _, f := range bWindow() {
					wire = append(wire, parse(t, f))
				}
				inWindow(wire)
			}
			if !bytes.Equal(got, sent) {
				t.Fatal("b got other bytes than a sent")
			}
		})
	}
}

// R closes its window (b's application stops reading) after a was given
// room: what a sends then waits at G_A, which sends nothing past R's right
// edge. a's retransmission, when its timer fires, has G_A probe R's window
// instead (RFC 9293 §3.8.6.1: a pure ACK one below what R acknowledged,
// which G_B passes to b as a keep-alive); b's answer, its window open
// again, lets the held frame go. Before, a's data went into the closed
// window at once, and R dropped it.
func TestClosedWindowHoldsHostData(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	pr.tsB++
	_, toOut := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, h.aNext, ackF, 0, tsOpt(pr.tsB, pr.tsA), nil))
	closed := one(t, "b's closed window on the wire", toOut)
	if closed.win != 0 {
		t.Fatalf("G_B's window %d, want 0", closed.win)
	}
	pr.ga.push(Outside, closed.frame())
	msg := bytes.Repeat([]byte("x"), 1000)
	none(t, "a's data into R's closed window", toFrames(pr.aSends(&h, msg, pshF)))
	wire, toA := pr.aSendsAt(&h, h.aNext-1000, msg, pshF) // a's timer fires
	if got := one(t, "G_A to a", toFrames(toA)); got.ack != h.aNext-1000 || got.win != 0 {
		t.Fatalf("a got ack %x window %d, want its held bytes unacknowledged and window 0", got.ack, got.win)
	}
	probe := one(t, "G_A's answer to a's retransmission", toFrames(wire))
	if len(probe.payload) != 0 || probe.seq != closed.ack-1 {
		t.Fatalf("G_A sent %d bytes at %x, want a window probe at %x", len(probe.payload), probe.seq, closed.ack-1)
	}
	toIn, _ := pr.gb.push(Outside, probe.frame())
	if ka := one(t, "the probe at b", toIn); ka.seq != isnA || len(ka.payload) != 0 {
		t.Fatalf("the probe reached b as %+v, want a keep-alive", ka)
	}
	pr.tsB++
	_, toOut = pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, isnA+1, ackF, 509, tsOpt(pr.tsB, pr.tsA), nil))
	_, toOut = pr.ga.push(Outside, one(t, "b's open window on the wire", toOut).frame())
	atB, _ := pr.toB([]segv{one(t, "the held frame", toOut)})
	if got := one(t, "a's data at b", toFrames(atB)); !bytes.Equal(got.payload, msg) {
		t.Fatalf("b got %q", got.payload)
	}
}

// R is a host TCP whose reader stops: it takes all it was sent and closes
// its window. a wrote short segments, so its window (full frames'
// overhead) was given an edge a little past what R's window held in a's
// bytes: a must see a zero window then, or a Linux a with bytes to send
// would send them into the edge it was given, see them held, and count its
// retransmissions toward giving up (tcp_retries2, about 15 minutes) while
// plain TCP would probe for as long as R stays shut. Before, a was told a
// window of 1 (128 bytes).
func TestShortSegmentsThenZeroWindowGiveZeroWindow(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	ack, _ := pr.fillThenShut(t, &h, 64, bytes.Repeat([]byte("m"), 1000)) // 8 KiB
	if ack.ack != h.aNext || ack.win != 0 {
		t.Fatalf("a is told ack %d of its %d bytes, window %d; want all, window 0",
			ack.ack-(isnA+1), h.aNext-(isnA+1), ack.win)
	}
}

// fillThenShut: b offers window win (scaled by 128), a fills the edge it is
// given with segments msg, then R (a host TCP whose reader stopped)
// acknowledges every wire byte it got with window 0. It returns that ACK
// as a sees it, and the end of the wire bytes G_A sent.
func (pr *pair) fillThenShut(t *testing.T, h *hosts, win uint16, msg []byte) (segv, uint32) {
	t.Helper()
	pr.tsB++
	_, toOut := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, isnA+1, ackF, win, tsOpt(pr.tsB, pr.tsA), nil))
	toIn, _ := pr.ga.push(Outside, one(t, "b's window on the wire", toOut).frame())
	told := one(t, "b's window at a", toIn)
	edgeA := int64(told.ack-(isnA+1)) + int64(told.win)<<7
	var wireEnd uint32
	for int64(h.aNext-(isnA+1))+int64(len(msg)) <= edgeA {
		for _, s := range pr.aSends(h, msg, pshF) {
			wireEnd = max(wireEnd, s.seq+uint32(len(s.payload)))
		}
	}
	pr.tsB++
	toIn, _ = pr.ga.push(Outside, tcpFrame(addrB, addrA, isnB+1+74, wireEnd, ackF, 0, tsOpt(pr.tsB, pr.tsA), nil))
	return one(t, "R's ACK at a", toIn), wireEnd
}

// a wrote 10-byte segments: far more wire bytes than its window allowed
// for, so most of them wait at G_A when R, its reader stopped, shuts its
// window. a is then told a zero window although its bytes are in flight
// (a sender copes with a shrunk window, RFC 9293 §3.8.6), and its
// retransmission gets an ACK as well as R a probe: a Linux sender then
// probes for as long as R stays shut, where under a window above zero it
// would count its retransmissions and give up.
func TestHeldBytesAndZeroWindowGiveZeroWindow(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	ack, wireEnd := pr.fillThenShut(t, &h, 8, []byte("0123456789")) // 1 KiB
	if ack.win != 0 || ack.ack == h.aNext {
		t.Fatalf("a is told ack %d of its %d bytes, window %d; want some held, window 0",
			ack.ack-(isnA+1), h.aNext-(isnA+1), ack.win)
	}
	wire, toA := pr.aSendsAt(&h, ack.ack, []byte("0123456789"), pshF) // a's timer fires
	// G_A probes R: a pure ACK below what R took, or the part of a frame
	// cut at R's edge that R already has (which R answers alike).
	if probe := one(t, "G_A to R", toFrames(wire)); probe.seq+uint32(len(probe.payload)) > wireEnd {
		t.Fatalf("G_A sent R bytes up to %d past what R took (%d)", probe.seq+uint32(len(probe.payload))-(isnA+1), wireEnd-(isnA+1))
	}
	if got := one(t, "G_A's ACK to a's retransmission", toFrames(toA)); got.ack != ack.ack || got.win != 0 {
		t.Fatalf("a got ack %d window %d, want %d, 0", got.ack-(isnA+1), got.win, ack.ack-(isnA+1))
	}
}

// A segment from R that begins inside the window and ends past every edge
// R was given is trimmed to the window, as TCP trims it (RFC 9293
// §3.10.7.4: the bytes in the window are processed, the rest dropped);
// before, it was dropped whole, and a far sender whose view of the window
// ran a little ahead (or that ignores it) made no progress at all.
func TestSegmentStraddlingTheEdgeTrimmed(t *testing.T) {
	cfg := Config{TEPs: testTEPs, DeliverBytes: 4096, ReassemblyBytes: 64 << 10}
	pr := handshakeOn(t, newGW(t, Config{TEPs: testTEPs}), newGW(t, cfg))
	f := pr.gb.onlyFlow()
	hi := f.acceptEnd()
	data := bytes.Repeat([]byte("0123456789abcdef"), 1024)
	stream := farFrame(t, pr, tcpcrypt.FrameHeader{}, data)
	for int64(stream.seq-(isnA+1))+int64(len(stream.payload)) <= hi {
		w := int64(stream.seq-(isnA+1)) + int64(len(stream.payload))
		stream.payload = append(stream.payload, farFrameAt(t, pr, tcpcrypt.FrameHeader{}, data, w)...)
	}
	stream.payload = stream.payload[:hi+500-int64(stream.seq-(isnA+1))]
	segs := cut(stream, 1448)
	last := segs[len(segs)-1]
	for _, s := range segs[len(segs)-3 : len(segs)-1] {
		last.seq, last.payload = s.seq, append(s.payload[:len(s.payload):len(s.payload)], last.payload...)
	}
	last.flags |= finF // a FIN past the edge is not R's end either
	segs = append(segs[:len(segs)-3], last)
	oow := pr.gb.e.Counters().Drops[DropOutOfWindow].Load()
	atB, _ := pr.toB(segs)
	for _, s := range atB {
		if s.flags&finF != 0 {
			t.Fatal("b got a FIN that lay past the window")
		}
	}
	d := &f.rcv
	taken := d.held.top(d.rcvW)
	if n := pr.gb.e.Counters().Drops[DropOutOfWindow].Load() - oow; n != 0 || taken != hi || d.pendFIN >= 0 {
		t.Fatalf("R's segments up to %d with the edge at %d: out_of_window %d, G_B took the stream up to %d (FIN at %d)", hi+500, hi, n, taken, d.pendFIN)
	}
}
