// Package impair is a small impairment bump for the untrusted link of the
// test topology: it forwards Ethernet frames between two interfaces and
// holds back a configurable fraction of them, so that later frames overtake
// them (reordering), and optionally sends a fraction twice (duplication).
// It can also shift TCP sequence numbers as a sequence-randomising firewall
// does ([SeqShift]). This kernel has no netem; loss comes from nftables
// (topology.SetLoss), the rest from here.
//
// The decisions live in [Core], one per direction, which works on byte
// slices in memory and is deterministic for a given seed: its tests prove
// that frames are reordered, that none is lost or altered, and that
// duplicates appear only when asked for. [Forwarder] drives two Cores over
// AF_PACKET sockets (Linux), and [Insert] splices a namespace running the
// bump into the link between gwA:out and rtr:toA of a deploy/topology
// instance (see insert_linux.go and cmd/tcpinc-impair).
package impair

import (
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Config says how to impair one direction.
type Config struct {
	// Reorder is the fraction (0..1) of frames held back.
	Reorder float64
	// HoldFrames releases a held frame right after this many later frames
	// of the same direction went out (they overtook it). 0 means release
	// on time only.
	HoldFrames int
	// HoldTime releases a held frame after this long even when fewer than
	// HoldFrames frames followed (traffic stopped). 0 means 10 ms. A held
	// frame is always released by HoldTime at the latest.
	HoldTime time.Duration
	// Duplicate is the fraction (0..1) of frames sent twice (the copy
	// right after the original).
	Duplicate float64
	// MaxHeld bounds the frames held at once (default 64); when full, a
	// frame picked for holding goes out at once (counted in Counters.Full).
	MaxHeld int
	// MaxFrame is the largest frame held (default 65536 + 16); larger ones
	// go out at once.
	MaxFrame int
	// Seed makes the decisions reproducible.
	Seed uint64
}

// ErrConfig reports an out-of-range Config field.
var ErrConfig = errors.New("impair: invalid configuration")

func (c *Config) check() error {
	if c.Reorder < 0 || c.Reorder > 1 || c.Duplicate < 0 || c.Duplicate > 1 || c.HoldFrames < 0 || c.HoldTime < 0 || c.MaxHeld < 0 || c.MaxFrame < 0 {
		return ErrConfig
	}
	if c.HoldTime == 0 {
		c.HoldTime = 10 * time.Millisecond
	}
	if c.MaxHeld == 0 {
		c.MaxHeld = 64
	}
	if c.MaxFrame == 0 {
		c.MaxFrame = 65536 + 16
	}
	return nil
}

// Counters of one direction. Fields are atomic so that a signal handler
// can print them while the forwarder runs.
type Counters struct {
	In         atomic.Uint64 // frames received
	Out        atomic.Uint64 // frames emitted (duplicates included)
	Held       atomic.Uint64 // frames held back
	Overtaken  atomic.Uint64 // held frames released after at least one later frame went out
	Duplicated atomic.Uint64 // extra copies emitted
	Full       atomic.Uint64 // frames picked for holding that went out at once (no slot or too big)
}

// held is one frame kept back, in a preallocated slot.
type held struct {
	buf      []byte
	n        int
	deadline int64 // unix nanoseconds
	after    int   // frames emitted since it was held
}

// Core impairs one direction. It is not safe for concurrent use: one
// goroutine per direction drives it.
type Core struct {
	cfg   Config
	rng   *rand.Rand
	slots []held // the first nheld are in use, oldest first
	nheld int
	C     Counters
}

// NewCore returns a Core with cfg (defaults filled in). All slot memory is
// allocated here, so Push and Tick allocate nothing.
func NewCore(cfg Config) (*Core, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	c := &Core{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}
	c.slots = make([]held, cfg.MaxHeld)
	for i := range c.slots {
		c.slots[i].buf = make([]byte, cfg.MaxFrame)
	}
	return c, nil
}

// Config returns the configuration in effect.
func (c *Core) Config() Config { return c.cfg }

// Held is the number of frames held now.
func (c *Core) Held() int { return c.nheld }

// Push takes one frame received at now (unix nanoseconds) and calls emit
// for every frame that goes out as a result, in order: possibly this one,
// possibly held ones whose turn came. emit must not keep the slice. frame is
// copied when held, so the caller may reuse it after Push returns.
func (c *Core) Push(now int64, frame []byte, emit func([]byte)) {
	c.C.In.Add(1)
	if c.cfg.Reorder > 0 && c.rng.Float64() < c.cfg.Reorder {
		if c.nheld < len(c.slots) && len(frame) <= c.cfg.MaxFrame {
			s := &c.slots[c.nheld]
			s.n = copy(s.buf, frame)
			s.deadline = now + int64(c.cfg.HoldTime)
			s.after = 0
			c.nheld++
			c.C.Held.Add(1)
			c.Tick(now, emit)
			return
		}
		c.C.Full.Add(1)
	}
	c.out(frame, emit)
	for i := 0; i < c.nheld; i++ {
		c.slots[i].after++
	}
	c.Tick(now, emit)
}

// Tick releases held frames whose count or time has come.
func (c *Core) Tick(now int64, emit func([]byte)) {
	for i := 0; i < c.nheld; {
		s := &c.slots[i]
		due := now >= s.deadline || (c.cfg.HoldFrames > 0 && s.after >= c.cfg.HoldFrames)
		if !due {
			i++
			continue
		}
		c.release(i, emit)
	}
}

// Flush releases every held frame (at shutdown).
func (c *Core) Flush(emit func([]byte)) {
	for c.nheld > 0 {
		c.release(0, emit)
	}
}

// NextDeadline is the earliest hold deadline, or false when nothing is held.
func (c *Core) NextDeadline() (int64, bool) {
	if c.nheld == 0 {
		return 0, false
	}
	d := c.slots[0].deadline
	for i := 1; i < c.nheld; i++ {
		d = min(d, c.slots[i].deadline)
	}
	return d, true
}

// release emits slot i and closes the gap, keeping the slots' buffers
// (a swap, not a copy of frame bytes).
func (c *Core) release(i int, emit func([]byte)) {
	s := c.slots[i]
	if s.after > 0 {
		c.C.Overtaken.Add(1)
	}
	c.out(s.buf[:s.n], emit)
	copy(c.slots[i:c.nheld], c.slots[i+1:c.nheld])
	c.nheld--
	c.slots[c.nheld] = s
}

func (c *Core) out(frame []byte, emit func([]byte)) {
	emit(frame)
	c.C.Out.Add(1)
	if c.cfg.Duplicate > 0 && c.rng.Float64() < c.cfg.Duplicate {
		emit(frame)
		c.C.Out.Add(1)
		c.C.Duplicated.Add(1)
	}
}
