package engine

import (
	"bytes"
	"encoding/binary"
	"math"
	"net/netip"
	"testing"
	"time"
)

// Host liveness probes (hostprobe.go) on an idle encrypted connection whose
// appliances keep each other's records fresh (keepFresh): a test runs 30
// days of idleness, G_A's and G_B's frames routed between them, and the
// hosts behind them alive (a TCP answering the probes), gone (answering
// nothing) or rebooted (answering with an RST).

type hostMode uint8

const (
	hostLive     hostMode = iota // answers a probe with an ACK, as a TCP does
	hostGone                     // vanished: answers nothing
	hostRebooted                 // knows no such connection: answers with an RST
)

// idleRun is a pair whose engines keep their negotiated sets on the
// pair's fake clock, and what reached the hosts and the wire.
type idleRun struct {
	t     *testing.T
	pr    *pair
	h     hosts
	g     [2]*gw // G_A, G_B
	sets  [2]*NegotiatedSet
	mode  [2]hostMode // a, b
	deaf  [2]int64    // a and b answer no probe before this time (an inside link down)
	got   [2][]segv   // what reached a and b
	wire  int         // segments between G_A and G_B
	after int         // those sent once both records had gone
	rsts  int         // RSTs among them
	probe [2][]segv   // the probes a and b got
	at    [2][]int64  // when
	// answerOut counts the segments the engines sent for the hosts'
	// answers to probes (none: each is a duplicate ACK, suppressed).
	answerOut int
	recent    [2]uint32 // the latest TSval a and b got: their TS.Recent (RFC 7323 §4.3)
	win       [2]uint16 // the window of the last ACK a and b got before the idle time
	gone      [2]int64  // when G_A's and G_B's records went, 0 while there
	deadline  [2]int64  // their tuples' deadlines in the set then
}

func newIdleRun(t *testing.T, a, b hostMode) *idleRun {
	r := &idleRun{t: t, h: newHosts(), mode: [2]hostMode{a, b}}
	for i := range r.g {
		r.sets[i] = NewNegotiatedSet(NegotiatedConfig{Mono: func() int64 { return r.g[i].now + 1 }})
		r.g[i] = newGWDeps(t, Config{TEPs: testTEPs}, Deps{Negotiated: r.sets[i]})
	}
	r.pr = handshakeOn(t, r.g[0], r.g[1])
	r.recent = [2]uint32{r.pr.tsB, r.pr.tsA}
	// A few bytes each way, acknowledged.
	r.send(0, []byte("hello"))
	r.send(1, nil)
	r.send(1, []byte("world"))
	r.send(0, nil)
	if !bytes.Equal(r.got[1][0].payload, []byte("hello")) || !bytes.Equal(r.got[0][1].payload, []byte("world")) {
		r.t.Fatalf("the exchange: a got %+v, b got %+v", r.got[0], r.got[1])
	}
	r.win = [2]uint16{r.got[0][len(r.got[0])-1].win, r.got[1][len(r.got[1])-1].win}
	r.got = [2][]segv{}
	return r
}

// next returns host i's next sequence number, the next one it expects,
// and its TSval.
func (r *idleRun) next(i int) (snd, rcv, ts *uint32) {
	if i == 0 {
		return &r.h.aNext, &r.h.bNext, &r.pr.tsA
	}
	return &r.h.bNext, &r.h.aNext, &r.pr.tsB
}

// segment is host i's segment, as its TCP numbers it.
func (r *idleRun) segment(i int, flags uint8, payload []byte) []byte {
	snd, rcv, ts := r.next(i)
	*ts++
	src, dst, win := addrA, addrB, uint16(502)
	if i == 1 {
		src, dst, win = addrB, addrA, 509
	}
	fr := tcpFrame(src, dst, *snd, *rcv, flags, win, tsOpt(*ts, r.recent[i]), payload)
	*snd += uint32(len(payload))
	return fr
}

// send makes host i send payload (nil: a pure ACK) and routes what follows.
func (r *idleRun) send(i int, payload []byte) {
	fl := uint8(ackF)
	if payload != nil {
		fl |= pshF
	}
	in, out := r.g[i].push(Inside, r.segment(i, fl, payload))
	r.toHost(i, in)
	r.toWire(i, out)
}

// toWire carries what G_i sent on the wire to the other appliance.
func (r *idleRun) toWire(i int, frames [][]byte) {
	for _, f := range frames {
		r.wire++
		if r.gone[0] != 0 && r.gone[1] != 0 {
			r.after++
		}
		if parse(r.t, f).flags&rstF != 0 {
			r.rsts++
		}
		in, out := r.g[1-i].push(Outside, f)
		r.toHost(1-i, in)
		r.toWire(1-i, out)
	}
}

