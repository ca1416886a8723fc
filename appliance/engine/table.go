package engine

import "github.com/tcpinc/tcpinc/appliance/packet"

// lookup returns the flow of k, or nil. The flow found last is kept aside
// and compared first: a worker's batch of frames is mostly a few
// connections' bursts, and a hit skips hashing the key.
func (e *Engine) lookup(k flowKey) *flow {
	if h := e.hot; h != nil && h.key == k {
		return h
	}
	f := e.flows[k]
	if f != nil {
		e.hot = f
	}
	return f
}

// newID is the next flow ID: from the counter the workers share, else the
// engine's own.
func (e *Engine) newID() uint64 {
	if e.deps.FlowIDs != nil {
		return e.deps.FlowIDs.Add(1)
	}
	e.nextID++
	return e.nextID
}

func (e *Engine) newFlow(now int64, k flowKey, pol Policy) *flow {
	f := &flow{id: e.newID(), key: k, policy: pol, started: e.deps.Now().UnixNano(), last: now, charged: true} // the caller charged recordCost
	f.enc.finH, f.enc.finW = -1, -1
	f.rcv.finH, f.rcv.finW, f.rcv.pendFIN = -1, -1, -1
	f.mssL, f.mssR = 536, 536
	f.lastHostAck = -1 // L has had no ACK from us yet
	if k.in.Addr().Is6() {
		f.mssL, f.mssR = 1220, 1220
	}
	f.capMSS = e.mssCaps(k.in.Addr().Is4())
	f.setCaps(&e.cfg)
	f.enc.store.mem, f.enc.pre.mem, f.rcv.reasm.mem, f.rcv.plain.mem = e.mem, e.mem, e.mem, e.mem
	f.enc.frames.mem, f.rcv.frames.mem = e.mem, e.mem
	if old := e.flows[k]; old != nil {
		old.prev = nil // the caller decides what becomes of it
		e.remove(old)
	}
	e.flows[k] = f
	e.hot = nil
	e.listAdd(f)
	e.c.Flows.Add(1)
	return f
}

// reclaimWindow bounds how many records one full-table SYN examines, so a
// SYN flood against a full table costs a constant amount per SYN.
const reclaimWindow = 64

// reclaim frees one record that no longer carries a live connection (a
// connection left in plain TCP, kept only for the admin API, or one whose
// both FINs are acknowledged) to make room for a new SYN. Without it a
// busy appliance fills its table with finished connections, and new ones
// would go on untracked, their later segments reset as strays. A plain
// record still watching for an Init1 stays (enopath.go), and so does one
// that keeps a closed encrypted connection aside until the inside host
// answers its SYN (reuse), while that connection holds its tuple: dropped,
// its SYN would be forgotten, and the old connection's lingering tuple
// would reset the new one once the host accepted it. It reports whether it freed one.
func (e *Engine) reclaim() bool {
	for range min(reclaimWindow, len(e.list)) {
		if e.reclaimAt >= len(e.list) {
			e.reclaimAt = 0
		}
		f := e.list[e.reclaimAt]
		e.reclaimAt++
		if f.state == stPlain && !f.watchInit1 && (f.prev == nil || !f.prev.held) || f.state == stDead || f.closeAt != 0 {
			e.dropPrev(f) // the connection it displaced goes too
			e.remove(f)
			e.c.FlowsReclaimed.Add(1)
			return true
		}
	}
	return false
}

// closeCheck schedules removal once both FINs are acknowledged.
func (e *Engine) closeCheck(now int64, f *flow) {
	if f.closeAt == 0 && f.enc.finW >= 0 && f.enc.ackW > f.enc.finW && f.rcv.finW >= 0 && f.rcv.ackH > f.rcv.finH {
		f.closeAt = now + int64(e.cfg.HandshakeTimeout)
		e.recount(f) // an encrypted flow shows as closed from here on
		e.releaseBufs(f)
	}
}

// kill ends a flow that will not be encrypted.
func (e *Engine) kill(f *flow, reason int, why string) {
	if reason >= 0 {
		e.c.Fallbacks[reason].Add(1)
	}
	f.reason = why
	if held, ok := e.flowLog(); ok {
		e.deps.Log.Debug("flow not encrypted", "id", f.id, "inside", f.key.in, "outside", f.key.out, "reason", why, "lines_suppressed", held)
	}
	// Keep a small record so the admin API can report the flow as plain;
	// everything else goes (the fast path takes the flow from here on).
	e.setState(f, stPlain)
	e.embLeave(f)
	e.freeBufs(f)
	e.dropPrev(f) // this record now stands for the tuple's connection
	e.unnegotiated(f)
	f.wipeSecrets()
	f.settings, f.ini, f.rsp = nil, nil, nil
	// A block of held ranges is kept for reuse (its cost went back with
	// the buffers), once the record no longer points to it: a block on the
	// free list belongs to no flow (spans.go).
	b := f.rcv.held.big
	f.enc, f.rcv = encDir{}, decDir{}
	e.putSpans(b)
}

// wipeSecrets zeroes what an ending flow holds of its keys: its KeyRing,
// its session's (already wiped once the keys were in place), a resumption
// secret it took and did not use, which stays spent in the cache (RFC 8548
// §3.5), and its ephemeral pair, unless a pool job still computes with it
// (kexBusy: poll wipes it when the job is done).
func (f *flow) wipeSecrets() {
	if f.keys != nil {
		f.keys.Wipe()
	}
	f.sess.Wipe()
	f.resOpener = nil
	if f.res != nil {
		f.res.Erase()
		f.res = nil
	}
	if !f.kexBusy {
		f.kp.Wipe()
		f.kp = nil
	}
}

