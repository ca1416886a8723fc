// Package engine is the appliance's per-flow state machine: it negotiates
// TCP-ENO (RFC 8547) on behalf of inside hosts that do not speak it, runs the
// tcpcrypt (RFC 8548) key exchange, and translates every segment of an
// encrypted connection between the hosts' plain byte streams and the framed,
// encrypted wire streams (DESIGN.md §2).
//
// # Negotiation
//
// An outbound SYN without TCP-ENO (no data, no Fast Open cookie, policy not
// bypass) gets our SYN-form option, the same bytes on every retransmission;
// the appliance is host A. An inbound SYN with TCP-ENO goes to the inside host
// unchanged except for the MSS clamp; if the host answers with TCP-ENO itself
// the engine stays out (end to end wins), else it answers as host B (explicit
// b = 1, one TEP). `45 02` goes on A's segments until a non-SYN segment from
// the far side arrives; a third segment without TCP-ENO, a SYN-ACK without a
// valid option, a role clash and the other rules of tcp-eno.md §7 leave the
// flow in plain TCP with a reason (or reset it, under the require policy).
//
// # Two sequence spaces
//
// Per direction, stream offsets are 64-bit and relative to ISN+1 (unwrap and
// wrap in seq.go are the only 32-bit arithmetic). The encrypting direction
// seals each new host segment into frames no larger than the far side's MSS,
// keeps the wire bytes in a retransmit store until the wire ACK passes them,
// and serves host retransmissions whole from it (never sealing twice at one
// offset, the original key generation kept: TC-45, TC-59). Wire ACKs and SACK
// blocks become host ones rounded to whole frames. The bytes the appliance
// puts in the stream itself (its Init message, empty rekey frames) are its
// own to resend: on a timer, and at once when the far side's third
// duplicate ACK or its SACK blocks show the hole starts there. The decrypting direction
// reassembles the wire stream (out-of-order bytes held and answered with a
// duplicate ACK carrying SACK in wire space), feeds the Init reader and then
// tcpcrypt.FrameDecoder, and delivers each frame's data at its host offset;
// the inside host's ACKs go back rounded to frame edges, repeats that would
// look like duplicate ACKs are suppressed, and plaintext is kept until the
// host acknowledges it so a loss on the inside link is repaired when the far
// side retransmits. FIN travels as FINp (a TCP FIN without FINp aborts), a
// forged frame aborts (RST both ways), RSTs and keep-alives are translated,
// never framed.
//
// # Safety rules
//
// Nothing of an encrypted connection leaves in plaintext by a side door and
// nothing but authenticated plaintext reaches a host (FuzzScript checks
// both): RSTs are rebuilt without payload, keep-alive bytes are not sent,
// malformed frames and inside TCP fragments are dropped, segments with a bad
// TCP checksum are dropped before sealing or decoding, and mid-stream
// segments of connections the engine has no record of (after a restart) are
// answered with an RST unless Config.PassUnknown.
//
// # Limits
//
// A simultaneous open is left in plain TCP, counted as simultaneous_open
// (both SYNs carry b = 0; the host's SYN-ACK leaves without ENO, ENO-33);
// under the require policy the far SYN is held back instead, so that only
// the far side's SYN-ACK to our SYN can go on, where negotiation or the
// policy decides. URGp is never generated (the
// urgent flag from a host is dropped and counted); a received URGp sets URG
// with the pointer just past urgent bytes counted from the frame's first data
// byte (tcpcrypt.md §7 leaves the reference point ambiguous). Timers have a
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
// An Engine belongs to one worker goroutine: Handle for every frame, Tick
// between batches for timers (Init and rekey-frame retransmission, rekey by
// time, expiry) and for the Diffie-Hellman results the cryptopool.Pool posts
// back. Counters are atomics the admin API reads at any time; Flows gives
// snapshots between batches. The steady-state data path does not allocate
// (TestSteadyStateAllocs).
package engine
