package engine

// Memory pressure. Of everything a flow's buffers hold, the far side's bytes
// kept past a hole (the reassembly's out-of-order data) are the one thing the
// appliance may drop at the cost of a retransmission alone: R sends again
// whatever stays unacknowledged (a receiver may renege on what it SACKed,
// RFC 2018 §8), as Linux prunes its out-of-order queue under memory
// pressure. So when the budget refuses what a live flow needs (room in its
// retransmit store or its delivery ring: grantLent) or a new flow's record
// (admit), the engine drops such bytes first, those of the flows that have
// held them longest first, and when its own are too few it asks the engines
// sharing the budget to drop theirs at their next Tick (Memory.squeezes).
// Without it a far side filled the budget with bytes it placed past holes
// it never filled, and an established flow's host data was then refused on
// every retransmission for as long as it kept them there.

// listAhead notes that f holds bytes of R past a hole.
func (e *Engine) listAhead(f *flow) {
	if f.ahead {
		return
	}
	if len(e.ahead) >= e.aheadMax {
		e.compactAhead()
	}
	f.ahead = true
	e.ahead = append(e.ahead, f)
}

// compactAhead takes off the list the flows that no longer hold bytes past
// a hole (or are gone), and sets the length of the next compaction.
func (e *Engine) compactAhead() {
	k := 0
	for _, f := range e.ahead {
		if f.state != stDead && f.rcv.holdsAhead() {
			e.ahead[k] = f
			k++
		} else {
			f.ahead = false
		}
	}
	clear(e.ahead[k:])
	e.ahead = e.ahead[:k]
	e.aheadMax = max(2*k, 64)
}

// holdsAhead reports whether bytes past rcvW are held with a hole before
// them.
func (d *decDir) holdsAhead() bool {
	return d.held.n > 1 || d.held.n == 1 && d.held.rs()[0].s > d.rcvW
}

// pruneHeld makes need bytes of room in the budget from bytes held past a
// hole, and, for a live flow's buffer (ask), asks the other engines for
// theirs when its own are too few. It reports whether the caller should
// try again: room was made, or came meanwhile (need <= 0: another engine's
// flows gave some back).
//
// A new flow's admission does not ask: the other engines prune at their
// next Tick, after the SYN has gone on plain, and live flows may hold the
// budget up to limit/8 past the admission bound, so each SYN from anyone
// outside would have every flow in SACK recovery on every worker renege on
// what it held, for nothing (a review of the squeeze).
func (e *Engine) pruneHeld(need int64, ask bool) bool {
	if need <= 0 {
		return true
	}
	freed := e.dropListed(need)
	if freed < need && ask {
		e.mem.squeeze(need - freed)
	}
	return freed > 0
}

// dropListed drops the bytes past a hole of the listed flows, the first
// listed first, until at least need bytes went back to the budget, and
// returns how many did.
func (e *Engine) dropListed(need int64) int64 {
	freed, i := int64(0), 0
	for ; i < len(e.ahead) && freed < need; i++ {
		f := e.ahead[i]
		f.ahead = false
		if f.state != stDead {
			freed += e.dropAhead(f)
		}
	}
	n := copy(e.ahead, e.ahead[i:])
	clear(e.ahead[n:])
	e.ahead = e.ahead[:n]
	return freed
}

// answerSqueeze drops listed flows' bytes past a hole, oldest first, as
// many as the last squeeze still lacks, when another engine (or this one)
// found the budget full with too few of its own (Tick). Not all of them:
// a squeeze comes with every SYN refused at the admission bound, which
// anyone outside can send, and each would have made every flow in SACK
// recovery on every worker renege on all it held.
func (e *Engine) answerSqueeze() {
	if s := e.mem.squeezed(); s != e.squeezeSeen {
		e.squeezeSeen = s
		if w := e.mem.wanted(); w > 0 {
			e.mem.gave(e.dropListed(w))
		}
	}
}

// forgetGone takes the flows removed since it last ran off the list, which
// would keep their buffers from the garbage collector (Tick, after the
// sweep).
func (e *Engine) forgetGone() {
	if e.aheadGone {
		e.aheadGone = false
		e.compactAhead()
	}
}

// dropAhead drops f's bytes held past a hole, keeps those from rcvW on that
// wait for keys or for room in the delivery ring, and shrinks the
// reassembly to what it still holds, its block of ranges too (spans.go).
// It returns the bytes given back to the budget.
func (e *Engine) dropAhead(f *flow) int64 {
	d := &f.rcv
	d.held.trim(d.rcvW)
	if !d.holdsAhead() {
		return e.narrowHeld(f)
	}
	e.c.HeldPruned.Add(1)
	d.ackWait &^= ackHoleNudged // the holes are gone with their bytes; R resends
	live := d.rcvW
	if first := d.held.rs()[0]; first.s == d.rcvW {
		live = first.e
		d.held.cut(1)
	} else {
		d.held.cut(0)
	}
	freed := e.narrowHeld(f)
	r := &d.reasm
	n := 0
	if live > d.rcvW {
		n = ringStart
		for int64(n) < live-d.rcvW {
			n *= 2
		}
	}
	old := len(r.b)
	if n >= old {
		return freed
	}
	if n == 0 {
		r.b = nil
	} else {
		r.grow(d.rcvW, live, n)
	}
	if !f.charged {
		return 0 // kept aside (acceptance.go): its buffers are not charged
	}
	e.mem.give(int64(old - n))
	return freed + int64(old-n)
}
