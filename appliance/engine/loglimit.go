package engine

import (
	"context"
	"log/slog"
	"time"
)

// The engine's log lines follow what hosts and the network do, so a remote
// party decides how often they would come: a far side that answers every
// SYN without TCP-ENO (RFC 8547 §4.1: the connection stays plain TCP), one
// that sends a bad Init1 on every connection (RFC 8548 §3.3: aborted),
// forged segments that fail authentication (RFC 8548 §4.2), or ordinary
// traffic at 10k connections a second. Each such event has its counter
// (Counters: fallbacks, aborts, handshake_failures, host_gone,
// eno_path_failures, panics), which the admin API and /metrics export;
// its log line goes out through a logLimit, per engine (per worker), so
// that neither the log nor journald's per-service rate limit (which,
// past its burst, drops every line of the service, warnings included) is
// flooded. A line that follows held-back ones says how many
// (lines_suppressed); the counters have them all.

const (
	// flowLogEvery and flowLogBurst bound the per-flow debug lines (flow
	// not encrypted, flow aborted, path lost TCP-ENO, inside host gone):
	// at most flowLogBurst each flowLogEvery per engine. They are on at
	// log_level debug only (the default is info).
	flowLogEvery = int64(time.Second)
	flowLogBurst = 20
)

// logLimit lets at most burst lines out in each period of every
// nanoseconds, counting those it holds back.
type logLimit struct {
	start int64  // the current period began then
	n     int    // lines out in it
	held  uint64 // lines held back since the last one out
	begun bool   // a period began (start is valid: 0 is a valid time)
}

// allow reports whether a line may go out at now (the engine's monotonic
// clock); if so, held is how many were held back before it.
func (l *logLimit) allow(now, every int64, burst int) (held uint64, ok bool) {
	if !l.begun || now-l.start >= every || now < l.start {
		l.start, l.n, l.begun = now, 0, true
	}
	if l.n >= burst {
		l.held++
		return 0, false
	}
	l.n++
	held, l.held = l.held, 0
	return held, true
}

// flowLog reports whether a per-flow debug line may go out now, and how
// many were held back before it. The caller builds the line only when ok:
// with debug off, nothing is formatted or allocated.
func (e *Engine) flowLog() (held uint64, ok bool) {
	if !e.deps.Log.Enabled(context.Background(), slog.LevelDebug) {
		return 0, false
	}
	return e.flowLogs.allow(e.clock, flowLogEvery, flowLogBurst)
}
