package appliance

import (
	"time"

	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/flowtable"
)

// worker runs one (port, queue): it receives on rx, which belongs to port
// from, and transmits on tx, the same queue of the other port. It owns the
// flows whose symmetric hash selects it; for the others it hands the flow
// event to the owner.
type worker struct {
	id    int
	from  PortID
	queue int
	cpu   int // -1: not pinned
	rx    Port
	tx    Port

	rxd   []Desc // RX batch
	txd   []Desc // TX frames held for the batch being built
	spare int    // txd[:spare] are free TX frames kept from earlier batches
	pkt   packet.Packet
	t     tally

	flows   *flowtable.Table[flowState]
	pass    *passthrough
	nwork   int
	out     []*flowtable.Ring[flowEvent] // out[j]: events for worker j (nil for self)
	in      []*flowtable.Ring[flowEvent] // events from the other workers
	nextAge int64                        // when to run the next expiry pass (ns)
	lastKey flowtable.Key                // key of the batch's last flow event
	hasLast bool
	c       *counters
}

// agePeriod is how often a worker expires flows.
const agePeriod = int64(100 * time.Millisecond)

// poll runs one batch to completion: receive, decide, transmit on the other
// port, one Kick. It returns the number of frames received. now is the
// worker's clock in nanoseconds (monotonic).
func (w *worker) poll(now int64) int {
	w.drainEvents()
	if now >= w.nextAge {
		w.pass.expire(w, now)
		w.nextAge = now + agePeriod
	}
	n := w.rx.Receive(w.rxd)
	if n == 0 {
		return 0
	}
	// TX frames for the batch: those kept from before, topped up.
	if w.spare < n {
		w.spare += w.tx.GetTx(w.txd[w.spare:n])
	}
	used := 0
	w.hasLast = false
	t := &w.t
	for i := range n {
		frame := w.rx.Frame(w.rxd[i])
		t.frames++
		t.bytes += uint64(len(frame))
		w.inspect(frame, now)
		// Passthrough: the frame leaves unchanged on the other port.
		if used == w.spare {
			t.drops[DropNoTxFrame]++
			continue
		}
		d := &w.txd[used]
		buf := w.tx.Frame(*d)
		if len(frame) > cap(buf) {
			t.drops[DropTooBig]++
			continue
		}
		d.Len = uint32(copy(buf[:len(frame)], frame))
		used++
	}
	w.rx.Release(w.rxd[:n])
	sent := w.tx.Transmit(w.txd[:used])
	for _, d := range w.txd[:sent] {
		t.txFrames++
		t.txBytes += uint64(d.Len)
	}
	if sent < used {
		t.drops[DropTxRingFull] += uint64(used - sent)
	}
	// Frames the TX ring did not take, and frames not used at all, stay
	// ours: keep them at the front of txd for the next batch.
	keep := copy(w.txd, w.txd[sent:w.spare])
	for i := range keep {
		w.txd[i].Len = 0
	}
	w.spare = keep
	if sent > 0 {
		if err := w.tx.Kick(); err != nil {
			w.c.kickErrors.Add(1)
		}
	}
	w.c.add(t)
	return n
}

// inspect decodes a frame and feeds TCP frames to the flow's owner.
func (w *worker) inspect(frame []byte, now int64) {
	if err := w.pkt.Decode(frame); err != nil {
		w.t.unparsed++
		return
	}
	if !w.pkt.IsTCP() {
		return
	}
	ev := flowEvent{key: keyOf(&w.pkt), flags: w.pkt.Flags(), now: now}
	// A bulk transfer brings a batch of segments of one flow: the flow's
	// owner needs only the first of them (it refreshes the idle time, and
	// all of the batch has the same clock). Segments with SYN, FIN or RST
	// always count.
	const control = packet.FlagSYN | packet.FlagFIN | packet.FlagRST
	if ev.flags&control == 0 && w.hasLast && ev.key == w.lastKey {
		return
	}
	w.lastKey, w.hasLast = ev.key, true
	owner := ev.key.Owner(w.nwork)
	if owner == w.id {
		w.pass.apply(w, &ev)
		return
	}
	if w.out[owner].Push(ev) {
		w.t.handoffs++
	} else {
		w.t.handoffDrops++
	}
}

// drainEvents applies the flow events other workers handed to this one.
func (w *worker) drainEvents() {
	for _, r := range w.in {
		for {
			ev, ok := r.Pop()
			if !ok {
				break
			}
			w.pass.apply(w, &ev)
		}
	}
}
