package tcpcrypt

import (
	"encoding/binary"
	"fmt"

	"github.com/tcpinc/tcpinc/cryptopool"
)

// Init message constants (RFC 8548 §4.1, §4.3).
const (
	Init1Magic = 0x15101a0e
	Init2Magic = 0x097105e0

	// DefaultMaxInitLen caps message_len when a reader is given no cap.
	// RFC 8548 sets no limit; a peer could otherwise make us buffer up to
	// 4 GiB of "ignored" bytes (U-1).
	DefaultMaxInitLen = 64 << 10

	init1Head = 9  // magic, message_len, nciphers
	init2Head = 10 // magic, message_len, sym_cipher

	// initReaderStartCap is an InitReader's first buffer: an Init1 with
	// a few ciphers and an X448 key fits; longer messages grow it.
	initReaderStartCap = 256
)

// AppendInit1 appends an Init1 message to dst: INIT1_MAGIC, message_len,
// nciphers, the two-byte AEAD ids in the given order, N_A and Pub_A, with an
// empty "ignored" field, so message_len ends at the end of Pub_A (TC-63).
func AppendInit1(dst []byte, ciphers []cryptopool.Suite, nA, pub []byte) ([]byte, error) {
	if len(ciphers) == 0 || len(ciphers) > 255 {
		return dst, fmt.Errorf("%w: Init1 needs 1..255 AEAD ids, got %d", ErrInvalidConfig, len(ciphers))
	}
	if len(nA) != NonceLen {
		return dst, fmt.Errorf("%w: N_A is %d bytes, want %d", ErrInvalidConfig, len(nA), NonceLen)
	}
	m := init1Head + 2*len(ciphers) + NonceLen + len(pub)
	dst = binary.BigEndian.AppendUint32(dst, Init1Magic)
	dst = binary.BigEndian.AppendUint32(dst, uint32(m))
	dst = append(dst, byte(len(ciphers)))
	for _, c := range ciphers {
		dst = binary.BigEndian.AppendUint16(dst, uint16(c))
	}
	dst = append(dst, nA...)
	return append(dst, pub...), nil
}

// AppendInit2 appends an Init2 message to dst: INIT2_MAGIC, message_len,
// sym_cipher, N_B and Pub_B, with an empty "ignored" field (TC-65).
func AppendInit2(dst []byte, cipher cryptopool.Suite, nB, pub []byte) ([]byte, error) {
	if len(nB) != NonceLen {
		return dst, fmt.Errorf("%w: N_B is %d bytes, want %d", ErrInvalidConfig, len(nB), NonceLen)
	}
	m := init2Head + NonceLen + len(pub)
	dst = binary.BigEndian.AppendUint32(dst, Init2Magic)
	dst = binary.BigEndian.AppendUint32(dst, uint32(m))
	dst = binary.BigEndian.AppendUint16(dst, uint16(cipher))
	dst = append(dst, nB...)
	return append(dst, pub...), nil
}

// Init1 is a received Init1. Every slice aliases Raw.
type Init1 struct {
	// Raw is the whole message exactly as transmitted, message_len bytes
	// with any ignored tail: the bytes that go into the PRK (TC-D3).
	Raw []byte
	NA  []byte // N_A, NonceLen bytes
	Pub []byte // Pub_A in wire form

	ciphers []byte // nciphers two-byte ids
}

// NumCiphers is nciphers.
func (m *Init1) NumCiphers() int { return len(m.ciphers) / 2 }

// Cipher returns the i-th offered AEAD id, which may be one this
// implementation does not know (those are skipped when choosing, U-1).
func (m *Init1) Cipher(i int) cryptopool.Suite {
	return cryptopool.Suite(binary.BigEndian.Uint16(m.ciphers[2*i:]))
}

// Ciphers returns the offered AEAD ids in A's order (allocates).
func (m *Init1) Ciphers() []cryptopool.Suite {
	out := make([]cryptopool.Suite, m.NumCiphers())
	for i := range out {
		out[i] = m.Cipher(i)
	}
	return out
}

// Offers reports whether A listed s.
func (m *Init1) Offers(s cryptopool.Suite) bool {
	for i := range m.NumCiphers() {
		if m.Cipher(i) == s {
			return true
		}
	}
	return false
}

