package engine

// deadlines orders the released entries of a NegotiatedSet by deadline (a
// min-heap), so that a full set gives up the nearest without scanning
// itself. Items go stale when their entry is forgotten, held again or
// given another deadline; the set checks each one it pops against its map,
// and sweeps a few more at each push once the heap is half again its
// capacity (sweep), so that no push ever scans the heap whole.
type deadlines struct {
	items []deadline
	at    int // where sweep goes on
}

type deadline struct {
	d int64
	k setKey
}

func (h *deadlines) len() int { return len(h.items) }

func (h *deadlines) push(k setKey, d int64) {
	h.items = append(h.items, deadline{d, k})
	h.up(len(h.items) - 1)
}

// pop takes the item with the nearest deadline.
func (h *deadlines) pop() (setKey, int64) {
	top := h.items[0]
	n := len(h.items) - 1
	h.items[0] = h.items[n]
	h.items[n] = deadline{}
	h.items = h.items[:n]
	if n > 0 {
		h.down(0)
	}
	return top.k, top.d
}

// popStale takes stale items off the top, at most n: the nearest
// deadlines are where stale items gather (a tuple reused keeps its old
// item, the oldest), and makeRoom would pop them all at once.
func (h *deadlines) popStale(n int, live func(setKey, int64) bool) {
	for ; n > 0 && len(h.items) > 0 && !live(h.items[0].k, h.items[0].d); n-- {
		h.pop()
	}
}

// sweep looks at the next n items, round the heap, and takes out those
// live rejects.
func (h *deadlines) sweep(n int, live func(setKey, int64) bool) {
	for range n {
		if len(h.items) == 0 {
			return
		}
		if h.at >= len(h.items) {
			h.at = 0
		}
		if it := h.items[h.at]; live(it.k, it.d) {
			h.at++
			continue
		}
		h.removeAt(h.at) // the item moved into its place is looked at next
	}
}

// removeAt takes item i out.
func (h *deadlines) removeAt(i int) {
	n := len(h.items) - 1
	h.items[i] = h.items[n]
	h.items[n] = deadline{}
	h.items = h.items[:n]
	if i < n {
		h.down(i)
		h.up(i)
	}
}

func (h *deadlines) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h.items[p].d <= h.items[i].d {
			return
		}
		h.items[p], h.items[i] = h.items[i], h.items[p]
		i = p
	}
}

func (h *deadlines) down(i int) {
	n := len(h.items)
	for {
		c := 2*i + 1
		if c >= n {
			return
		}
		if c+1 < n && h.items[c+1].d < h.items[c].d {
			c++
		}
		if h.items[i].d <= h.items[c].d {
			return
		}
		h.items[i], h.items[c] = h.items[c], h.items[i]
		i = c
	}
}
