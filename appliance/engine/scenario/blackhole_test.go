package scenario

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// Path-MTU black holes: the untrusted link silently drops datagrams above
// a size (a tunnel whose packet-too-big messages are filtered), and the
// sending host finds out for itself (RFC 4821 black-hole detection, Linux
// net.ipv4.tcp_mtu_probing=1): after some retransmission timeouts it
// lowers its segment size and sends what is outstanding again in smaller
// pieces. The appliance must resend its stored frames in pieces that fit
// the host's new size plus the frame overhead.

// probingSender is a host sending bulk data as Linux does with
// tcp_mtu_probing=1, as far as segment sizes go: full segments with
// timestamps, an initial window of 10 segments, and on a retransmission
// timeout one segment at SND.UNA (tcp_retransmit_skb), the RTO doubled and
// the window back to one segment. From its third timeout in a row on
// (tcp_retries1), each timeout first lowers its segment size: to 1024
// bytes (tcp_base_mss), then by half (tcp_mtu_probing).
type probingSender struct {
	h, peer  *Host
	data     []byte
	una, nxt int
	mss      int
	cwnd     int // segments
	rto      int64
	rtoAt    int64
	timeouts int   // in a row, without progress
	lowered  int64 // when it last lowered its segment size
}

const probingRTO = int64(200 * time.Millisecond)