// abort resets both hosts (the connection cannot continue safely: a frame
// failed authentication, a FIN came without FINp, the Init exchange failed)
// and forgets the flow.
func (e *Engine) abort(f *flow, tx [2]TxSink, why string) {
	e.c.Aborts.Add(1)
	f.reason = why
	if held, ok := e.flowLog(); ok {
		e.deps.Log.Debug("flow aborted", "id", f.id, "inside", f.key.in, "outside", f.key.out, "reason", why, "lines_suppressed", held)
	}
	if f.toR.ok {
		e.opts.reset()
		if f.enoOut {
			e.opts.eno() // RFC 8547 §4.6: every segment until a non-SYN one arrives
		}
		e.send(tx[Outside], &f.toR, &seg{seq: f.wireSeqOut(), ack: wrap(f.isnR, f.rcv.rcvW),
			flags: packet.FlagRST | packet.FlagACK, opts: e.opts.bytes()}, nil)
	}
	if f.toL.ok {
		e.send(tx[Inside], &f.toL, &seg{seq: f.hostSeqOut(), ack: wrap(f.isnL, f.enc.ackH),
			flags: packet.FlagRST | packet.FlagACK}, nil)
	}
	e.remove(f)
}

func (e *Engine) remove(f *flow) {
	if f.held {
		keep := CloseLinger
		switch {
		case f.idled:
			keep = IdleLinger
		case f.state == stSynAckSent:
			keep = HandshakeLinger // no host byte was framed
		}
		e.neg.release(f.key, keep)
		f.held = false
	}
	e.setState(f, stDead)
	e.embLeave(f)
	e.aheadGone = e.aheadGone || f.ahead
	e.uncharge(f)
	f.wipeSecrets()
	if e.flows[f.key] == f {
		e.detach(f)
		if p := f.prev; p != nil {
			f.prev = nil
			e.reinstate(f.last, p) // the SYN that displaced it was never answered
		}
	}
}

// detach takes f out of the table as it is (remove also ends it).
func (e *Engine) detach(f *flow) {
	if e.flows[f.key] != f {
		return
	}
	delete(e.flows, f.key)
	e.hot = nil
	i := f.idx
	if e.scan != nil && i < e.scanAt {
		// A paged listing visited the slots below scanAt (FlowPageStep):
		// the last flow, not visited yet, must not move into this hole.
		// The last visited one does, and the last flow into its slot,
		// now the first one not visited.
		e.scanAt--
		e.moveSlot(e.scanAt, i)
		i = e.scanAt
	}
	n := len(e.list) - 1
	e.moveSlot(n, i)
	e.list[n] = nil
	e.list, e.due = e.list[:n], e.due[:n]
	delete(e.byID, f.id)
	e.recount(f)
}

// moveSlot moves the flow in slot from of the list to slot to.
func (e *Engine) moveSlot(from, to int) {
	if from == to {
		return
	}
	g := e.list[from]
	e.list[to], e.due[to] = g, e.due[from]
	g.idx = to
	e.byID[g.id] = uint32(to)
}

// wake has the sweep visit f at its next pass, whatever the time sweepDue
// gave it: something may have made tickFlow's work on it due earlier. A
// stale f.idx only wakes another flow, which costs that one a visit.
func (e *Engine) wake(f *flow) {
	if i := f.idx; i < len(e.due) {
		e.due[i] = 0
	}
}

// listAdd puts f at the end of the list, to be swept from the next visit on.
func (e *Engine) listAdd(f *flow) {
	f.idx = len(e.list)
	e.list = append(e.list, f)
	e.due = append(e.due, 0)
	e.byID[f.id] = uint32(f.idx)
	f.counted = 0 // not in the list until now (a copied record brings its source's)
	e.recount(f)
	if e.scan != nil {
		// A paged listing lists the flows there were when it began: f
		// goes among those it visited, and the first one it did not
		// visit to the end. (A record reinstated would be visited twice.)
		e.swapSlots(e.scanAt, f.idx)
		e.scanAt++
	}
}

// swapSlots exchanges the flows in slots i and j of the list.
func (e *Engine) swapSlots(i, j int) {
	a, b := e.list[i], e.list[j]
	e.list[i], e.list[j] = b, a
	e.due[i], e.due[j] = e.due[j], e.due[i]
	a.idx, b.idx = j, i
	e.byID[a.id], e.byID[b.id] = uint32(j), uint32(i)
}

// inList reports whether f is in Engine.list (f.idx is left as it was
// when detach takes it out).
func (e *Engine) inList(f *flow) bool {
	return f.idx < len(e.list) && e.list[f.idx] == f
}

// countEnc is added to an encrypted flow's bucket in Engine.counts: the
// buckets of flows with a session follow those of every state.
const countEnc = len(stateNames)

// recount moves f to the bucket of Engine.counts it belongs in now: its
// shownState, plus countEnc if it has a session, while it is in the list;
// none (0) out of it. Every change of a listed flow's state, closeAt or
// sess, and every listAdd and detach, goes through it (setState for the
// state), so the admin API's counts cost O(states), not a scan of every
// flow on the worker's goroutine. f.counted is the bucket f is counted in,
// so a flow always leaves the one it was put in.
func (e *Engine) recount(f *flow) {
	var b uint8
	if e.inList(f) {
		b = f.shownState()
		if f.sess != nil {
			b += uint8(countEnc)
		}
	}
	if b != f.counted {
		e.counts[f.counted]--
		e.counts[b]++
		f.counted = b
	}
}

// setState sets f's state and keeps the admin API's counts (recount).
func (e *Engine) setState(f *flow, st uint8) {
	f.state = st
	e.recount(f)
}
