// Package engine is the appliance's per-flow state machine: it negotiates
// TCP-ENO (RFC 8547) on behalf of inside hosts that do not speak it, runs the
// tcpcrypt (RFC 8548) key exchange, and translates every segment of an
// encrypted connection between the hosts' plain byte streams and the framed,
// encrypted wire streams (docs/architecture.md §2).
//
// # Negotiation
//
// An outbound SYN without TCP-ENO (no data, no Fast Open cookie, policy not
// bypass) gets our SYN-form option, the same bytes on every retransmission;
// the appliance is host A. An inbound SYN with TCP-ENO goes to the inside host
// unchanged except for the MSS clamp and without any data (RFC 8547 §4.7: the
// data of a SYN or SYN-ACK with TCP-ENO never reaches a host); if the host
// answers with TCP-ENO itself
// the engine stays out (end to end wins), else it answers as host B (explicit
// b = 1, one TEP). `45 02` goes on A's segments until a non-SYN segment from
// the far side arrives; a third segment without TCP-ENO, a SYN-ACK without a
// valid option, a role clash and the other rules of docs/protocol.md §3 leave the
// flow in plain TCP with a reason (or reset it, under the require policy).
//
// # Two sequence spaces
//
// Per direction, stream offsets are 64-bit and relative to ISN+1 (unwrap and
// wrap in seq.go are the only 32-bit arithmetic). The encrypting direction
// seals each new host segment into frames no larger than the far side's MSS,
// keeps the wire bytes in a retransmit store until the wire ACK passes them,
// and serves host retransmissions whole from it (never sealing twice at one
// offset: the stored bytes keep their original key generation, TC-45,
// TC-59, so older sending keys go as soon as a newer one is in use; after a
// packet-too-big they go out in smaller segments of the same bytes:
// pmtu.go). Host segments past a hole wait, held, until the hole is filled
// (hosthold.go). Frames go no further than the far side's window: the
// host's window allows for the overhead of full frames, a host's short
// segments cost more, and what the window does not take waits in the store
// for the far side's ACK (sealNew, sendHeld); the host's retransmission of
// such a frame sends a window probe instead. Wire
// ACKs and SACK blocks become host ones rounded to whole frames. The bytes the appliance
// puts in the stream itself (its Init message, empty rekey frames) are its
// own to resend: on a timer, and at once when the far side's third
// duplicate ACK or its SACK blocks show the hole starts there. The
// decrypting direction reassembles the wire stream (out-of-order bytes held
// and answered with a duplicate ACK carrying SACK in wire space), feeds the
// Init reader and then tcpcrypt.FrameDecoder, and delivers each frame's data
// at its host offset, within L's window; the inside host's ACKs go back
// rounded to frame edges (but see Partial-frame custody), repeats that would
// look like duplicate ACKs are suppressed, and plaintext is kept until the
// host acknowledges it so a loss on the inside link is repaired when the far
// side retransmits. FIN travels as FINp (a TCP FIN without FINp aborts), a
// forged frame aborts (RST both ways), RSTs and keep-alives are translated,
// never framed.
//
// # Partial-frame custody
//
// The far side chooses its frame size: a host implementation that frames
// per write() sends frames up to clen 65,535 (RFC 8548 §4.2), larger than
// its first flight (10 segments, RFC 6928) and than many windows. A frame
// opens only whole, so if the appliance acknowledged R's bytes only after
// L acknowledged their plaintext, R would wait for an ACK that needs the
// rest of the frame, which R will not send without an ACK: a deadlock. So
// once L has acknowledged every frame opened so far, the appliance
// acknowledges the in-order wire bytes of the frame the decoder is still
// assembling, up to one byte before its end (custody.go). It holds those
// bytes itself (the decoder's partial frame: at most one frame, 65,538
// bytes, per flow) and they never reach L unauthenticated. The frame's end
// stays unacknowledged until L acknowledges the frame's plaintext, so R's
// "everything acknowledged" still means L has the data, and R's
// retransmission of that end re-delivers the plaintext if the inside link
// lost some (a one-byte retransmission there is R's data, not a keep-alive
// probe, which sits one below what R was acknowledged). The window R gets
// reaches at least the end of that frame, even when L's window or the
// re-delivery cap is smaller, since R could never complete the frame
// otherwise. So an
// opened frame may not fit L's window: its plaintext waits in the
// re-delivery ring and goes to L as L's ACKs open the window (pushPlain),
// not when R's retransmission timer, backed off meanwhile, fires; R's
// retransmission of the held end still stands in for a window probe. Frames
// after it wait for L's ACK of it (a cumulative ACK cannot skip its end),
// which keeps the custody to one frame. Out-of-order bytes are answered as
// before, duplicate ACKs at the custody point, and every ACK carries SACK
// blocks while they are held. A frame larger than the re-delivery cap
// (Config.DeliverBytes) goes to L at once, past its window, and cannot be
// re-delivered, as before. The same holds whichever end opened the
// connection. Rejected alternatives:
// acknowledging whole frames the appliance opened but L has not
// acknowledged (R's ACK would then no longer mean delivery, and nothing
// would make R resend what the inside link lost), and delivering a frame's
// plaintext before it is authenticated (never).
//
// # Safety rules
//
// Nothing of an encrypted connection leaves in plaintext by a side door and
// nothing but authenticated plaintext reaches a host (FuzzScript checks
// both): RSTs are rebuilt without payload, keep-alive bytes are not sent,
// malformed frames are dropped, IP fragments of a negotiated connection are
// reassembled and handled as one segment (never forwarded; frag.go),
// segments with a bad TCP checksum are dropped before sealing or decoding.
// A mid-stream segment of a connection the engine has no record of (begun
// before a restart, or whose record expired) passes unchanged unless its
// tuple is in the NegotiatedSet, which remembers, across restarts when the daemon pins it,
// the tuples that negotiated TCP-ENO: those are reset both ways instead.
// The appliance never resets plain TCP. Segments from the far side
// of a negotiated flow are checked as a TCP checks them before they change
// anything (RFC 9293 §3.10.7.4 with RFC 5961: exact RSTs, challenge ACKs,
// ACK acceptability), and a forged SYN takes no connection over: the
// record it displaces is kept until the other host answers it (see
// acceptance.go, also for tuple reuse after a close, RFC 6191). Under the
// require policy every way a negotiation can fail resets both hosts
// (require.go).
//
// # Path MTU
//
// A packet-too-big from the outside about our wire segment counts only if
// its quoted sequence number is in flight (RFC 5927 §4.1); it lowers the
// flow's wire segments and reaches the host translated (host sequence
// number, MTU less the 20-byte frame overhead). One from the inside about
// a segment the appliance delivered quotes plaintext and never leaves; it
// lowers the segments the appliance delivers and the quoted bytes are
// delivered again (pmtu.go). Other ICMP errors from the inside about a
// negotiated connection are dropped. Every segment the engine builds fits
// the port it leaves by (Deps.MTU), whose MTU the daemon follows while it
// runs (SetMTU: live flows too, mss.go).
//
// # Limits
//
// A simultaneous open is negotiated only when the far SYN's option is
// compatible with ours (the far side set b = 1, RFC 8547 §4.3, and offers a
// TEP we offered): the inside host's SYN-ACK then repeats our SYN's option
// (§4.6) and the appliance is host A (acceptance.go, crossingSYN). Any
// other simultaneous open is left in plain TCP, counted as
// simultaneous_open once the far SYN-ACK repeats the far SYN's sequence
// number (the host's SYN-ACK leaves without ENO, ENO-33);
// under the require policy the far SYN is held back instead, so that only
// the far side's SYN-ACK to our SYN can go on, where negotiation or the
// policy decides. URGp is never generated (the
// urgent flag from a host is dropped and counted); a received URGp sets URG
// with the pointer just past urgent bytes counted from the frame's first data
// byte (docs/protocol.md §13 leaves the reference point ambiguous), on the
// segment that carries that byte when the host's window takes it. Timers have a
// granularity of about 200 ms (Tick sweeps a slice of the flows each time).
//
// # Floods
//
// Handshakes are bounded apart from established flows (Config.MaxEmbryonic,
// oldest evicted first), every flow's record and buffers are charged to a
// Memory budget shared by the workers (Config.MemoryLimit; new flows are
// refused before established ones' buffers), and under a SYN flood SYNs from
// sources without an encrypted connection are shed before they cost
// anything (flood.go). Per-flow buffers start empty and grow with use.
//
// # Configuration at run time
//
// Reconfigure swaps the whole configuration between two rounds, checked
// first as New checks it (all of it or none). New connections take all of
// it; connections already under way keep what they negotiated and their
// policy, and use the new rekey thresholds and timers from then on; the
// per-flow buffer caps bound their further growth (a buffer already larger
// than a lowered cap is not shrunk).
//
// # Threads
//
// An Engine belongs to one worker goroutine: HandlePacket for every frame
// (the worker's decoding of it), Tick between batches for timers (Init and
// rekey-frame retransmission, rekey by time, expiry) and for the
// Diffie-Hellman results the cryptopool.Pool posts back. Counters are atomics the admin API reads at any time; Flows gives
// snapshots between batches. The steady-state data path does not allocate
// (TestSteadyStateAllocs).
//
// # Files
//
// One frame's way through the engine reads top to bottom across these
// files: engine.go takes it decoded (HandlePacket; Handle decodes it first)
// and picks the flow, then
//   - from the far side R: inbound.go (fromOutside; acceptance.go checks the
//     segment first, wireAccept), which reassembles the wire stream, opens
//     frames (consume, deliver) and hands the plaintext to custody.go, from
//     where output.go sends it to L (sendPlain, send) through the segment
//     templates of wire.go;
//   - from the inside host L: outbound.go (fromInside, hostSegment), which
//     seals host data into frames kept in the store (sealNew) and sends them
//     through output.go (sendWire, sendStored).
//
// By concern:
//
//	engine.go      the Engine: New, Reconfigure, Handle and HandlePacket
//	               (dispatch), poll (finished pool work); counters.go: the
//	               event counters and their names; stray.go: segments of
//	               connections without a record; icmp.go: ICMP errors;
//	               plainseg.go: segments of plain records, their SYNs again;
//	               recover.go: a panic costs its flows, not the daemon
//	config.go      Config, policies, defaults; validate.go: Config.Validate
//	flow.go        the per-flow record (both directions' state, frame queues),
//	               window scaling and timestamps
//	table.go       records come and go: newFlow, reclaim, closeCheck, kill,
//	               abort, remove, detach
//	negotiate.go   TCP-ENO: SYNs, SYN-ACKs, the third segment
//	               (handshakeFromOutside), plain records; synrewrite.go: the
//	               ENO option added to or taken out of SYNs and SYN-ACKs, SYN
//	               data, the MSS clamp; plainpeers.go: far sides that
//	               answered without ENO, for SYNs with data (Fast Open);
//	               enopath.go: paths that lose TCP-ENO after the SYNs
//	resume.go      session resumption: offering a cached secret, accepting one
//	require.go     the require policy: resets where negotiation fails
//	acceptance.go  checks on R's segments (RFC 9293 §3.10.7.4, RFC 5961),
//	               a new connection on an old tuple (RFC 6191)
//	kex.go         the key exchange: Init messages, the session on the pool,
//	               resumption
//	rekey.go       rekeying by bytes or time, answers to the peer's rekey
//	keylog.go      session keys to Deps.KeyLog
//	inbound.go     the data path from R: reassembly, frame decoding, delivery
//	               to L, duplicates, R's FIN and RST
//	outbound.go    the data path from L: sealing, data before the keys,
//	               retransmissions from the store, L's RST, keep-alives
//	custody.go     partial-frame custody, plaintext waiting for L's window
//	output.go      every segment the engine builds: data and ACKs to L,
//	               stored wire bytes and ACKs to R, resets; send
//	wire.go        segment templates, options, a segment's parsed options
//	seq.go         the only 32-bit sequence arithmetic
//	ring.go        the byte rings; spans.go: the ranges held past holes (in
//	               the record, or a block of 64 out of it); prune.go: the far
//	               side's bytes held past holes, the first to go when memory
//	               is short
//	timers.go      Tick and each flow's timers (tickFlow); hostprobe.go:
//	               keep-alive probes to an inside host silent for half of IdleTimeout
//	ecn.go         ECN signals across an encrypted flow (RFC 3168)
//	pmtu.go        path MTU: packet-too-big from either side; mss.go: the
//	               MSS cap to each port's MTU (Deps.MTU, SetMTU)
//	frag.go        IP fragments of negotiated connections
//	flood.go       the memory budget, the embryonic list, SYN shedding;
//	               trusted.go: the peers a flood does not shed, shared
//	negotiated.go  NegotiatedSet: tuples that negotiated, across restarts;
//	               deadlines.go: its released entries by deadline
package engine