func (s *probingSender) tsOpt(w *World) []byte {
	o := []byte{1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(o[4:], 1000+uint32(w.Now/int64(time.Millisecond)))
	return o
}

func (s *probingSender) send(w *World, n int) {
	w.Host(SideA, s.h.Data(s.nxt, s.peer.ISN+1, s.data[s.nxt:s.nxt+n], s.tsOpt(w)))
	if s.nxt == s.una {
		s.rtoAt = w.Now + s.rto
	}
	s.nxt += n
}

func (s *probingSender) step(w *World) {
	if s.nxt > s.una && w.Now >= s.rtoAt {
		s.timeouts++
		switch {
		case s.timeouts == 3:
			s.mss, s.lowered = min(s.mss, 1024), w.Now
		case s.timeouts > 3:
			s.mss, s.lowered = max(s.mss/2, 48), w.Now
		}
		s.rto = min(2*s.rto, int64(60*time.Second))
		s.cwnd = 1
		s.nxt = s.una
		s.send(w, min(s.mss, len(s.data)-s.una))
		s.rtoAt = w.Now + s.rto
		return
	}
	for s.nxt < len(s.data) && s.nxt-s.una < s.cwnd*s.mss {
		s.send(w, min(s.mss, len(s.data)-s.nxt))
	}
}

func (s *probingSender) receive(w *World, segs []Seg) {
	for _, g := range segs {
		if !g.Has(packettest.ACK) {
			continue
		}
		if ack := int(int32(g.Ack - s.h.ISN - 1)); ack > s.una {
			s.una = min(ack, len(s.data))
			s.nxt = max(s.nxt, s.una)
			s.timeouts, s.rto = 0, probingRTO
			s.rtoAt = w.Now + s.rto
			s.cwnd++
		}
	}
}

// blackHoleRun sends n bytes from a to b over a link that drops every
// datagram from A to B above limit bytes, and no packet-too-big. a is a
// probingSender; b acknowledges what arrives in order. It returns the
// world, the sender and what b got, after 60 s (fake) or once b has all.
func blackHoleRun(t *testing.T, v6 bool, n, limit int) (*World, *probingSender, []byte) {
	t.Helper()
	f := full(t)
	if v6 {
		f.a.Addr = netip.AddrPortFrom(packettest.HostA6, 40000)
		f.a.Peer = netip.AddrPortFrom(packettest.HostB6, 443)
		f.b.Addr, f.b.Peer = f.a.Peer, f.a.Addr
	}
	f.handshake(t)
	w, a, b := f.w, f.a, f.b
	var mss int
	for _, g := range w.All[SideA] {
		if g.Has(packettest.SYN | packettest.ACK) {
			mss = int(g.MSS()) - 12 // the MSS a was given, less its timestamps
		}
	}
	w.Take(SideA)
	w.Take(SideB)
	w.Link.Add(Rule{Dir: AtoB, Match: func(_ int, s Seg) bool { return IPLen(s.Raw) > limit }, Drop: true, Times: -1})
	data := bytes.Repeat([]byte("black hole "), n/11+1)[:n]
	s := &probingSender{h: a, peer: b, data: data, mss: mss, cwnd: 10, rto: probingRTO}
	rcv := NewStream(a.ISN)
	for end := w.Now + int64(60*time.Second); w.Now < end && len(rcv.Contiguous()) < n; {
		s.step(w)
		w.Run(time.Millisecond)
		s.receive(w, w.Take(SideA))
		for _, g := range w.Take(SideB) {
			if len(g.Payload) == 0 {
				continue
			}
			if err := rcv.AddSeg(g); err != nil {
				t.Fatal(err)
			}
			w.Host(SideB, b.ACK(0, a.Seq(len(rcv.Contiguous()))))
		}
	}
	return w, s, rcv.Contiguous()
}

// TestHostBlackHoleDetection: the link from A to B drops datagrams over
// 1300 bytes without a word; a's full segments become 1500-byte datagrams.
// After three timeouts a lowers its segment size to 1024 bytes and resends
// the first 1024 bytes. G_A takes the shorter retransmission at the frame's
// start as a sign (host_resized) and resends that frame, and every one a
// resends after it, in segments that fit 1024 bytes plus the frame
// overhead: b gets everything. Before, G_A resent the whole frame in one
// 1500-byte datagram each time and b got nothing. New data keeps a's own
// segment size: a's later probe of a larger size (RFC 4821) meets the real
// path, and is lost there as it would be without the appliances.
func TestHostBlackHoleDetection(t *testing.T) {
	const n, limit = 100000, 1300
	w, s, got := blackHoleRun(t, false, n, limit)
	if len(got) != n {
		t.Fatalf("b got %d of %d bytes in 60 s (a's segment size %d, %d timeouts in a row)", len(got), n, s.mss, s.timeouts)
	}
	if s.mss != 1024 {
		t.Fatalf("a's segment size is %d, want 1024 (one lowering)", s.mss)
	}
	if c := w.G[SideA].Counters().HostResized.Load(); c != 1 {
		t.Fatalf("host_resized %d, want 1", c)
	}
	// A probe of a larger size: one new 1400-byte segment, sealed as one
	// frame and dropped on the link.
	m := len(w.Link.Sent(AtoB))
	w.Host(SideA, s.h.Data(n, s.peer.ISN+1, bytes.Repeat([]byte{'p'}, 1400), s.tsOpt(w)))
	w.Run(0)
	probe := one(t, "probe on the link", withData(w.Link.Sent(AtoB)[m:]))
	if len(probe.Payload) != 1400+ovh || IPLen(probe.Raw) <= limit {
		t.Fatalf("probe on the link: %v (%d bytes), want one frame of %d bytes, over %d", probe, IPLen(probe.Raw), 1400+ovh, limit)
	}
}

// TestHostBlackHoleDetectionIPv6: the same over IPv6, where routers
// filtering packet-too-big messages are the common case. a lowers its
// segment size to 1024 bytes; G_A resends in segments of the IPv6 minimum
// MTU (1280 bytes, RFC 8200 §5), which every path carries.
func TestHostBlackHoleDetectionIPv6(t *testing.T) {
	const n, limit = 100000, 1300
	w, s, got := blackHoleRun(t, true, n, limit)
	if len(got) != n {
		t.Fatalf("b got %d of %d bytes in 60 s (a's segment size %d, %d timeouts in a row)", len(got), n, s.mss, s.timeouts)
	}
	if c := w.G[SideA].Counters().HostResized.Load(); c != 1 {
		t.Fatalf("host_resized %d, want 1", c)
	}
	// The frames a resent after it lowered its size went as datagrams of
	// at most 1280 bytes.
	for _, e := range w.Link.Log {
		if e.Dir == AtoB && e.At > s.lowered && len(e.Seg.Payload) > 0 && IPLen(e.Seg.Raw) > 1280 {
			t.Fatalf("after a lowered its segment size: %v, a %d-byte datagram", e.Seg, IPLen(e.Seg.Raw))
		}
	}
}

// TestShorterRetransmissionsNoSign: retransmissions at a frame's start
// that are shorter than the frame for other reasons leave the frame's
// resends as they were (host_resized 0, the frame resent in one segment):
// one that carries SACK blocks (a's MSS less their 12 bytes), and one of
// the short segments a sent before the keys, which G_A sealed as one frame.
func TestShorterRetransmissionsNoSign(t *testing.T) {
	ts := func(w *World) []byte { return (&probingSender{}).tsOpt(w) }
	cases := []struct {
		name string
		// send has a send data and returns its retransmission and the
		// frame that retransmission starts.
		send func(t *testing.T, f *fixture) (retr []byte, frame int)
	}{
		{"sack", func(t *testing.T, f *fixture) ([]byte, int) {
			f.handshake(t)
			w, a := f.w, f.a
			// b's 300 bytes reach a, which tells of a hole below them
			// (as if the inside link lost their first 100).
			w.Host(SideB, f.b.Data(0, isnA+1, bytes.Repeat([]byte{'b'}, 300), ts(w)))
			w.Run(latency)
			w.Take(SideA)
			data := bytes.Repeat([]byte{'s'}, 1428)
			w.Host(SideA, a.Data(0, isnB+1, data, ts(w)))
			sack := SACKOpt([2]uint32{isnB + 101, isnB + 301})
			return a.Data(0, isnB+1, data[:1416], ts(w), sack), 1428 + ovh
		}},
		{"prekey", func(t *testing.T, f *fixture) ([]byte, int) {
			f.stepSYN(t)
			f.stepSYNACK(t)
			f.stepACK(t)
			w, a := f.w, f.a
			for i := range 5 {
				w.Host(SideA, a.Data(i*200, isnB+1, bytes.Repeat([]byte{byte('k' + i)}, 200), ts(w)))
			}
			f.stepInit(t)
			f.established(t)
			return a.Data(0, isnB+1, bytes.Repeat([]byte{'k'}, 200), ts(w)), 1000 + ovh
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := full(t)
			w := f.w
			retr, frame := c.send(t, f)
			w.Run(latency)
			w.Take(SideB)
			w.Now += int64(time.Second) // a's retransmission timeout
			m := len(w.Link.Sent(AtoB))
			w.Host(SideA, retr)
			w.Run(0)
			got := one(t, "resend on the link", withData(w.Link.Sent(AtoB)[m:]))
			if len(got.Payload) != frame {
				t.Fatalf("frame resent as %v, want one segment of %d bytes", got, frame)
			}
			if c := w.G[SideA].Counters().HostResized.Load(); c != 0 {
				t.Fatalf("host_resized %d, want 0", c)
			}
		})
	}
}

// TestShortSegmentSignUndone: a sent a short segment and a full one before
// the keys, which G_A sealed as one full frame and a short one; its
// retransmission of the short segment at the frame's start looks like a
// lower segment size, and the frame goes again in smaller segments. But
// a's next segment is full again: from then on, what a resends goes at its
// own size (one segment a frame), so that where a's segments do not cross
// the path, its resends do not either, and a finds the path's size itself.
// Resends kept small would get a's data through at every retransmission
// timeout: a would never lower its segment size, and every flight would
// cost a timeout.
func TestShortSegmentSignUndone(t *testing.T) {
	f := full(t)
	f.stepSYN(t)
	f.stepSYNACK(t)
	f.stepACK(t)
	w, a := f.w, f.a
	ts := func() []byte { return (&probingSender{}).tsOpt(w) }
	hello, full := bytes.Repeat([]byte{'h'}, 40), bytes.Repeat([]byte{'f'}, 1428)
	w.Host(SideA, a.Data(0, isnB+1, hello, ts()))
	w.Host(SideA, a.Data(40, isnB+1, full, ts()))
	f.stepInit(t)
	f.established(t)
	w.Run(latency)
	w.Take(SideB)
	resend := func(off int, data []byte) []Seg {
		t.Helper()
		m := len(w.Link.Sent(AtoB))
		w.Host(SideA, a.Data(off, isnB+1, data, ts()))
		w.Run(0)
		return withData(w.Link.Sent(AtoB)[m:])
	}
	if got := resend(0, hello); len(got) < 2 {
		t.Fatalf("a's short segment resent at the start of a full frame: %d segments, want the frame in smaller ones", len(got))
	}
	if c := w.G[SideA].Counters().HostResized.Load(); c != 1 {
		t.Fatalf("host_resized %d, want 1", c)
	}
	next := bytes.Repeat([]byte{'n'}, 1428)
	w.Host(SideA, a.Data(1468, isnB+1, next, ts()))
	w.Run(0)
	if got := resend(1468, next); len(got) != 1 || len(got[0].Payload) != 1428+ovh {
		t.Fatalf("a's full segment resent after its next full one: %v, want one segment of %d bytes", got, 1428+ovh)
	}
}