// toHost delivers what G_i sent its host, which answers probes by its mode.
func (r *idleRun) toHost(i int, frames [][]byte) {
	for _, f := range frames {
		s := parse(r.t, f)
		r.got[i] = append(r.got[i], s)
		snd, rcv, _ := r.next(i)
		probe := s.flags == ackF && len(s.payload) == 0 && s.seq == *rcv-1
		// A probe acknowledges what the host sent, with the window its
		// ACKs carry and no TSval older than the host's TS.Recent: its
		// PAWS check takes it.
		v, hasTS := tsVal(r.t, s), option(s.opts, 8) != nil
		if hasTS && int32(v-r.recent[i]) < 0 || probe && (s.ack != *snd || s.win != r.win[i] || !hasTS) {
			r.t.Fatalf("to host %d: %+v, want ack %x, window %d, TSval from %d", i, s, *snd, r.win[i], r.recent[i])
		} else if hasTS {
			r.recent[i] = v
		}
		if !probe {
			continue
		}
		r.probe[i] = append(r.probe[i], s)
		r.at[i] = append(r.at[i], r.g[i].now)
		var answer []byte
		switch {
		case r.mode[i] == hostGone || r.g[i].now < r.deaf[i]:
			continue
		case r.mode[i] == hostLive:
			answer = r.segment(i, ackF, nil)
		default: // rebooted
			src, dst := addrA, addrB
			if i == 1 {
				src, dst = addrB, addrA
			}
			answer = tcpFrame(src, dst, s.ack, 0, rstF, 0, nil, nil) // RFC 9293 §3.10.7.1
		}
		in, out := r.g[i].push(Inside, answer)
		if r.mode[i] == hostLive {
			r.answerOut += len(in) + len(out)
		}
		r.toHost(i, in)
		r.toWire(i, out)
	}
}

// run moves both clocks on by d in steps, ticking both engines, and notes
// when each record goes.
func (r *idleRun) run(d, step time.Duration) {
	for end := r.g[0].now + int64(d); r.g[0].now < end; {
		r.g[0].now += int64(step)
		r.g[1].now = r.g[0].now
		for i, g := range r.g {
			in, out := g.tick(0)
			r.toHost(i, in)
			r.toWire(i, out)
		}
		for i, g := range r.g {
			if r.gone[i] == 0 && g.e.NumFlows() == 0 {
				r.gone[i] = g.now
				r.sets[i].Each(func(_, _ netip.AddrPort, d int64) { r.deadline[i] = d })
			}
		}
	}
}

// goneAt says when G_A's (i = 0) or G_B's record went.
func (r *idleRun) goneAt(i int) string {
	if r.gone[i] == 0 {
		return "never"
	}
	return time.Duration(r.gone[i]).String()
}

// idleFor is how long the tests' connections stay idle: the review that
// found the leak ran 30 days.
const idleFor = 30 * 24 * time.Hour

// probeSpan is the time from the first probe to the end of a record whose
// host answers none, with the default IdleTimeout.
const probeSpan = time.Duration(hostProbes * hostProbeMax)

