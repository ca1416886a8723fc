package engine

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// recLog is a slog.Handler that keeps every record at every level, for
// counting the lines the engine logs.
type recLog struct {
	mu  *sync.Mutex
	out *[]slog.Record
}

func newRecLog() (*slog.Logger, recLog) {
	h := recLog{mu: new(sync.Mutex), out: new([]slog.Record)}
	return slog.New(h), h
}

func (h recLog) Enabled(context.Context, slog.Level) bool { return true }
func (h recLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h recLog) WithGroup(string) slog.Handler            { return h }
func (h recLog) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.out = append(*h.out, r.Clone())
	return nil
}

// lines returns the records with message msg, each as its attributes.
func (h recLog) lines(msg string) []map[string]slog.Value {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]slog.Value
	for _, r := range *h.out {
		if r.Message != msg {
			continue
		}
		m := map[string]slog.Value{}
		r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value; return true })
		out = append(out, m)
	}
	return out
}

// maxFlowLines is what the test allows an engine of per-flow lines in a
// second (flowLogBurst, with room).
const maxFlowLines = 50

// suppressed sums the lines_suppressed of ls, failing a line without it.
func suppressed(t *testing.T, ls []map[string]slog.Value) (n uint64) {
	t.Helper()
	for _, l := range ls {
		v, ok := l["lines_suppressed"]
		if !ok {
			t.Fatalf("line %v does not say how many lines were suppressed before it", l)
		}
		n += v.Uint64()
	}
	return n
}

// Ordinary heavy traffic at log_level debug: connections to servers
// without TCP-ENO (RFC 8547 §4.1: each stays plain TCP) at a thousand in a
// millisecond. Each is counted (fallbacks no_eno); the engine's "flow not
// encrypted" line is rate-limited, and the line after the held-back ones
// says how many there were. Before, each connection had its line: 10k
// connections a second were 10k lines a second per worker, past journald's
// rate limit, which then drops the daemon's warnings too (the log audit).
func TestFlowLogLinesBoundedUnderLoad(t *testing.T) {
	log, rec := newRecLog()
	ga := newGWDeps(t, Config{TEPs: testTEPs}, Deps{Log: log})
	const n = 1000
	port := addrA.Port()
	connect := func() {
		port++
		a := netip.AddrPortFrom(addrA.Addr(), port)
		ga.push(Inside, tcpFrame(a, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
		ga.push(Outside, tcpFrame(addrB, a, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 2), nil))
	}
	for range n {
		ga.now += int64(time.Microsecond)
		connect()
	}
	if c := ga.e.Counters().Fallbacks[FallbackNoENO].Load(); c != n {
		t.Fatalf("no_eno fallbacks %d, want %d", c, n)
	}
	lines := rec.lines("flow not encrypted")
	if len(lines) == 0 || len(lines) > maxFlowLines {
		t.Fatalf("%d 'flow not encrypted' lines for %d connections in a millisecond, want 1 to %d", len(lines), n, maxFlowLines)
	}
	// A second on, the next connection's line says how many were held.
	ga.now += int64(time.Second)
	connect()
	lines = rec.lines("flow not encrypted")
	if got := uint64(len(lines)) + suppressed(t, lines); got != n+1 {
		t.Fatalf("%d lines + %d suppressed = %d, want %d (every fallback logged or accounted)", len(lines), suppressed(t, lines), got, n+1)
	}
	// Few connections, each its line: debugging one still works.
	ga.now += int64(time.Second)
	for range 3 {
		connect()
	}
	if l := rec.lines("flow not encrypted"); len(l) != len(lines)+3 {
		t.Fatalf("%d lines for 3 connections after a quiet second, want 3", len(l)-len(lines))
	}
}

// A far side that aborts every connection (here: a bad Init1 each time,
// RFC 8548 §3.3, to an inside server that speaks TCP-ENO) at a high rate:
// each abort is counted (aborts, handshake_failures), its line is
// rate-limited, and the line says which connection (inside and outside
// addresses: its record, and so its ID, is gone once it is aborted).
func TestAbortLogLinesBoundedAndSayTheFlow(t *testing.T) {
	log, rec := newRecLog()
	gb := newGWDeps(t, Config{TEPs: testTEPs}, Deps{Log: log})
	const n = 300
	bad := make([]byte, 75)
	copy(bad, unhex("deadbeef0000004b"))
	port := addrA.Port()
	for range n {
		gb.now += int64(time.Microsecond)
		port++
		a := netip.AddrPortFrom(addrA.Addr(), port)
		gb.push(Outside, tcpFrame(a, addrB, isnA, 0, synF, 64240, append(synOpts(1460, 1), 69, 3, 0x23), nil))
		gb.push(Inside, tcpFrame(addrB, a, isnB, isnA+1, synF|ackF, 1, synOpts(1460, 2), nil))
		gb.push(Outside, tcpFrame(a, addrB, isnA+1, isnB+1, ackF|pshF, 502, append(tsOpt(2, 2), 69, 2), bad))
	}
	if c := gb.e.Counters().Aborts.Load(); c != n {
		t.Fatalf("aborts %d, want %d", c, n)
	}
	lines := rec.lines("flow aborted")
	if len(lines) == 0 || len(lines) > maxFlowLines {
		t.Fatalf("%d 'flow aborted' lines for %d aborts in a third of a millisecond, want 1 to %d", len(lines), n, maxFlowLines)
	}
	for _, l := range lines {
		in, _ := l["inside"].Any().(netip.AddrPort)
		out, _ := l["outside"].Any().(netip.AddrPort)
		if in != addrB || out.Addr() != addrA.Addr() {
			t.Fatalf("abort line %v: want the inside (%v) and outside addresses", l, addrB)
		}
	}
}

// A recovered panic is logged with its stack at most once a second,
// also when the first comes at time 0 of the engine's clock. Before, a
// panic logged at 0 took 0 for "never logged": every panic in the first
// nanosecond was logged, and the one-a-second bound started only after.
func TestPanicLogOnceASecondFromTimeZero(t *testing.T) {
	log, rec := newRecLog()
	e, err := New(Config{}, Deps{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	const msg = "engine bug: panic recovered, the flow it hit is dropped"
	for range 5 {
		e.recovered("injected engine bug", 0, nil, 0)
	}
	e.recovered("injected engine bug", int64(time.Second/2), nil, 0)
	if l := rec.lines(msg); len(l) != 1 {
		t.Fatalf("%d panic lines in the first half second, want 1", len(l))
	}
	e.recovered("injected engine bug", int64(time.Second), nil, 0)
	if l := rec.lines(msg); len(l) != 2 {
		t.Fatalf("%d panic lines after a second, want 2", len(l))
	}
	if c := e.Counters().Panics.Load(); c != 7 {
		t.Fatalf("panics %d, want 7", c)
	}
}
