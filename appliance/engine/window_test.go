package engine

import (
	"bytes"
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
			bAck := func(ack uint32) {
				pr.tsB++
				_, toOut := pr.gb.push(Inside, tcpFrame(addrB, addrA, isnB+1, ack, ackF, c.bWin, tsOpt(pr.tsB, pr.tsA), nil))
				for _, f := range toOut {
					note([]segv{parse(t, f)})
				}
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
			_, back := pr.toB([]segv{far})
			if d1, d2 := cnt[DropOutOfWindow].Load()-oow, cnt[DropReasmFull].Load()-full; d1 != 0 || d2 != 0 {
				t.Fatalf("R's segments within the edges it was told (the last ending at %d): dropped (out_of_window %d, reassembly_full %d)", edge, d1, d2)
			}
			s := one(t, "G_B's answer", toFrames(back))
			if s.flags != ackF || pr.gb.onlyFlow().state != stOpen {
				t.Fatalf("G_B's answer %+v, flow state %d", s, pr.gb.onlyFlow().state)
			}
			if b := sackBlocks(s.opts); edge-1000 > sent && (len(b) != 1 || b[0] != [2]uint32{far.seq, far.seq + 1000}) {
				t.Fatalf("G_B's answer has SACK %v, want the 1000 bytes held", b)
			}
		})
	}
}
