package scenario

import (
	"slices"
)

// Dir is a direction on the untrusted link.
type Dir uint8

// The two directions: from G_A's outside port to G_B's, and back.
const (
	AtoB Dir = iota
	BtoA
)

func (d Dir) String() string {
	if d == AtoB {
		return "A->B"
	}
	return "B->A"
}

// Rule changes the fate of the frames it matches on the link. Match sees
// the frame's index in its direction (0 for the first frame ever sent that
// way) and the decoded segment; a nil Match matches every frame. The first
// rule that matches and still has uses left decides.
type Rule struct {
	Dir   Dir
	Match func(n int, s Seg) bool
	Drop  bool  // the frame is lost
	Dup   int   // extra copies delivered right after the frame
	Delay int64 // extra delay in ns (reordering against later frames)
	Hold  bool  // kept until Link.Release: reordering under test control
	// Mutate changes the frame in flight (an attacker on the path); the
	// link then fixes the IP and TCP checksums, so only the TCP payload or
	// header fields the mutation touched differ.
	Mutate func(frame []byte)
	Times  int // how many frames the rule applies to; 0 means 1, -1 unlimited
	Hits   int // frames the rule has applied to
}

func (r *Rule) live() bool { return r.Times < 0 || r.Hits < max(r.Times, 1) }

// Fate is what happened to one frame offered to the link.
type Fate uint8

// Fates of frames on the link.
const (
	Delivered Fate = iota
	Dropped
	Held
)

// LinkEvent records one frame offered to the link.
type LinkEvent struct {
	At   int64
	Dir  Dir
	N    int // index in its direction
	Seg  Seg
	Fate Fate
}

type inflight struct {
	at    int64
	order int
	dir   Dir
	frame []byte
	rule  *Rule
}

// Link is the scripted untrusted link: every frame takes Latency, unless a
// rule drops, duplicates, delays or holds it. Frames that are due at the
// same time leave in the order they were sent.
type Link struct {
	Latency int64
	Rules   []*Rule
	Log     []LinkEvent // every frame offered, in order
	// Narrow[d], when set, drops the datagrams of direction d larger than
	// its MTU (logged as Dropped, before any rule) and sends their
	// senders its packet-too-big back over the link (not logged).
	Narrow [2]*Narrow

	q     []inflight
	held  []inflight
	n     [2]int
	order int
}

// Add appends a rule and returns it (to read Hits later).
func (l *Link) Add(r Rule) *Rule {
	p := &r
	l.Rules = append(l.Rules, p)
	return p
}

// Send offers a frame to the link at time now. The link keeps its own copy.
func (l *Link) Send(now int64, d Dir, frame []byte) {
	frame = slices.Clone(frame)
	s, _ := ParseFrame(frame)
	n := l.n[d]
	l.n[d]++
	if r := l.Narrow[d]; r != nil {
		if ptb, ok := r.tooBig(now, frame); ok {
			l.Log = append(l.Log, LinkEvent{At: now, Dir: d, N: n, Seg: s, Fate: Dropped})
			l.push(inflight{at: now + l.Latency, dir: 1 - d, frame: ptb})
			return
		}
	}
	var rule *Rule
	for _, r := range l.Rules {
		if r.Dir == d && r.live() && (r.Match == nil || r.Match(n, s)) {
			rule = r
			r.Hits++
			break
		}
	}
	ev := LinkEvent{At: now, Dir: d, N: n, Seg: s}
	switch {
	case rule != nil && rule.Drop:
		ev.Fate = Dropped
		l.Log = append(l.Log, ev)
		return
	case rule != nil && rule.Hold:
		ev.Fate = Held
		l.held = append(l.held, inflight{dir: d, frame: frame, rule: rule})
		l.Log = append(l.Log, ev)
		return
	}
	if rule != nil && rule.Mutate != nil {
		rule.Mutate(frame)
		FixChecksums(frame)
	}
	l.Log = append(l.Log, ev)
	at := now + l.Latency
	if rule != nil {
		at += rule.Delay
	}
	copies := 1
	if rule != nil {
		copies += rule.Dup
	}
	for range copies {
		l.push(inflight{at: at, dir: d, frame: frame})
	}
}

func (l *Link) push(f inflight) {
	f.order = l.order
	l.order++
	l.q = append(l.q, f)
}

// Release sends every frame held by rule r (all held frames if r is nil),
// in the order they were held, as if sent at now.
func (l *Link) Release(now int64, r *Rule) int {
	n := 0
	kept := l.held[:0]
	for _, f := range l.held {
		if r == nil || f.rule == r {
			f.at = now + l.Latency
			l.push(f)
			n++
			continue
		}
		kept = append(kept, f)
	}
	l.held = kept
	return n
}

// NextAt returns when the next frame arrives, if any is in flight.
func (l *Link) NextAt() (int64, bool) {
	if len(l.q) == 0 {
		return 0, false
	}
	i := l.first()
	return l.q[i].at, true
}

func (l *Link) first() int {
	best := 0
	for i, f := range l.q {
		b := l.q[best]
		if f.at < b.at || (f.at == b.at && f.order < b.order) {
			best = i
		}
	}
	return best
}

// Pop removes and returns the next frame due at or before now.
func (l *Link) Pop(now int64) (Dir, []byte, bool) {
	if len(l.q) == 0 {
		return 0, nil, false
	}
	i := l.first()
	f := l.q[i]
	if f.at > now {
		return 0, nil, false
	}
	l.q = slices.Delete(l.q, i, i+1)
	return f.dir, f.frame, true
}

// Sent returns the segments offered to the link in direction d (whatever
// their fate), in order.
func (l *Link) Sent(d Dir) []Seg {
	var out []Seg
	for _, e := range l.Log {
		if e.Dir == d {
			out = append(out, e.Seg)
		}
	}
	return out
}