// Both hosts of an idle encrypted connection vanish (virtual machines
// deleted, a power loss: no FIN, no RST). The appliances' own frames kept
// each other's records fresh, so both records and their tuples, held in
// the negotiated set, stayed for good (here 30 days: one flow on each
// side, 5764 segments on the wire); a flow table fills up so in months. Now
// each appliance probes its host after half of IdleTimeout of its silence, ten
// times 75 s apart, then ends the record as an idle one: its tuple lingers
// IdleLinger, and the wire falls silent.
//
// With only a gone and b alive, G_A ends its record the same way; G_B's
// next frame meets the lingering tuple at G_A, which resets it, and b gets
// an RST it accepts (at its next sequence number).
func TestIdleHostsGone(t *testing.T) {
	for _, c := range []struct {
		name string
		b    hostMode
	}{{"both", hostGone}, {"a", hostLive}} {
		t.Run(c.name, func(t *testing.T) {
			r := newIdleRun(t, hostGone, c.b)
			const step = 5 * time.Second
			r.run(idleFor, step)
			t.Logf("30 days, %s gone: records gone at %s and %s, probes %d and %d, %d segments on the wire",
				c.name, r.goneAt(0), r.goneAt(1), len(r.probe[0]), len(r.probe[1]), r.wire)
			// a answers none of ten probes, 75 s apart: G_A's record goes
			// 75 s after the tenth, not before.
			first := int64(DefaultIdleTimeout / 2)
			for k := 1; k < len(r.at[0]); k++ {
				if d := time.Duration(r.at[0][k] - r.at[0][k-1]); d < time.Duration(hostProbeMax) || d > time.Duration(hostProbeMax)+step {
					t.Fatalf("probe %d to a came %v after the one before, want %v", k, d, time.Duration(hostProbeMax))
				}
			}
			if r.gone[0] < first+int64(probeSpan) || r.gone[0] > first+int64(probeSpan)+int64(time.Minute) {
				t.Fatalf("G_A's record went at %s, want %v after the first probe at %v", r.goneAt(0), probeSpan, time.Duration(first))
			}
			if len(r.probe[0]) != hostProbes || r.g[0].e.c.HostProbes.Load() != hostProbes || r.g[0].e.c.HostGone.Load() != 1 {
				t.Fatalf("a got %d probes; G_A counted %d probes and %d hosts gone, want %d, %d and 1",
					len(r.probe[0]), r.g[0].e.c.HostProbes.Load(), r.g[0].e.c.HostGone.Load(), hostProbes, hostProbes)
			}
			if want := r.gone[0] + 1 + int64(IdleLinger); r.deadline[0] != want {
				t.Fatalf("G_A's tuple has deadline %d, want IdleLinger from the end of the record, %d", r.deadline[0], want)
			}
			if c.b == hostGone {
				if r.gone[1] != r.gone[0] || len(r.probe[1]) != hostProbes || r.g[1].e.c.HostGone.Load() != 1 || r.deadline[1] != r.deadline[0] {
					t.Fatalf("G_B: record gone at %s, %d probes, %d hosts gone, tuple deadline %d; want as G_A's",
						r.goneAt(1), len(r.probe[1]), r.g[1].e.c.HostGone.Load(), r.deadline[1])
				}
				if len(r.got[0]) != hostProbes || len(r.got[1]) != hostProbes || r.rsts != 0 || r.after != 0 {
					t.Fatalf("the hosts got %d and %d segments, the wire %d RSTs and %d segments after the records went; want only the probes",
						len(r.got[0]), len(r.got[1]), r.rsts, r.after)
				}
				return
			}
			// b answered every probe; G_B's next frame after G_A's end was
			// reset, and so was b, at its next sequence number.
			if r.gone[1] <= r.gone[0] || r.gone[1] > r.gone[0]+int64(DefaultIdleTimeout/2)+int64(time.Minute) {
				t.Fatalf("G_B's record went at %s, want within half of IdleTimeout after G_A's at %s", r.goneAt(1), r.goneAt(0))
			}
			last := r.got[1][len(r.got[1])-1]
			if last.flags&rstF == 0 || last.seq != r.h.aNext || r.g[1].e.c.HostGone.Load() != 0 || r.g[0].e.c.StrayResets.Load() == 0 {
				t.Fatalf("b's last segment %+v, want an RST at %x; G_B counted %d hosts gone, G_A %d stray resets",
					last, r.h.aNext, r.g[1].e.c.HostGone.Load(), r.g[0].e.c.StrayResets.Load())
			}
		})
	}
}

