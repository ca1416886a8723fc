package tcpcrypt

import "errors"

// ErrAbort is matched (errors.Is) by every error that the peer's bytes can
// cause during the handshake. Each of them means: abort the connection (RST,
// RFC 793 ABORT) and report an error that differs from end of file (RFC 8548
// §3.3, §8; TC-11, TC-14, TC-78, U-1). None of them is io.EOF.
var ErrAbort = errors.New("tcpcrypt: handshake failed, connection must be aborted")

// abortError is a handshake failure caused by the peer. Each value is a
// distinct sentinel, and all of them also match ErrAbort.
type abortError struct{ msg string }

func (e *abortError) Error() string        { return e.msg }
func (e *abortError) Is(target error) bool { return target == ErrAbort }

// Failures caused by what the peer sent (docs/protocol.md §9). RFC 8548
// names the last four; the rest are U-1 cases it leaves unspecified, for which
// the project aborts as well.
var (
	// ErrBadMagic: an Init message does not start with INIT1_MAGIC or
	// INIT2_MAGIC (U-1).
	ErrBadMagic error = &abortError{"tcpcrypt: bad Init message magic"}
	// ErrShortMessage: message_len is smaller than the fields the TEP
	// requires (U-1).
	ErrShortMessage error = &abortError{"tcpcrypt: Init message_len too short for its fields"}
	// ErrMessageTooLong: message_len is above the reader's cap (U-1).
	ErrMessageTooLong error = &abortError{"tcpcrypt: Init message_len above the cap"}
	// ErrTruncated: the input ended inside an Init message.
	ErrTruncated error = &abortError{"tcpcrypt: Init message truncated"}
	// ErrNoCiphers: Init1 has nciphers = 0 (U-1).
	ErrNoCiphers error = &abortError{"tcpcrypt: Init1 offers no AEAD (nciphers = 0)"}
	// ErrNoCommonCipher: no AEAD in A's list is one host B accepts (U-1).
	ErrNoCommonCipher error = &abortError{"tcpcrypt: no AEAD in common"}
	// ErrCipherNotOffered: Init2 names an AEAD that was not in A's Init1
	// list (TC-14, MUST abort).
	ErrCipherNotOffered error = &abortError{"tcpcrypt: Init2 sym_cipher was not offered in Init1"}
	// ErrBadPublicKey: the peer's ephemeral public key failed validation
	// (TC-11, TC-71, MUST abort).
	ErrBadPublicKey error = &abortError{"tcpcrypt: invalid peer public key"}
	// ErrZeroSharedSecret: X25519 or X448 gave the all-zero value, i.e. the
	// peer sent a low-order point (TC-73, MUST abort).
	ErrZeroSharedSecret error = &abortError{"tcpcrypt: all-zero Diffie-Hellman shared secret"}
)

// Local errors: a caller's configuration or use of the API, never the peer.
var (
	// ErrUnsupportedTEP: the TEP is not one of 0x21..0x24.
	ErrUnsupportedTEP = errors.New("tcpcrypt: unsupported TEP")
	// ErrInvalidConfig: an AEAD list, key pair, nonce length or cache
	// setting that cannot be used.
	ErrInvalidConfig = errors.New("tcpcrypt: invalid configuration")
	// ErrNotReady: a result was asked for before its inputs were complete
	// (Session before the Init message, a resumption before the peer nonce).
	ErrNotReady = errors.New("tcpcrypt: not ready")
)
