package engine

import (
	"time"

	"github.com/tcpinc/tcpinc/appliance/packet"
)

// Host liveness (docs/protocol.md §15). On an idle encrypted connection
// the appliances send frames of their own (keepFresh) that the far
// appliance acknowledges itself: no host takes part, so when both hosts
// vanish without a FIN or an RST (virtual machines deleted, a power loss)
// the records and their tuples in the negotiated set would be kept
// forever. So once L has sent nothing for a while (probeAfter), the appliance asks
// L as a TCP keep-alive asks its peer: an empty ACK one below what L has
// acknowledged, which a live TCP answers with an ACK (RFC 9293
// §3.10.7.4); a rebooted L answers with an RST, which ends the connection
// (hostRST). Any segment from L counts as an answer. With none after
// hostProbes probes the record ends as an idle one does: its tuple lingers
// IdleLinger in the negotiated set, and the far appliance's next frame
// there is reset (stray), which resets the far host.
const (
	// hostProbes probes, spread over IdleTimeout but at most
	// hostProbeMax apart (Linux's tcp_keepalive_intvl: 12.5 minutes in
	// all with the default IdleTimeout), so that an inside link down for
	// a while (a switch restarting, a cable moved) does not end a
	// connection whose host is alive.
	hostProbes   = 10
	hostProbeMax = int64(75 * time.Second)
	// hostProbeMin: Linux answers out-of-window segments at most once
	// per 500 ms and socket (tcp_invalid_ratelimit).
	hostProbeMin = int64(time.Second)
)

// hostAlive notes a segment from L: it is alive, the probing starts over.
func (f *flow) hostAlive(now int64) {
	f.probes, f.hostSeen = 0, int32((now+1<<30-1)>>30)
}

// probeAfter is how long L may be silent before its first probe: half of
// IdleTimeout, when keepFresh refreshes the records too. With the default
// that is 67 minutes, before a NAT or stateful firewall between the
// appliance and L may forget the idle connection (RFC 5382 REQ-5 allows 2
// h 4 min; OpenWrt's conntrack takes just that): a probe after that, from
// the outside direction, was rejected there (an RST: both ends reset) or
// dropped (the record ended), where over plain TCP the host's next segment
// would have revived the connection (a review). Before it, the probe and
// its answer refresh that state as well.
func (e *Engine) probeAfter() int64 { return int64(e.cfg.IdleTimeout) / 2 }

// probeHost sends L a keep-alive probe when one is due and ends f when L
// answered none of hostProbes. It reports whether f ended.
func (e *Engine) probeHost(now int64, f *flow, to TxSink) bool {
	every := min(max(int64(e.cfg.IdleTimeout)/hostProbes, hostProbeMin), hostProbeMax)
	if now < int64(f.hostSeen)<<30+e.probeAfter()+int64(f.probes)*every {
		return false
	}
	if f.probes >= hostProbes {
		e.c.HostGone.Add(1)
		if held, ok := e.flowLog(); ok {
			e.deps.Log.Debug("inside host gone: no answer to keep-alive probes", "id", f.id, "inside", f.key.in, "outside", f.key.out, "probes", f.probes, "lines_suppressed", held)
		}
		f.idled = true // its tuple lingers: the host may be cut off, not gone
		e.remove(f)
		return true
	}
	f.probes++
	e.c.HostProbes.Add(1)
	// In L's receive space, as the ACKs L gets from us (ackL): the window,
	// and timestamps L's PAWS check accepts (RFC 7323 §5).
	e.opts.reset()
	f.tsToL(&e.opts, false)
	s := seg{seq: wrap(f.isnR, f.rcv.ackH-1), ack: wrap(f.isnL, f.ackToL()), flags: packet.FlagACK, win: f.scaleWin(f.winR), opts: e.opts.bytes()}
	f.ecnTo(Inside, &s, false)
	e.send(to, &f.toL, &s, nil)
	return false
}