// Both hosts alive and idle for 30 days, without keep-alives of their own
// (an SSH session left open): each appliance probes its host every half
// IdleTimeout, the host's TCP answers with an ACK, and the connection
// lives on as over plain TCP. The answer is a duplicate ACK the engine
// takes in and sends nowhere: no retransmission, no RST. Then data goes
// both ways, exactly. Before, no host was ever probed.
func TestIdleHostsAnswerProbes(t *testing.T) {
	r := newIdleRun(t, hostLive, hostLive)
	r.run(idleFor, 10*time.Second)
	want := int(idleFor / (DefaultIdleTimeout/2 + 10*time.Second)) // one per half IdleTimeout of silence
	t.Logf("30 days: %d and %d probes answered, %d segments on the wire", len(r.probe[0]), len(r.probe[1]), r.wire)
	if r.gone != [2]int64{} || len(r.probe[0]) < want || len(r.probe[1]) < want {
		t.Fatalf("records gone at %s and %s; a and b got %d and %d probes in 30 days, want at least %d each",
			r.goneAt(0), r.goneAt(1), len(r.probe[0]), len(r.probe[1]), want)
	}
	for i, g := range r.g {
		c := &g.e.c
		if n := c.HostProbes.Load(); n != uint64(len(r.probe[i])) || c.HostGone.Load() != 0 || c.FrameRetransmits.Load() != 0 || c.Aborts.Load() != 0 {
			t.Fatalf("appliance %d: %d probes, %d hosts gone, %d frames resent, %d aborts", i, n, c.HostGone.Load(), c.FrameRetransmits.Load(), c.Aborts.Load())
		}
		if len(r.got[i]) != len(r.probe[i]) {
			t.Fatalf("host %d got %d segments, want only its %d probes", i, len(r.got[i]), len(r.probe[i]))
		}
	}
	if r.answerOut != 0 || r.rsts != 0 {
		t.Fatalf("the answers to probes made the engines send %d segments; %d RSTs on the wire", r.answerOut, r.rsts)
	}
	aNext, bNext := r.h.aNext, r.h.bNext
	r.send(0, []byte("thirty days later"))
	r.send(1, []byte("still here"))
	r.send(0, nil)
	var atA, atB []segv
	for _, s := range r.got[0][len(r.probe[0]):] {
		if len(s.payload) > 0 {
			atA = append(atA, s)
		}
	}
	for _, s := range r.got[1][len(r.probe[1]):] {
		if len(s.payload) > 0 {
			atB = append(atB, s)
		}
	}
	if len(atB) != 1 || string(atB[0].payload) != "thirty days later" || atB[0].seq != aNext ||
		len(atA) != 1 || string(atA[0].payload) != "still here" || atA[0].seq != bNext || r.rsts != 0 {
		t.Fatalf("after 30 days b got %+v, a got %+v (%d RSTs on the wire)", atB, atA, r.rsts)
	}
}

// The link to a is down for eleven minutes of an idle time, from its first
// probe on: the first nine probes are lost, a answers the tenth, and the
// connection lives on.
func TestInsideLinkDownAWhile(t *testing.T) {
	r := newIdleRun(t, hostLive, hostLive)
	r.deaf[0] = int64(DefaultIdleTimeout/2 + 11*time.Minute)
	r.run(24*time.Hour, 5*time.Second)
	if r.gone != [2]int64{} || r.g[0].e.c.HostGone.Load() != 0 || len(r.at[0]) < 10 || r.at[0][9] > int64(DefaultIdleTimeout/2+probeSpan) {
		t.Fatalf("records gone at %s and %s; a's probes at %v", r.goneAt(0), r.goneAt(1), r.at[0])
	}
	aNext := r.h.aNext
	r.send(0, []byte("back"))
	if last := r.got[1][len(r.got[1])-1]; string(last.payload) != "back" || last.seq != aNext {
		t.Fatalf("b got %+v, want a's data", last)
	}
}

// A host rebooted while its connection was idle: it answers the first
// probe with an RST (RFC 9293 §3.10.7.1: no connection, the segment's ACK
// as its sequence number). G_A passes it on at the wire's next sequence
// number and ends its record; G_B accepts it (RFC 5961 §3) and resets b
// at b's next sequence number. Nothing else reaches the hosts. Before, no
// probe went, and both records stayed.
func TestRebootedHostAnswersProbe(t *testing.T) {
	r := newIdleRun(t, hostRebooted, hostLive)
	r.run(idleFor, 10*time.Second)
	first := int64(DefaultIdleTimeout / 2)
	if len(r.probe[0]) != 1 || r.gone[0] < first || r.gone[0] > first+int64(time.Second) || r.gone[1] != r.gone[0] {
		t.Fatalf("a got %d probes; records gone at %s and %s, want one probe and both gone at %v",
			len(r.probe[0]), r.goneAt(0), r.goneAt(1), time.Duration(first))
	}
	atB := r.got[1][len(r.got[1])-1]
	if atB.flags&rstF == 0 || atB.seq != r.h.aNext || r.rsts != 1 || len(r.got[0]) != 1 {
		t.Fatalf("b's last segment %+v, want an RST at %x; %d RSTs on the wire, a got %d segments", atB, r.h.aNext, r.rsts, len(r.got[0]))
	}
	for i, g := range r.g {
		if g.e.c.HostGone.Load() != 0 || r.deadline[i] != r.gone[i]+1+int64(CloseLinger) {
			t.Fatalf("appliance %d: %d hosts gone, tuple deadline %d; want 0 and CloseLinger from the reset", i, g.e.c.HostGone.Load(), r.deadline[i])
		}
	}
}

