package engine

// ring holds a sliding window of one byte stream, indexed by stream offset
// modulo its size. It starts small and doubles up to max, so an idle flow
// costs little and a busy one allocates a few times, never per packet.
type ring struct {
	b   []byte
	max int
	mem *Memory // charged for every byte of b
}

// ringStart is a new ring's first size: enough for the Init message and a
// short request or answer, so a short connection (most of them) allocates
// 512 bytes per buffer (at thousands of connections a second a 16 KiB
// start was most of the daemon's allocation and GC work, and 2 KiB still
// a fifth of it, BenchmarkConnection); a bulk flow doubles past it within
// its first round trips.
const ringStart = 512

// reserve makes room for offsets [lo, hi) while keeping the live bytes
// [lo, live) in place. It reports false when hi-lo exceeds the cap.
func (r *ring) reserve(lo, live, hi int64) bool { return r.grant(lo, live, hi, false) }

// grant is reserve; forced, it takes the memory whatever the budget and
// the cap say.
func (r *ring) grant(lo, live, hi int64, forced bool) bool {
	need := hi - lo
	if need <= int64(len(r.b)) {
		return true
	}
	if need > int64(r.max) && !forced {
		return false
	}
	n := r.sizeFor(need, forced)
	if forced {
		r.mem.force(int64(n - len(r.b)))
	} else if !r.mem.take(int64(n-len(r.b)), false) {
		return false
	}
	r.grow(lo, live, n)
	return true
}

// sizeFor is the size grant gives the buffer to hold need bytes: the
// present one (or ringStart) doubled, no larger than the cap unless forced.
func (r *ring) sizeFor(need int64, forced bool) int {
	n := len(r.b)
	if n == 0 {
		n = ringStart
	}
	for int64(n) < need {
		n *= 2
	}
	if n > r.max && !forced {
		n = r.max
	}
	return n
}

// grow replaces the buffer by one of n bytes, keeping [lo, live).
func (r *ring) grow(lo, live int64, n int) {
	nb := make([]byte, n)
	if len(r.b) > 0 {
		for off := lo; off < live; {
			a := r.at(off)
			k := int64(len(a))
			if k > live-off {
				k = live - off
			}
			j := int(off % int64(n))
			c := copy(nb[j:], a[:k])
			if int64(c) < k {
				copy(nb, a[c:k])
			}
			off += k
		}
	}
	r.b = nb
}

// reserveFirst gives an empty ring room for n bytes at offset 0 whatever
// the budget says (a flow's Init message: small, and the flow was admitted).
func (r *ring) reserveFirst(n int64) {
	if int64(len(r.b)) >= n {
		return
	}
	sz := max(ringStart, len(r.b))
	for int64(sz) < n {
		sz *= 2
	}
	r.mem.force(int64(sz - len(r.b)))
	r.grow(0, 0, sz)
}

// at returns the bytes from offset off to the physical end of the ring.
func (r *ring) at(off int64) []byte {
	n := int64(len(r.b))
	if n > 0 && n&(n-1) == 0 {
		return r.b[off&(n-1):] // the usual size: no division per access
	}
	return r.b[off%n:]
}

// write copies p to offset off (the caller reserved the room).
func (r *ring) write(off int64, p []byte) {
	for len(p) > 0 {
		n := copy(r.at(off), p)
		p, off = p[n:], off+int64(n)
	}
}

// holds reports whether p already lies in the ring at offset off (opened
// there: tcpcrypt's FrameDecoder.NextInto).
func (r *ring) holds(off int64, p []byte) bool {
	if len(p) == 0 || len(r.b) == 0 {
		return false
	}
	a := r.at(off)
	return len(a) >= len(p) && &a[0] == &p[0]
}

// span returns the n bytes at offset off where they lie: up to the ring's
// physical end, then from its start.
func (r *ring) span(off, n int64) ringBytes {
	if n <= 0 {
		return ringBytes{from: r, off: off}
	}
	a := r.at(off)
	if int64(len(a)) >= n {
		return ringBytes{a: a[:n], from: r, off: off}
	}
	return ringBytes{a: a, b: r.b[:n-int64(len(a))], from: r, off: off}
}