// Ignored is the tail after Pub_A that a peer may send and we skip (TC-64).
func (m *Init1) Ignored() []byte { return m.Raw[init1Head+len(m.ciphers)+NonceLen+len(m.Pub):] }

// Append re-encodes m as this package would send it: same fields, no
// ignored tail.
func (m *Init1) Append(dst []byte) ([]byte, error) {
	return AppendInit1(dst, m.Ciphers(), m.NA, m.Pub)
}

// Init2 is a received Init2. Every slice aliases Raw.
type Init2 struct {
	Raw    []byte // the whole message as transmitted (see Init1.Raw)
	Cipher cryptopool.Suite
	NB     []byte // N_B, NonceLen bytes
	Pub    []byte // Pub_B in wire form
}

// Ignored is the tail after Pub_B that a peer may send and we skip (TC-66).
func (m *Init2) Ignored() []byte { return m.Raw[init2Head+NonceLen+len(m.Pub):] }

// Append re-encodes m with no ignored tail.
func (m *Init2) Append(dst []byte) ([]byte, error) {
	return AppendInit2(dst, m.Cipher, m.NB, m.Pub)
}

// LooksLikeInit1 reports whether b, the first bytes of a TCP stream, start
// as an Init1 does (RFC 8548 §4.1): INIT1_MAGIC, a message_len that holds
// one AEAD and the shortest public key of any TEP (X25519's) and is no
// more than DefaultMaxInitLen, and, when b has it, an nciphers other than
// 0. It needs the magic and message_len: shorter b never looks like one.
// Plain data starts so by chance once in more than 2^32.
func LooksLikeInit1(b []byte) bool {
	if len(b) < 8 || binary.BigEndian.Uint32(b) != Init1Magic {
		return false
	}
	m := binary.BigEndian.Uint32(b[4:8])
	if m < uint32(init1Head+2+NonceLen+PublicKeyLen(TEPX25519)) || m > DefaultMaxInitLen {
		return false
	}
	return len(b) < init1Head || b[8] != 0
}

// InitReader collects one Init message from a byte stream that may arrive
// split at any byte (TC-7). It finds the end with message_len, never with
// the fields it understands (RFC 8548 §4.1; TC-64, TC-66), keeps the bytes
// exactly as received, and rejects a message_len above its cap. It is not
// safe for concurrent use.
type InitReader struct {
	magic  uint32
	head   int // header bytes needed before message_len can be judged
	pubLen int
	maxLen int

	hdr    [init1Head]byte
	nhdr   int
	msgLen int
	buf    []byte // nil until the header is accepted
	err    error  // sticky
}

// NewInit1Reader reads an Init1 for tep. maxLen caps message_len; zero or
// negative means DefaultMaxInitLen.
func NewInit1Reader(tep TEP, maxLen int) (*InitReader, error) {
	return newInitReader(Init1Magic, init1Head, tep, maxLen)
}

// NewInit2Reader reads an Init2 for tep; see NewInit1Reader.
func NewInit2Reader(tep TEP, maxLen int) (*InitReader, error) {
	return newInitReader(Init2Magic, init2Head-2, tep, maxLen)
}

func newInitReader(magic uint32, head int, tep TEP, maxLen int) (*InitReader, error) {
	r := &InitReader{}
	if err := r.init(magic, head, tep, maxLen); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *InitReader) init(magic uint32, head int, tep TEP, maxLen int) error {
	pubLen := PublicKeyLen(tep)
	if pubLen == 0 {
		return fmt.Errorf("%w: %v", ErrUnsupportedTEP, tep)
	}
	if maxLen <= 0 {
		maxLen = DefaultMaxInitLen
	}
	*r = InitReader{magic: magic, head: head, pubLen: pubLen, maxLen: maxLen}
	return nil
}

// minLen is the smallest message_len that holds the fields for k ciphers
// (k is ignored for Init2).
func (r *InitReader) minLen(k int) int {
	if r.magic == Init1Magic {
		return init1Head + 2*k + NonceLen + r.pubLen
	}
	return init2Head + NonceLen + r.pubLen
}

