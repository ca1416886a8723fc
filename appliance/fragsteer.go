package appliance

import (
	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/bump"
	"github.com/tcpinc/tcpinc/flow"
)

// Fragment steering. Every IP fragment goes to the handler of the flow it
// belongs to (the engine decides per datagram: engine/frag.go), but only
// the first fragment names the flow: later ones carry no ports. So with
// several workers each datagram has a steering worker, chosen by a hash of
// its addresses, which every worker hands the datagram's fragments to.
// Not of its identification too: then the datagrams of one connection
// took different paths to the owner, overtook each other, and the engine,
// which takes a host's bytes only in order, dropped most of a fragmented
// bulk transfer (TestFragmentedInsideEncrypted with two queues crawled at
// 30 KB/s). With the addresses alone they all follow one path, in order. The steering worker learns the flow's owner
// from the first fragment, hands that and every later fragment to the
// owner, and holds (copies) the fragments that come before the first one,
// for at most fragHoldTime. With one worker, or no engine (Passthrough,
// which forwards everything), there is nothing to steer: the fragments go
// straight to the handler.

const (
	// fragHoldTime bounds how long a route, and a fragment held before its
	// datagram's first fragment, are kept.
	fragHoldTime = int64(5e9)
	// fragRoutes bounds the datagrams a steering worker tracks, and
	// fragHeldMax the fragments it holds; past the first the oldest route
	// goes, past the second the oldest route that holds fragments.
	fragRoutes  = 4096
	fragHeldMax = 256
)

// fragDgramKey names a datagram: addresses, identification, (IPv4)
// protocol, and the port it arrives at (the engine's own key,
// engine/frag.go: a fragment forged on one side must not route the
// datagrams of the other).
type fragDgramKey struct {
	src, dst [16]byte
	id       uint32
	proto    uint8
	from     PortID
}

type fragRoute struct {
	owner    int // -1: first fragment not seen yet
	key      flow.Key
	kind     frameKind
	deadline int64
	seq      uint64 // its place in fragSteer.order (deadline order)
	held     []heldFrame
	prog     packet.FragProgress // routed fragments: forgotten once all went by
}

type heldFrame struct {
	from PortID
	b    []byte
}

// fragSteer is one worker's steering table.
type fragSteer struct {
	routes  map[fragDgramKey]*fragRoute
	order   []fragRouteOrder // routes by deadline, nearest first (stale entries skipped)
	nextSeq uint64
	nheld   int
	next    int64 // next expiry pass
}

type fragRouteOrder struct {
	k   fragDgramKey
	seq uint64
}

// fragKeyOf returns the datagram key of the fragment in p and its hash for
// choosing the steering worker.
func fragKeyOf(p *packet.Packet, from PortID) (fragDgramKey, flow.Key, bool) {
	fr, ok := p.Fragment()
	if !ok {
		return fragDgramKey{}, flow.Key{}, false
	}
	k := fragDgramKey{from: from}
	copy(k.src[:], p.Src())
	copy(k.dst[:], p.Dst())
	k.id = fr.ID
	if p.IPVersion() == 4 {
		k.proto = fr.Proto
	}
	// The steering hash: a flow key of the addresses alone, the same for
	// every datagram between them (see above).
	hk := flow.MakeKey(p.Src(), p.Dst(), 0, 0)
	return k, hk, true
}

// dispatchFragment routes a fragment w received (w.pkt holds it) or was
// handed for steering.
func (w *worker) dispatchFragment(from PortID, frame []byte, now int64) {
	dk, hk, ok := fragKeyOf(&w.pkt, from)
	if !ok {
		w.process(from, frame, now, kindFragment, flow.Key{}) // the handler drops what it cannot read
		return
	}
	if s := hk.Owner(w.nwork); s != w.id {
		w.handOff(s, from, frame, false, 0)
		return
	}
	w.steer(dk, from, frame, now)
}

