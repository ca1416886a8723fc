package engine

// deadlines orders the released entries of a NegotiatedSet by deadline (a
// min-heap), so that a full set gives up the nearest without scanning
// itself. Items go stale when their entry is forgotten, held again or
// given another deadline; the set checks each one it pops against its map,
// and drops the stale ones in bulk when they outnumber its capacity.
type deadlines struct {
	items []deadline
}

type deadline struct {
	d int64
	k flowKey
}

func (h *deadlines) len() int { return len(h.items) }

func (h *deadlines) push(k flowKey, d int64) {
	h.items = append(h.items, deadline{d, k})
	h.up(len(h.items) - 1)
}

// pop takes the item with the nearest deadline.
func (h *deadlines) pop() (flowKey, int64) {
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

// keep drops the items live rejects and orders the rest again.
func (h *deadlines) keep(live func(flowKey, int64) bool) {
	kept := h.items[:0]
	for _, it := range h.items {
		if live(it.k, it.d) {
			kept = append(kept, it)
		}
	}
	clear(h.items[len(kept):])
	h.items = kept
	for i := len(kept)/2 - 1; i >= 0; i-- {
		h.down(i)
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
