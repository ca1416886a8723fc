package engine

import (
	"sync/atomic"
)

// Counters are the engine's event counts, read with atomics by the admin API
// while the worker runs. FramesSealed and FramesOpened are as of the
// engine's last Tick (publish).
type Counters struct {
	Flows, FlowsCapped, FlowsReclaimed                  atomic.Uint64
	EmbryonicEvicted                                    atomic.Uint64 // handshakes evicted for newer ones (MaxEmbryonic, memory)
	Handshakes, HandshakeFailures                       atomic.Uint64
	Encrypted, Resumed                                  atomic.Uint64
	Fallbacks                                           [NumFallbackReasons]atomic.Uint64
	AuthFailures, Aborts                                atomic.Uint64
	Rekeys, RekeysAnswered                              atomic.Uint64
	InitRetransmits, FrameRetransmits                   atomic.Uint64
	DupAcksOriginated, AcksSuppressed, AcksOriginated   atomic.Uint64
	AcksCoalesced                                       atomic.Uint64 // L's ACKs inside a release, folded into one to R (ackRelease)
	HostNudges                                          atomic.Uint64 // the last byte L was sent, sent again for its ACK at once: of a whole release, or the ACK that will carry a hole's SACK blocks (nudgeL)
	HolesFilled                                         atomic.Uint64 // gaps in R's wire stream closed by the bytes that were missing (lost and resent, or reordered: wireInOrder)
	WireDuplicates                                      atomic.Uint64 // segments from R wholly below what it had sent us in order: its spurious retransmissions, or the path's duplicates (duplicate)
	FramesSealed, FramesOpened                          atomic.Uint64
	Redelivered, KeepAlives, URGStripped, PTBTranslated atomic.Uint64
	ICMPTranslated                                      atomic.Uint64 // other ICMP errors from the outside, quoted sequence number put in host space (outsideError)
	IdleRefreshes                                       atomic.Uint64 // empty frames sent on connections idle for half of IdleTimeout (keepFresh)
	HostProbes, HostGone                                atomic.Uint64 // keep-alive probes sent to inside hosts silent for half of IdleTimeout, and connections ended with all unanswered (hostprobe.go)
	DeliverWaits                                        atomic.Uint64 // frames left unopened for want of room in the delivery ring until L's ACKs make some (consume)
	HeldPruned                                          atomic.Uint64 // times a flow's bytes from R past a hole were dropped, for memory or after bufIdle of silence (prune.go)
	HeldWidened                                         atomic.Uint64 // times a flow's reassembly went past the 16 ranges of its record to a block of 64 (widenHeld)
	ResumeNoRoom                                        atomic.Uint64 // SYNs without room for a resumption offer, offered fresh instead (outboundSYN)
	PreKeyQueued                                        atomic.Uint64
	SYNDataHeldBack                                     atomic.Uint64 // SYNs whose data or Fast Open cookie was left out for ENO (outboundSYN)
	HostHeld                                            atomic.Uint64 // host segments past a hole kept until the hole is filled (hostHold)
	StrayResets                                         atomic.Uint64 // mid-stream segments of negotiated connections without a record, reset
	ChallengeACKs                                       atomic.Uint64 // RFC 5961 challenge ACKs sent for in-window RSTs and SYNs
	PTBInside                                           atomic.Uint64 // packet-too-big from the inside honoured (pmtu.go)
	PMTUExpired                                         atomic.Uint64 // lowered segment sizes that expired back to the MSS (pmtu.go)
	ENOPathFailures                                     atomic.Uint64 // connections that failed because their path lost TCP-ENO after the SYNs, far address remembered (enopath.go)
	HostResized                                         atomic.Uint64 // host retransmissions that showed the host lowered its segment size (hostResized)
	Bypassed                                            atomic.Uint64 // encrypted connections reset because the inside host acknowledged bytes the appliance never delivered: the far side's segments reached it by another path (bypassed)
	Panics                                              atomic.Uint64 // engine bugs: panics recovered, the flows they hit dropped (recover.go)
	KeyGenInline, PoolRetries                           atomic.Uint64
	KeyLogLines, KeyLogLost                             atomic.Uint64 // key log lines Deps.KeyLog took, and refused (logKeys)
	Drops                                               [NumDropReasons]atomic.Uint64

	// Frag counts IP fragment decisions and drops (frag.go).
	Frag [NumFragEvents]atomic.Uint64
}

// Fallback reasons, counted in Counters.Fallbacks.
const (
	FallbackNoENO            = iota // the far side answered without TCP-ENO
	FallbackNegotiate               // TCP-ENO present but negotiation failed (see FlowInfo)
	FallbackSYNData                 // the SYN carried data or a Fast Open cookie
	FallbackNoENOInACK              // the third segment came without TCP-ENO (ENO-28)
	FallbackEndToEnd                // the inside host speaks TCP-ENO itself
	FallbackBypass                  // policy
	FallbackOptionRoom              // the option did not fit
	FallbackSimultaneousOpen        // both hosts opened actively and the far SYN's option disabled ENO (crossingSYN)
	FallbackMemory                  // the per-flow memory budget admits no new flow (Config.MemoryLimit)
	FallbackSYNRetries              // the host's SYNs with TCP-ENO went unanswered: a retransmission left without it (Config.SYNsWithENO)
	FallbackTCPAuth                 // the segments are signed end to end (TCP MD5 or TCP-AO): left alone
	FallbackNegotiatedFull          // the negotiated set had no room for the tuple (NegotiatedSet.Overflows): unheld, a restart would pass its segments
	FallbackSourceRouted            // the handshake was source-routed: an IPv6 routing header with segments left, or an IPv4 source route (leftAlone)
	FallbackENOPathStripped         // the far address's path lost TCP-ENO after the SYNs a short while ago (enopath.go)
	FallbackSYNFlood                // a SYN with TCP-ENO from an unknown source under a SYN flood, passed on as it came with no record (flood.go)
	FallbackAsymmetric              // a host's first segment after its SYN showed it holds a SYN-ACK that never passed the appliance: one direction takes another path (asymmetric.go)
	NumFallbackReasons
)

