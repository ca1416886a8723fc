package scenario

import (
	"bytes"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/cryptopool"
)

// Side names one appliance of the world.
type Side uint8

// The two sides.
const (
	SideA Side = iota
	SideB
)

// txFrameSize is the size of a TX buffer the sinks lend: the AF_XDP
// default frame size (xsk), so that an engine that writes more fails here
// as it would on the real port.
const txFrameSize = 4096

// sink is a TxSink that records every committed frame.
type sink struct {
	buf []byte
	out [][]byte
}

func (s *sink) Buffer() []byte { return s.buf[:cap(s.buf)] }
func (s *sink) Commit(n int)   { s.out = append(s.out, slices.Clone(s.buf[:n])) }

// World is host a, G_A, the link, G_B and host b, on a fake clock. Either
// engine may be nil: the test then plays that side of the link itself
// (Far and SendFar), usually with a Peer.
type World struct {
	T    testing.TB
	Now  int64 // ns
	Step int64 // Tick period in Run, ns
	Link *Link
	G    [2]*engine.Engine // set with AddEngine
	Pool *cryptopool.Pool

	// pollable counts pool jobs whose results the engines can take: the
	// engines' wake hook runs after a result is stored, while the pool's
	// Completed count moves just before (see AddEngine).
	pollable atomic.Uint64

	// To[s] holds the segments delivered to host a (SideA) or b (SideB)
	// and not yet taken; All[s] keeps every one.
	To, All [2][]Seg
	// Far[s] holds the segments that arrived from the link at side s when
	// that side has no engine.
	Far [2][]Seg
	// Verdicts counts the engines' verdicts, per side.
	Verdicts [2]map[engine.Verdict]int
	// React, when set, is called for every segment delivered to a host,
	// at once (before any Tick): a host that answers immediately, while
	// the engine's pool jobs may still be running.
	React func(s Side, g Seg)
	// Inside[s], when set, is a router on host s's inside link: frames
	// from the engine to the host larger than its MTU are dropped and its
	// packet-too-big goes to the engine's inside port at once.
	Inside [2]*Narrow
}

// Host passes a frame from host a (SideA) or b (SideB) to its engine and
// routes what the engine sends.
func (w *World) Host(s Side, frame []byte) engine.Verdict {
	w.T.Helper()
	return w.handle(s, engine.Inside, frame)
}

// SendFar puts a frame on the link from side s, which has no engine.
func (w *World) SendFar(s Side, frame []byte) {
	w.Link.Send(w.Now, dirFrom(s), frame)
}

func dirFrom(s Side) Dir {
	if s == SideA {
		return AtoB
	}
	return BtoA
}

// handle gives one frame to side s's engine as the worker would: it counts
// the verdict, checks that a Passthrough left the frame as it was, sends
// ForwardInPlace and Passthrough frames out of the other port, and routes
// whatever the engine wrote to its two sinks.
func (w *World) handle(s Side, from engine.PortID, frame []byte) engine.Verdict {
	w.T.Helper()
	e := w.G[s]
	in, out := &sink{buf: make([]byte, 0, txFrameSize)}, &sink{buf: make([]byte, 0, txFrameSize)}
	tx := [2]engine.TxSink{engine.Inside: in, engine.Outside: out}
	fr := slices.Clone(frame)
	v := e.Handle(w.Now, from, fr, tx)
	if w.Verdicts[s] == nil {
		w.Verdicts[s] = map[engine.Verdict]int{}
	}
	w.Verdicts[s][v]++
	switch v {
	case engine.Passthrough, engine.ForwardInPlace:
		if v == engine.Passthrough && !bytes.Equal(fr, frame) {
			w.T.Errorf("side %d: Passthrough verdict but the engine changed the frame", s)
		}
		if from == engine.Inside {
			out.out = append(out.out, fr)
		} else {
			in.out = append(in.out, fr)
		}
	case engine.Forwarded, engine.Consumed, engine.Dropped:
	default:
		w.T.Errorf("side %d: unknown verdict %v", s, v)
	}
	w.route(s, in.out, out.out)
	return v
}

