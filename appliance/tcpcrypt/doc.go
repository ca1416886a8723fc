// Package tcpcrypt implements the tcpcrypt encryption protocol of RFC 8548
// as pure functions of bytes: no sockets, no timers, no goroutines. The
// engine feeds it stream bytes and gets back bytes to send, keys and typed
// errors, so every part can be tested with vectors and fuzzed.
//
// # Handshake
//
// After TCP-ENO (RFC 8547) has negotiated a tcpcrypt TEP (0x21..0x24, see
// [TEP] and [KeyAgreementFor]), host A sends Init1 as the first bytes of its
// stream and host B answers with Init2. [Initiator] and [Responder] run the
// two roles: each emits its message, reads the peer's with an [InitReader]
// (input may be split at any byte; message_len, not the known fields, finds
// the end; the raw bytes are kept because they go into the PRK), and then
// derives a [Session]. Key pairs ([KeyPair]) are made ahead of time by
// whoever owns the public-key workers; the expensive Session calls can run
// there too.
//
// A [Session] carries the negotiated AEAD, the 33-byte session ID, mk[0],
// the generation-0 send and receive keys (chosen by the ORIGINAL role,
// TC-38) and the stream offsets of each side's first frame: the length of
// the Init message that side sent, or 0 after resumption.
//
// # Resumption
//
// A [Cache] keeps, per peer, the next unused session secret ss[i]. An
// active opener takes one with [Cache.Offer] and puts its suboption in the
// SYN; a passive opener looks up a received offer with [Cache.Accept]. Every
// secret is used at most once, successful or not, and the chain moves to
// ss[i+1] at once.
//
// # Errors
//
// Every failure the peer can cause matches [ErrAbort] through errors.Is, and
// each has its own sentinel (ErrBadMagic, ErrCipherNotOffered,
// ErrBadPublicKey, ...). They all mean: abort the connection with an error
// that is not end of file.
//
// Comments and tests cite RFC 8548 by section, the project's protocol notes
// (docs/protocol.md) and its checklist ids (TC-n, U-n, docs/requirements.md).
package tcpcrypt