// ringBytes is a run of bytes in at most two pieces, a then b (a ring's
// bytes across its physical end), so that they go out without first being
// copied into one piece. from is the ring they lie in, at offset off, if
// any: one piece of the retransmit store or the delivery ring may be lent
// to a port (Engine.lend).
type ringBytes struct {
	a, b []byte
	from *ring
	off  int64
}

func (d ringBytes) len() int { return len(d.a) + len(d.b) }

// cut returns the first n bytes of d (n <= d.len()) and the rest.
func (d ringBytes) cut(n int) (head, rest ringBytes) {
	head, rest = ringBytes{from: d.from, off: d.off}, ringBytes{from: d.from, off: d.off + int64(n)}
	if n < len(d.a) || len(d.b) == 0 {
		head.a, rest.a, rest.b = d.a[:n], d.a[n:], d.b
		return head, rest
	}
	// Piece a is used up: the rest is one piece (of b), as piece a.
	k := n - len(d.a)
	head.a, head.b, rest.a = d.a, d.b[:k], d.b[k:]
	return head, rest
}

// lendable returns d as one piece of a ring, or nil.
func (d ringBytes) lendable() []byte {
	if d.from == nil || len(d.b) > 0 || len(d.a) == 0 {
		return nil
	}
	return d.a
}

// copyTo copies d to the front of dst, as far as dst reaches.
func (d ringBytes) copyTo(dst []byte) int {
	n := copy(dst, d.a)
	return n + copy(dst[n:], d.b)
}

// read copies len(dst) bytes from offset off into dst.
func (r *ring) read(dst []byte, off int64) {
	for len(dst) > 0 {
		n := copy(dst, r.at(off))
		dst, off = dst[n:], off+int64(n)
	}
}

// loan says that the bytes of ring r from offset lo on, in its buffer buf,
// went to sink as the tail of a super-frame (TailSink) while the sink's
// Flushes count was at: they must stay in place until the count moves.
type loan struct {
	r    *ring
	buf  *byte
	sink TailSink
	at   uint64
	lo   int64
}

// lend records that r's bytes from off on went to s as a tail.
func (e *Engine) lend(r *ring, s TailSink, off int64) {
	buf, at := &r.b[0], s.Flushes()
	if n := len(e.loans); n > 0 {
		if l := &e.loans[n-1]; l.r == r && l.buf == buf && l.sink == s && l.at == at {
			l.lo = min(l.lo, off)
			return
		}
	}
	e.forgetReadLoans() // the list holds one flush's loans at most
	e.loans = append(e.loans, loan{r: r, buf: buf, sink: s, at: at, lo: off})
}

// forgetReadLoans drops the loans whose sink has flushed since.
func (e *Engine) forgetReadLoans() {
	k := 0
	for _, l := range e.loans {
		if l.at == l.sink.Flushes() {
			e.loans[k] = l
			k++
		}
	}
	clear(e.loans[k:]) // no ring buffer kept alive
	e.loans = e.loans[:k]
}

// reserveLent is r.reserve for a ring whose bytes may be lent (the
// retransmit store, the delivery ring): bytes lent to a sink that has not
// flushed since count as live from lo down, even when an ACK in the same
// batch released them, so that new bytes never land on a tail the port has
// yet to read. A ring grown since keeps the old buffer intact, so only
// loans of its current buffer count. Loans already read are forgotten.
func (e *Engine) reserveLent(r *ring, lo, live, hi int64) bool {
	return e.grantLent(r, lo, live, hi, false)
}

// grantLent is reserveLent; forced, whatever the memory budget and the cap
// say (grant). Refused by the budget (not the cap), it first drops R's
// bytes held past holes (prune.go): a live flow's own store and delivery
// ring come before them.
func (e *Engine) grantLent(r *ring, lo, live, hi int64, forced bool) bool {
	if len(e.loans) > 0 {
		e.forgetReadLoans()
		for _, l := range e.loans {
			if l.r == r && len(r.b) > 0 && l.buf == &r.b[0] {
				lo = min(lo, l.lo)
			}
		}
	}
	if r.grant(lo, live, hi, forced) {
		return true
	}
	if hi-lo > int64(r.max) {
		return false
	}
	grow := int64(r.sizeFor(hi-lo, false) - len(r.b))
	return e.pruneHeld(r.mem.excess(grow, false), true) && r.grant(lo, live, hi, forced)
}