func (w *World) route(s Side, toHost, toLink [][]byte) {
	w.T.Helper()
	for _, f := range toHost {
		if r := w.Inside[s]; r != nil {
			if ptb, ok := r.tooBig(w.Now, f); ok {
				w.handle(s, engine.Inside, ptb)
				continue
			}
		}
		g, err := ParseFrame(f)
		if errors.Is(err, ErrNotTCP) {
			g = Seg{Raw: f} // ICMP and other non-TCP frames: tests read Raw
		} else if err != nil {
			w.T.Errorf("side %d: engine sent its host a bad frame: %v", s, err)
			continue
		}
		w.To[s] = append(w.To[s], g)
		w.All[s] = append(w.All[s], g)
		if w.React != nil {
			w.React(s, g)
		}
	}
	for _, f := range toLink {
		if _, err := ParseFrame(f); err != nil && !errors.Is(err, ErrNotTCP) {
			w.T.Errorf("side %d: engine sent the link a bad frame: %v", s, err)
		}
		w.Link.Send(w.Now, dirFrom(s), f)
	}
}

func (w *World) tick(s Side) {
	e := w.G[s]
	if e == nil {
		return
	}
	in, out := &sink{buf: make([]byte, 0, txFrameSize)}, &sink{buf: make([]byte, 0, txFrameSize)}
	e.Tick(w.Now, [2]engine.TxSink{engine.Inside: in, engine.Outside: out})
	w.route(s, in.out, out.out)
}

// AddEngine makes e side s's engine. With a pool, e reports every finished
// job to the World, which settle needs: the pool counts a job completed a
// moment before its result can be polled, and a Tick in that moment would
// find nothing (the clock would then move on without the result).
func (w *World) AddEngine(s Side, e *engine.Engine) {
	w.G[s] = e
	e.SetWake(func() { w.pollable.Add(1) })
}

// settle waits (in real time) until every job the engines submitted to the
// pool can be polled, and ticks the engines so that they take the results,
// until no new job appears. The fake clock does not move meanwhile, so the
// outcome does not depend on how fast the pool is.
func (w *World) settle() {
	w.T.Helper()
	if w.Pool == nil {
		w.tick(SideA)
		w.tick(SideB)
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		for {
			if w.pollable.Load() == w.Pool.Stats().Submitted {
				break
			}
			if time.Now().After(deadline) {
				w.T.Fatal("pool jobs did not finish in 10 s")
			}
			time.Sleep(50 * time.Microsecond)
		}
		before := w.Pool.Stats().Submitted
		w.tick(SideA)
		w.tick(SideB)
		if w.Pool.Stats().Submitted == before {
			return
		}
	}
}

// deliver hands every link frame due now to its destination.
func (w *World) deliver() {
	w.T.Helper()
	for {
		d, f, ok := w.Link.Pop(w.Now)
		if !ok {
			return
		}
		to := SideB
		if d == BtoA {
			to = SideA
		}
		if w.G[to] == nil {
			g, _ := ParseFrame(f)
			w.Far[to] = append(w.Far[to], g)
			continue
		}
		w.handle(to, engine.Outside, f)
	}
}

// Run moves the clock forward by d, delivering link frames when they are
// due and ticking both engines every Step (and after every job).
func (w *World) Run(d time.Duration) {
	w.T.Helper()
	end := w.Now + int64(d)
	for {
		w.settle()
		w.deliver()
		w.settle()
		if w.Now >= end {
			return
		}
		next := min(w.Now+w.Step, end)
		if at, ok := w.Link.NextAt(); ok && at > w.Now && at < next {
			next = at
		}
		w.Now = next
		w.tick(SideA)
		w.tick(SideB)
	}
}

// Take returns and clears the segments delivered to host s.
func (w *World) Take(s Side) []Seg {
	out := w.To[s]
	w.To[s] = nil
	return out
}

// TakeFar returns and clears the segments that reached engine-less side s.
func (w *World) TakeFar(s Side) []Seg {
	out := w.Far[s]
	w.Far[s] = nil
	return out
}

// Flows returns a snapshot of side s's flows.
func (w *World) Flows(s Side) []engine.FlowInfo {
	var out []engine.FlowInfo
	w.G[s].Flows(func(f engine.FlowInfo) { out = append(out, f) })
	return out
}