// answerProbes is host a's TCP (i = 0) or b's, alive: it answers each
// keep-alive probe among toHost, what its appliance sent it, with an ACK
// (RFC 9293 §3.10.7.4), and returns what the appliance sent on. Anything
// but a probe fails the test.
func (pr *pair) answerProbes(h *hosts, i int, toHost [][]byte) (wire [][]byte) {
	pr.t.Helper()
	g, snd, rcv, ts, src, dst, win := pr.ga, h.aNext, h.bNext, &pr.tsA, addrA, addrB, uint16(502)
	if i == 1 {
		g, snd, rcv, ts, src, dst, win = pr.gb, h.bNext, h.aNext, &pr.tsB, addrB, addrA, 509
	}
	for _, f := range toHost {
		s := parse(pr.t, f)
		if s.flags != ackF || len(s.payload) != 0 || s.seq != rcv-1 || s.ack != snd {
			pr.t.Fatalf("host %d got %+v, want only keep-alive probes", i, s)
		}
		*ts++
		in, out := g.push(Inside, tcpFrame(src, dst, snd, rcv, ackF, win, tsOpt(*ts, binary.BigEndian.Uint32(option(s.opts, 8)[2:])), nil))
		none(pr.t, "the answer's echo to the host", in)
		wire = append(wire, out...)
	}
	return wire
}

// An idle_timeout of "never" (the largest duration) overflowed the probe's
// due time once the clock passed about 47 minutes: every encrypted flow
// was probed at every sweep, and one whose host answered nothing ended in
// two seconds (a review). The engine takes such a value as 100 years, and
// so every duration it adds to its clock.
func TestHugeIdleTimeoutProbesNothing(t *testing.T) {
	ga := newGW(t, Config{TEPs: testTEPs, IdleTimeout: math.MaxInt64, HandshakeTimeout: math.MaxInt64,
		InitRTO: math.MaxInt64, PlainRetention: math.MaxInt64, Fragments: FragConfig{Timeout: math.MaxInt64}})
	// So are the other durations added to the clock (a closed record
	// went at once, the Init was resent at every sweep).
	c := ga.e.Config()
	for name, d := range map[string]time.Duration{"IdleTimeout": c.IdleTimeout, "HandshakeTimeout": c.HandshakeTimeout,
		"InitRTO": c.InitRTO, "PlainRetention": c.PlainRetention, "Fragments.Timeout": c.Fragments.Timeout} {
		if d != maxDuration {
			t.Fatalf("%s %v, want %v", name, d, maxDuration)
		}
	}
	pr := handshakeOn(t, ga, newGW(t, Config{TEPs: testTEPs, IdleTimeout: math.MaxInt64}))
	pr.ga.tick(int64(time.Hour))
	for range 25 {
		if toIn, _ := pr.ga.tick(int64(200 * time.Millisecond)); len(toIn) != 0 {
			t.Fatalf("a got %d segments in an idle hour and seconds", len(toIn))
		}
	}
	if n := pr.ga.e.Counters().HostProbes.Load(); n != 0 || pr.ga.e.NumFlows() != 1 {
		t.Fatalf("%d probes, %d flows; want none and the flow", n, pr.ga.e.NumFlows())
	}
	pr.ga.undrained, pr.gb.undrained = true, true // their records outlive any test clock
}

// With a short idle_timeout (2 s here), the first probe could come after
// the record's own idle expiry: it is due half the timeout after the host's
// last segment as hostSeen keeps it, rounded up to about a second, and the
// expiry ran first. A half-closed connection (no keepFresh) whose far side
// stays silent then lost its record while its host answered every probe,
// and the far host's next data was reset (a review). The host's answers
// now keep the record whatever the timeout.
func TestShortIdleTimeoutHostAnswersKeepRecord(t *testing.T) {
	ga := newGW(t, Config{TEPs: testTEPs, IdleTimeout: 2 * time.Second})
	pr := handshakeOn(t, ga, newGW(t, Config{TEPs: testTEPs}))
	h := newHosts()
	pr.toB(pr.aSends(&h, []byte("request"), pshF|finF))
	for _, s := range pr.bAcks(&h, h.aNext) {
		pr.ga.push(Outside, s.frame()) // a's FIN acknowledged: FIN-WAIT-2, no keepFresh
	}
	for range 300 { // a minute, the far side silent
		toIn, _ := pr.ga.tick(int64(200 * time.Millisecond))
		pr.answerProbes(&h, 0, toIn)
		if pr.ga.e.NumFlows() != 1 {
			t.Fatalf("G_A dropped the record at %v with a answering its probes (%d probes)", time.Duration(pr.ga.now), pr.ga.e.Counters().HostProbes.Load())
		}
	}
	if n := pr.ga.e.Counters().HostProbes.Load(); n < 30 {
		t.Fatalf("%d probes in a minute, want one a second or so", n)
	}
}