// check judges the header prefix h, in a fixed order, so that input split
// anywhere fails with the same error as input given whole.
func (r *InitReader) check(h []byte) error {
	var magic [4]byte
	binary.BigEndian.PutUint32(magic[:], r.magic)
	for i := 0; i < len(h) && i < 4; i++ {
		if h[i] != magic[i] {
			return ErrBadMagic
		}
	}
	if len(h) < 8 {
		return nil
	}
	m := binary.BigEndian.Uint32(h[4:8])
	if m > uint32(r.maxLen) {
		return fmt.Errorf("%w: message_len %d > %d", ErrMessageTooLong, m, r.maxLen)
	}
	r.msgLen = int(m)
	if r.msgLen < r.minLen(1) {
		return fmt.Errorf("%w: message_len %d < %d", ErrShortMessage, m, r.minLen(1))
	}
	if r.magic != Init1Magic || len(h) < init1Head {
		return nil
	}
	k := int(h[8])
	if k == 0 {
		return ErrNoCiphers
	}
	if r.msgLen < r.minLen(k) {
		return fmt.Errorf("%w: message_len %d < %d for %d ciphers", ErrShortMessage, m, r.minLen(k), k)
	}
	return nil
}

// Feed consumes bytes of the stream from p. It returns how many bytes it
// took (the rest of p, if any, follows the message: the peer's first
// frame), whether the message is complete, and an error matching ErrAbort
// if the message is malformed; errors are sticky. Once done, Feed takes
// nothing more.
func (r *InitReader) Feed(p []byte) (n int, done bool, err error) {
	if r.err != nil {
		return 0, false, r.err
	}
	for r.buf == nil {
		if n == len(p) {
			return n, false, nil
		}
		c := copy(r.hdr[r.nhdr:r.head], p[n:])
		r.nhdr += c
		n += c
		if err := r.check(r.hdr[:r.nhdr]); err != nil {
			r.err = err
			return n, false, err
		}
		if r.nhdr == r.head {
			// Room for a typical message only: the buffer grows with the
			// bytes that arrive, so a header claiming the cap costs the
			// peer the bytes, not us 64 KiB per flow (U-1).
			r.buf = make([]byte, r.head, min(r.msgLen, initReaderStartCap))
			copy(r.buf, r.hdr[:r.head])
		}
	}
	c := min(len(p)-n, r.msgLen-len(r.buf))
	r.buf = append(r.buf, p[n:n+c]...)
	n += c
	return n, len(r.buf) == r.msgLen, nil
}

// Done reports whether a whole message has been read.
func (r *InitReader) Done() bool { return r.buf != nil && len(r.buf) == r.msgLen }

// Len is message_len once the header has been read, else 0.
func (r *InitReader) Len() int {
	if r.buf == nil {
		return 0
	}
	return r.msgLen
}

// Init1 returns the message read by an Init1 reader.
func (r *InitReader) Init1() (Init1, error) {
	if r.magic != Init1Magic || !r.Done() {
		return Init1{}, ErrNotReady
	}
	return splitInit1(r.buf[:r.msgLen:r.msgLen], r.pubLen), nil
}

// Init2 returns the message read by an Init2 reader.
func (r *InitReader) Init2() (Init2, error) {
	if r.magic != Init2Magic || !r.Done() {
		return Init2{}, ErrNotReady
	}
	return splitInit2(r.buf[:r.msgLen:r.msgLen], r.pubLen), nil
}

// splitInit1 slices a checked, complete Init1.
func splitInit1(b []byte, pubLen int) Init1 {
	c := init1Head + 2*int(b[8])
	return Init1{
		Raw:     b,
		ciphers: b[init1Head:c],
		NA:      b[c : c+NonceLen],
		Pub:     b[c+NonceLen : c+NonceLen+pubLen],
	}
}

func splitInit2(b []byte, pubLen int) Init2 {
	return Init2{
		Raw:    b,
		Cipher: cryptopool.Suite(binary.BigEndian.Uint16(b[8:10])),
		NB:     b[init2Head : init2Head+NonceLen],
		Pub:    b[init2Head+NonceLen : init2Head+NonceLen+pubLen],
	}
}
