// Package eno implements the wire format and the negotiation rules of
// TCP-ENO, the TCP Encryption Negotiation Option (RFC 8547).
//
// TCP-ENO lets two TCP endpoints agree, inside the SYN and SYN-ACK, on a
// TCP encryption protocol (TEP) such as tcpcrypt (RFC 8548). Each end puts
// one option of kind 69 in its SYN. In SYN segments the option is a list of
// suboptions: an optional global suboption carrying the passive role bit b
// and the application-aware bit a, and one suboption per TEP the host is
// willing to use, some with data (tcpcrypt's resumption proposals). The end
// that sent b = 0 is host A, the one that sent b = 1 is host B, and the
// negotiated TEP is the last TEP in B's option that A also offered and that
// is valid. After the SYNs, the option shrinks to the two bytes `45 02` and
// only its presence counts, until each end has seen a non-SYN segment. If
// anything is missing, malformed or incompatible, both ends fall back to
// plain TCP. The two SYN options, byte for byte, form the transcript that
// the TEP authenticates, so tampering with the negotiation breaks the
// connection instead of silently downgrading it.
//
// This package is bytes in, bytes out. It parses SYN-form options strictly
// ([ParseSYN], returning a [*MalformedError] that means "ignore the option
// and disable encryption"), finds ENO options in a TCP options area
// ([ScanOptions], which also reports legacy option 253/0x454E and TCP Fast
// Open cookies), builds the options an end sends ([Settings.PutSYN] for an
// active or simultaneous open, [Settings.PutSYNACK] for host B of a
// passive open, [PutNonSYN] for everything after), and decides the outcome
// ([Settings.Negotiate]): success with our role, the negotiated TEP byte
// (session ID byte 0), both suboptions for that TEP and the transcript; or
// fallback with a [Reason] for the admin API. Parsing, building and
// negotiating do not allocate, and every parser is fuzzed.
//
// It does not keep per-connection state, send or receive packets, or run
// the handshake's timeline: putting an option in every segment until a
// non-SYN segment arrives (ENO-26), noticing a third segment without ENO
// (ENO-28), repeating the same bytes on retransmission (ENO-31), enabling
// encryption once an ACK with ENO has gone both ways (ENO-34), and the
// rules on SYN data (§4.7) belong to the engine that owns the flow. What
// suboption data means, for example whether a resumption identifier
// matches, belongs to the TEP; it plugs in through [ValidFunc] and
// [ChooseFunc]. A TEP that appears more than once in one option is never
// valid here, because no TEP this project implements defines repetition
// (RFC 8547 §4.5 point 3).
package eno