// steer runs on the datagram's steering worker.
func (w *worker) steer(dk fragDgramKey, from PortID, frame []byte, now int64) {
	st := &w.frag
	if st.routes == nil {
		st.routes = make(map[fragDgramKey]*fragRoute)
	}
	if now >= st.next {
		st.expire(w, now)
	}
	r := st.routes[dk]
	if r != nil && now >= r.deadline {
		st.drop(w, dk, r)
		r = nil
	}
	if !w.pkt.IsNonFirstFragment() {
		w.steerFirst(dk, r, from, frame, now)
		return
	}
	if r != nil && r.owner >= 0 {
		if st.progress(r, &w.pkt) {
			delete(st.routes, dk)
		}
		w.deliverFragment(r.owner, from, frame, now, kindFragment, r.key)
		return
	}
	// Before its first fragment: hold a copy.
	if r == nil {
		r = st.add(w, dk, now)
		r.owner = -1
	}
	for st.nheld >= fragHeldMax && st.evictOldestHolding(w, r) {
	}
	if st.nheld >= fragHeldMax {
		w.t[from].drops[DropFragHold]++
		return
	}
	r.held = append(r.held, heldFrame{from: from, b: append([]byte(nil), frame...)})
	st.nheld++
}

// steerFirst routes a datagram's first fragment (w.pkt holds it) and the
// fragments held for it; r is the datagram's route, if any.
func (w *worker) steerFirst(dk fragDgramKey, r *fragRoute, from PortID, frame []byte, now int64) {
	st := &w.frag
	// The first fragment names the flow (an ICMP error: the quoted
	// one); anything else stays with this worker's handler, which
	// passes it.
	owner, key, kind := w.id, flow.Key{}, frameKind(kindFragment)
	if k, ok := w.pkt.FlowKey(); ok {
		owner, key, kind = w.ownerOf(k), k, kindTCP
	} else if k, ok := w.pkt.QuotedFlowKey(); ok && w.pkt.IsICMP() {
		owner, key, kind = w.ownerOf(k), k, kindICMPQuote
	}
	var held []heldFrame
	if r == nil {
		r = st.add(w, dk, now)
	} else {
		held = r.held
		st.nheld -= len(held)
		r.held = nil
		// Its deadline moves on: so does its place in st.order, which
		// stays in deadline order, and evictOldest takes expired routes
		// first even between two expiry passes (add no longer expires).
		st.requeue(dk, r)
	}
	r.owner, r.key, r.kind, r.deadline = owner, key, kind, now+fragHoldTime
	done := st.progress(r, &w.pkt)
	w.deliverFragment(owner, from, frame, now, kind, key)
	for _, h := range held {
		if w.pkt.Decode(h.b); w.pkt.IsFragment() {
			done = st.progress(r, &w.pkt)
			w.deliverFragment(owner, h.from, h.b, now, kindFragment, key)
		}
	}
	if done && st.routes[dk] == r {
		delete(st.routes, dk)
	}
}

// deliverFragment gives a fragment to its owner's handler (w.pkt holds it
// when owner is w).
func (w *worker) deliverFragment(owner int, from PortID, frame []byte, now int64, kind frameKind, key flow.Key) {
	if owner == w.id {
		w.process(from, frame, now, kind, key)
		return
	}
	w.handOff(owner, from, frame, true, 0)
}

// handOff pushes a frame to worker j's lane; steered marks a fragment
// whose steering is done (j hands it to its handler as it is), gso the
// segment size of a super-segment that fits a slot whole (j sends it on as
// those segments). A longer super-segment goes through handOffSegments.
func (w *worker) handOff(j int, from PortID, frame []byte, steered bool, gso uint16) {
	l := w.out[j]
	switch {
	case len(frame) > l.size:
		w.t[from].drops[DropTooBig]++ // longer than the ports' MTU (Options.MaxFrame)
	case l.push(from, frame, steered, gso):
		w.t[from].handoffs++
		w.handed[j] = true
	default:
		w.t[from].handoffDrops++
	}
}

// handOffSegments hands the TCP super-segment being received, which the
// port's steering put on the wrong worker (an AF_PACKET fanout program
// cannot place a frame with two VLAN tags, nor frames that came before the
// group had its program), to its owner cut back into segments of its
// gso_size by the port (bump.Segmenter), each with complete checksums: no
// lane slot holds 64 KiB, and a connection whose frames always land here
// still goes through. Each segment is a wire frame, so it fits a slot
// sized for the ports' MTU.
//
// It reports false when j's lane fills before the last segment: the
// receiving worker holds the frame (backpressure, as for a whole frame),
// and the next call for it goes on after the segments that went
// (w.segsDone). A super-segment can have more segments than a lane has
// slots; before, the segments past a full lane were dropped.
func (w *worker) handOffSegments(j int, from PortID, frame []byte) bool {
	seg, ok := w.ports[from].(bump.Segmenter)
	mss := int(w.gso)
	if !ok || mss <= 0 {
		w.t[from].drops[DropTooBig]++
		return true
	}
	l := w.out[j]
	need := len(frame)/mss + 1 // at least the segments' count
	for len(w.segBufs) < need {
		w.segBufs = append(w.segBufs, nil)
		w.segSizes = append(w.segSizes, 0)
	}
	for i := range need {
		if len(w.segBufs[i]) < l.size {
			w.segBufs[i] = make([]byte, l.size)
		}
	}
	n, err := seg.Segment(frame, mss, w.segBufs[:need], w.segSizes[:need])
	if err != nil {
		w.segsDone[from] = 0
		w.t[from].drops[DropTooBig]++ // a segment over a slot (gso_size beyond the MTU), or not TCP
		return true
	}
	for i := w.segsDone[from]; i < n; i++ {
		if l.full() {
			w.segsDone[from] = i
			return false
		}
		w.handOff(j, from, w.segBufs[i][:w.segSizes[i]], false, 0)
	}
	w.segsDone[from] = 0
	return true
}

