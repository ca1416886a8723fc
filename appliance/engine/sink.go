package engine

// The transmit side as the worker lends it to the engine, and what the
// engine asks of ports that compute checksums, cut super-frames and send
// payloads from where they lie.

// TxSink is one port's transmit side as the worker lends it to the engine
// for one call: Buffer returns a free frame buffer (nil when none is free),
// Commit sends the first n bytes of the buffer Buffer last returned.
type TxSink interface {
	Buffer() []byte
	Commit(n int)
}

// OffloadSink is a TxSink whose port computes TCP checksums on transmit
// (bump.ChecksumOffloader, bump.CsumPartial). The engine builds its
// segments there without their TCP checksum and commits them with
// CommitPartial: the sum is then one pass in the kernel or the NIC, which
// a software segmentation makes anyway, instead of one here and another
// where the port checks a frame before it merges it with others.
type OffloadSink interface {
	TxSink
	// OffloadsChecksums reports whether CommitPartial may be used.
	OffloadsChecksums() bool
	// CommitPartial is Commit for a frame whose TCP checksum the port
	// is to compute.
	CommitPartial(n int)
}

// GSOSink is an OffloadSink whose port also sends TCP super-frames: one
// frame of headers and the payload of several segments, which the port's
// segmentation offload (the kernel's GSO, or the NIC's TSO) cuts into
// segments of a given size, copying the headers, advancing the sequence
// number, FIN and PSH on the last segment only, CWR on the first only, and
// a fresh IPv4 ID and both checksums for each (afpacket.PrepareGSO). A
// super-frame's segments are the frames the engine would have built one by
// one: it builds their headers once and hands the port one buffer.
type GSOSink interface {
	OffloadSink
	// SendsGSO reports whether CommitGSO may be used.
	SendsGSO() bool
	// CommitGSO sends the first n bytes of the buffer as a super-frame of
	// segments of gso payload bytes each (the last may be shorter); the
	// TCP checksums are the port's to compute, as with CommitPartial.
	CommitGSO(n, gso int)
}

// gsoSink returns to as a GSOSink if it takes super-frames built by t
// (checksums offloaded: t is simple; one identification: t is atomic),
// else nil.
func gsoSink(to TxSink, t *tmpl) GSOSink {
	if g, ok := to.(GSOSink); ok && t.simple && t.atomic() && g.OffloadsChecksums() && g.SendsGSO() {
		return g
	}
	return nil
}

// TailSink is a GSOSink whose port can send a super-frame's payload from
// where it lies (scatter-gather), so that the engine need not copy it into
// the port's buffer: the AF_PACKET backend, whose sendmmsg copies it into
// the kernel's buffer either way.
type TailSink interface {
	GSOSink
	// SendsTails reports whether CommitTail may be used.
	SendsTails() bool
	// CommitTail sends the first n bytes of the buffer (the headers, built
	// for n+len(tail) bytes) followed by tail, as CommitGSO a super-frame
	// of gso-byte segments. tail is lent: the sink reads it no later than
	// its next flush.
	CommitTail(n int, tail []byte, gso int)
	// Flushes counts the sink's flushes: once it has grown past its value
	// at a CommitTail, the port has read that tail and the engine may
	// write over those bytes.
	Flushes() uint64
}

// tailSink returns g as a TailSink if it takes tails, else nil.
func tailSink(g GSOSink) TailSink {
	if t, ok := g.(TailSink); ok && t.SendsTails() {
		return t
	}
	return nil
}

// commitGSO sends the first n bytes of g's buffer, built by t, as segments
// of gso payload bytes; hl is the length of the headers.
func commitGSO(g GSOSink, t *tmpl, buf []byte, hl, n, gso int) {
	t.finish(buf, n, false, nil) // atomic (gsoSink): no identification to draw
	if n-hl <= gso {
		g.CommitPartial(n) // one segment after all
		return
	}
	g.CommitGSO(n, gso)
}

// sendTail sends, if g takes tails and data is one piece of a ring longer
// than one segment, the headers hl bytes of g's buffer, built by t,
// followed by data lent where it lies, as segments of gso payload bytes.
// It reports false, having sent nothing, where the caller must copy.
func (e *Engine) sendTail(g GSOSink, t *tmpl, buf []byte, hl int, data ringBytes, gso int) bool {
	tail := data.lendable()
	if len(tail) <= gso {
		return false
	}
	ts := tailSink(g)
	if ts == nil {
		return false
	}
	t.finish(buf, hl+len(tail), false, nil) // atomic (gsoSink): no identification to draw
	e.lend(data.from, ts, data.off)
	ts.CommitTail(hl, tail, gso)
	return true
}

// commit sends the first n bytes of to's buffer, built by t: with its TCP
// checksum, or without it where the port computes it.
func (e *Engine) commit(to TxSink, t *tmpl, buf []byte, n int) {
	if o, ok := to.(OffloadSink); ok && t.simple && o.OffloadsChecksums() {
		t.finish(buf, n, false, &e.ipIDs)
		o.CommitPartial(n)
		return
	}
	t.finish(buf, n, true, &e.ipIDs)
	to.Commit(n)
}