// Drop reasons, counted in Counters.Drops.
const (
	DropMalformed   = iota // undecodable frame or TCP options
	DropTxFull             // no TX buffer
	DropStoreFull          // retransmit store full: host data dropped, the host retransmits
	DropReasmFull          // reassembly buffer full
	DropPreKeyFull         // pre-key queue full
	DropOutOfWindow        // segment outside what the flow can place
	DropStale              // segment for a flow that is closing or unknown state
	DropDeliverFull        // plaintext kept for re-delivery over its cap (not a frame drop)
	DropPolicy             // a plain connection from a prefix whose policy requires encryption
	DropFragment           // an IP fragment not forwarded (Counters.Frag says why)
	DropChecksum           // a segment of an encrypted connection, a handshake's, or a stray RST, or an ICMP error acted on, with a bad checksum
	DropICMPQuote          // an ICMP error from the inside quoting a segment of a negotiated connection (plaintext)
	DropICMPWindow         // a packet-too-big quoting a sequence number not in flight (RFC 5927 §4.1)
	DropSYNFlood           // a SYN from the outside shed under a SYN flood, beyond those passed with no record: its source has no encrypted connection yet (flood.go)
	DropHostGap            // the inside host's data past a hole in its stream that cannot be held (hostHold: over the reassembly cap)
	DropRSTRejected        // a far-side RST not at the next sequence number (RFC 5961 §3): blind, or late from a closed peer
	DropPAWS               // a far-side segment with data whose timestamp is older than TS.Recent: an old duplicate (RFC 7323 §5)
	DropOtherVLAN          // a segment of a negotiating or encrypted flow with other VLAN IDs than the flow's: another address space's connection on the same tuple (sameVLANs)
	NumDropReasons
)

// FallbackNames and DropNames label Counters.Fallbacks and Counters.Drops
// for metrics and the admin API.
var (
	FallbackNames = [NumFallbackReasons]string{"no_eno", "negotiation", "syn_data", "no_eno_in_ack", "end_to_end", "bypass", "option_room", "simultaneous_open", "memory", "syn_retries", "tcp_auth", "negotiated_set_full", "source_routed", "eno_path_stripped", "syn_flood", "asymmetric"}
	DropNames     = [NumDropReasons]string{"malformed", "tx_full", "store_full", "reassembly_full", "prekey_full", "out_of_window", "stale", "deliver_full", "policy", "fragment", "checksum", "icmp_quote", "icmp_out_of_window", "syn_flood", "host_gap", "rst_rejected", "paws", "other_vlan"}
)

// EachEvent calls fn with the name and value of every counter of c that the
// admin API has no field of its own for (tcpinc_engine_events_total).
func (c *Counters) EachEvent(fn func(name string, n uint64)) {
	for _, ev := range []struct {
		name string
		n    *atomic.Uint64
	}{
		{"flows", &c.Flows},
		{"flows_capped", &c.FlowsCapped},
		{"flows_reclaimed", &c.FlowsReclaimed},
		{"aborts", &c.Aborts},
		{"rekeys_answered", &c.RekeysAnswered},
		{"frame_retransmits", &c.FrameRetransmits},
		{"acks_suppressed", &c.AcksSuppressed},
		{"acks_coalesced", &c.AcksCoalesced},
		{"host_nudges", &c.HostNudges},
		{"holes_filled", &c.HolesFilled},
		{"wire_duplicates", &c.WireDuplicates},
		{"acks_originated", &c.AcksOriginated},
		{"redelivered", &c.Redelivered},
		{"keepalives", &c.KeepAlives},
		{"resume_no_room", &c.ResumeNoRoom},
		{"syn_data_held_back", &c.SYNDataHeldBack},
		{"urg_stripped", &c.URGStripped},
		{"ptb_translated", &c.PTBTranslated},
		{"icmp_translated", &c.ICMPTranslated},
		{"idle_refreshes", &c.IdleRefreshes},
		{"host_probes", &c.HostProbes},
		{"host_gone", &c.HostGone},
		{"deliver_waits", &c.DeliverWaits},
		{"held_pruned", &c.HeldPruned},
		{"held_widened", &c.HeldWidened},
		{"ptb_inside", &c.PTBInside},
		{"pmtu_expired", &c.PMTUExpired},
		{"eno_path_failures", &c.ENOPathFailures},
		{"host_resized", &c.HostResized},
		{"bypassed", &c.Bypassed},
		{"panics", &c.Panics},
		{"prekey_queued", &c.PreKeyQueued},
		{"host_segments_held", &c.HostHeld},
		{"challenge_acks", &c.ChallengeACKs},
		{"key_gen_inline", &c.KeyGenInline},
		{"pool_retries", &c.PoolRetries},
		{"key_log_lines", &c.KeyLogLines},
		{"key_log_lost", &c.KeyLogLost},
	} {
		fn(ev.name, ev.n.Load())
	}
}
