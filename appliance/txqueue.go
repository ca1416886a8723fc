package appliance

import (
	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/bump"
)

var _ engine.TailSink = (*txQueue)(nil)

// txQueue is a worker's transmit side of one port: the TX frames it holds
// and the batch it is building. It is the TxSink lent to the FrameHandler,
// and the worker forwards frames through it too, so whatever the worker and
// the handler send on one port leaves in the order it was queued.
//
// d[:used] are filled frames waiting for the batch's Transmit, d[used:have]
// free frames taken from the port earlier and kept (so a batch does not
// return and retake them).
type txQueue struct {
	port Port
	d    []Desc
	used int
	have int
	lent bool // Buffer handed out d[used] and no Commit came yet
	// offload: the port computes TCP checksums of frames committed
	// with CommitPartial (bump.ChecksumOffloader).
	offload bool
	// gso: the port sends super-frames (bump.GSOSender), and computes
	// their checksums (offload).
	gso bool
	// tails: the port sends a super-frame's tail from where the engine
	// lent it (bump.TailSender); flushes counts flushes, after each of
	// which the port holds no tail any more (engine.TailSink).
	tails   bool
	flushes uint64
	t       *tally // the direction whose frames leave on this port
	kicks   *counters
}

func newTxQueue(port Port, size int) txQueue {
	q := txQueue{port: port, d: make([]Desc, size)}
	if o, ok := port.(bump.ChecksumOffloader); ok {
		q.offload = o.OffloadsChecksums()
	}
	if g, ok := port.(bump.GSOSender); ok {
		q.gso = q.offload && g.SendsGSO()
	}
	if t, ok := port.(bump.TailSender); ok {
		q.tails = q.gso && t.SendsTails()
	}
	return q
}

// Buffer implements TxSink: the next free TX frame, at its full capacity.
// When the batch holds every frame available it is sent first; nil means
// the port has no free TX frame.
func (q *txQueue) Buffer() []byte {
	if q.used == q.have {
		q.have += q.port.GetTx(q.d[q.have:])
		if q.used == q.have && q.used > 0 {
			// The batch holds every frame we could get: send it, so
			// its frames come back through the completion ring.
			q.flush()
			q.have += q.port.GetTx(q.d[q.have:])
		}
		if q.used == q.have {
			q.lent = false
			return nil
		}
	}
	q.lent = true
	b := q.port.Frame(q.d[q.used])
	return b[:cap(b)]
}

// Commit implements TxSink: queue the first n bytes of the frame Buffer
// returned. A Commit without a Buffer, or with n out of range, queues
// nothing and is counted.
func (q *txQueue) Commit(n int) { q.commit(n, 0, bump.CsumWhole) }

// OffloadsChecksums implements engine.OffloadSink.
func (q *txQueue) OffloadsChecksums() bool { return q.offload }

// CommitPartial implements engine.OffloadSink: Commit for a frame whose
// TCP checksum the port computes. On a port without offload (which the
// engine does not ask) it would leave a frame with a wrong sum: counted
// as a bad commit and not sent.
func (q *txQueue) CommitPartial(n int) {
	if !q.offload {
		q.t.badCommits++
		q.lent = false
		return
	}
	q.commit(n, 0, bump.CsumPartial)
}

// SendsGSO implements engine.GSOSink.
func (q *txQueue) SendsGSO() bool { return q.gso }

// CommitGSO implements engine.GSOSink: Commit for a super-frame of gso-byte
// segments whose checksums the port computes. On a port that sends no
// super-frames (which the engine does not ask) it is counted as a bad
// commit and not sent.
func (q *txQueue) CommitGSO(n, gso int) {
	if !q.gso || gso <= 0 || gso > 0xffff {
		q.t.badCommits++
		q.lent = false
		return
	}
	q.commit(n, uint16(gso), bump.CsumPartial)
}

// SendsTails implements engine.TailSink.
func (q *txQueue) SendsTails() bool { return q.tails }

// Flushes implements engine.TailSink.
func (q *txQueue) Flushes() uint64 { return q.flushes }

// CommitTail implements engine.TailSink: CommitGSO of a super-frame whose
// first n bytes are in the buffer and the rest is tail, which the port
// reads by the end of the next flush. On a port that takes no tails (which
// the engine does not ask) it is counted as a bad commit and not sent.
func (q *txQueue) CommitTail(n int, tail []byte, gso int) {
	if !q.tails || gso <= 0 || gso > 0xffff || len(tail) == 0 {
		q.t.badCommits++
		q.lent = false
		return
	}
	q.commitTail(n, tail, uint16(gso), bump.CsumPartial)
}

// commit queues the first n bytes of the lent frame, a super-segment of
// gso-byte segments if gso is not 0, its checksum state csum.
func (q *txQueue) commit(n int, gso uint16, csum bump.Csum) {
	q.commitTail(n, nil, gso, csum)
}

// commitTail is commit of a frame whose last bytes are tail.
func (q *txQueue) commitTail(n int, tail []byte, gso uint16, csum bump.Csum) {
	if !q.lent || n < 0 || n+len(tail) > cap(q.port.Frame(q.d[q.used])) {
		q.t.badCommits++
		q.lent = false
		return
	}
	q.lent = false
	d := &q.d[q.used]
	d.Len, d.GSO, d.Csum, d.Tail = uint32(n), gso, csum, tail
	q.used++
}

// forward copies frame into a TX frame and queues it, counting a drop when
// no TX frame is free or the frame does not fit. gso is the frame's
// segment size if it is a super-segment (Desc.GSO), else 0.
func (q *txQueue) forward(frame []byte, gso uint16) {
	buf := q.Buffer()
	switch {
	case buf == nil:
		q.t.drops[DropNoTxFrame]++
	case len(frame) > len(buf):
		q.lent = false
		q.t.drops[DropTooBig]++
	default:
		q.commit(copy(buf, frame), gso, bump.CsumWhole)
	}
}

// flush transmits the batch and kicks the port. Frames the TX ring did not
// take are dropped (counted) and kept as free frames.
func (q *txQueue) flush() {
	q.lent = false
	// After a flush the port holds no tail: it read what it took, and the
	// rest is dropped. (The engine looks only between flushes.)
	q.flushes++
	if q.used == 0 {
		return
	}
	sent := q.port.Transmit(q.d[:q.used])
	t := q.t
	for _, d := range q.d[:sent] {
		t.txFrames++
		t.txBytes += uint64(d.Len) + uint64(len(d.Tail))
	}
	if sent < q.used {
		t.drops[DropTxRingFull] += uint64(q.used - sent)
	}
	keep := copy(q.d, q.d[sent:q.have])
	for i := range keep {
		q.d[i] = Desc{Addr: q.d[i].Addr}
	}
	clear(q.d[keep:q.have]) // no tail kept alive
	q.have, q.used = keep, 0
	if sent > 0 {
		if err := q.port.Kick(); err != nil {
			q.kicks.kickErrors.Add(1)
		}
	}
}