// progress counts the fragment in p against r.
func (st *fragSteer) progress(r *fragRoute, p *packet.Packet) bool {
	fr, ok := p.Fragment()
	return ok && r.prog.Add(fr, p.End()-fr.Data)
}

// add starts a route for dk. A full table gives up the route with the
// nearest deadline (st.order keeps the routes in deadline order, so that
// is an expired one if any is): refusing new routes instead let a flood of
// forged fragments (each a route for fragHoldTime) shut out every
// fragmented connection whose datagrams this worker steers, as the
// engine's own table once did (engine/frag.go). It walks no routes: a walk
// of every route for each new datagram of a flood cost 100 µs apiece
// (BenchmarkFragSteerAdd); steer's expiry pass runs every agePeriod.
func (st *fragSteer) add(w *worker, dk fragDgramKey, now int64) *fragRoute {
	for len(st.routes) >= fragRoutes && st.evictOldest(w, nil) {
	}
	r := &fragRoute{deadline: now + fragHoldTime}
	st.routes[dk] = r
	st.requeue(dk, r)
	return r
}

// requeue puts r, dk's route, at the end of st.order (its deadline is the
// latest: now + fragHoldTime).
func (st *fragSteer) requeue(dk fragDgramKey, r *fragRoute) {
	r.seq = st.nextSeq
	st.nextSeq++
	st.order = append(st.order, fragRouteOrder{dk, r.seq})
	if len(st.order) > 2*len(st.routes)+64 {
		// Drop the entries of forgotten routes, keeping the order.
		live := st.order[:0]
		for _, o := range st.order {
			if x := st.routes[o.k]; x != nil && x.seq == o.seq {
				live = append(live, o)
			}
		}
		clear(st.order[len(live):])
		st.order = live
	}
}

// expire forgets routes past their time, dropping what they hold.
func (st *fragSteer) expire(w *worker, now int64) {
	st.next = now + agePeriod
	for k, r := range st.routes {
		if now >= r.deadline {
			st.drop(w, k, r)
		}
	}
}

// evictOldest forgets the oldest route, unless that is keep, dropping
// what it holds; it reports whether it forgot one.
func (st *fragSteer) evictOldest(w *worker, keep *fragRoute) bool {
	for len(st.order) > 0 {
		o := st.order[0]
		r := st.routes[o.k]
		if r != nil && r.seq == o.seq && r == keep {
			return false
		}
		st.order = st.order[1:]
		if r != nil && r.seq == o.seq {
			st.drop(w, o.k, r)
			return true
		}
	}
	return false
}

// evictOldestHolding forgets the oldest route that holds fragments, unless
// that is keep: making room for a held fragment must not take the route of
// a datagram whose first fragment went by (it holds nothing; its later
// fragments would then find none and wait until they expire).
func (st *fragSteer) evictOldestHolding(w *worker, keep *fragRoute) bool {
	for i := 0; i < len(st.order); i++ {
		o := st.order[i]
		r := st.routes[o.k]
		if r == nil || r.seq != o.seq {
			if i == 0 {
				st.order = st.order[1:] // forgotten: drop the entry
				i--
			}
			continue
		}
		if len(r.held) == 0 {
			continue
		}
		if r == keep {
			return false
		}
		st.drop(w, o.k, r)
		return true
	}
	return false
}

func (st *fragSteer) drop(w *worker, k fragDgramKey, r *fragRoute) {
	for _, h := range r.held {
		w.t[h.from].drops[DropFragHold]++
	}
	st.nheld -= len(r.held)
	delete(st.routes, k)
}
