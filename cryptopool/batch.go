package cryptopool

import (
	"crypto/cipher"
	"errors"
	"unsafe"
)

// Errors of single ops. They are sentinels, so recording one per op never
// allocates; compare with ==.
var (
	// ErrAuth: the frame failed authentication (forged, corrupted, wrong key
	// or nonce). RFC 8548 §3.6 (TC-47/TC-48) decides what the caller does.
	ErrAuth = errors.New("cryptopool: message authentication failed")
	// ErrShortBuffer: Buf is shorter than TagSize.
	ErrShortBuffer = errors.New("cryptopool: buffer shorter than the AEAD tag")
	// ErrNoKey: the op has a nil Key.
	ErrNoKey = errors.New("cryptopool: op has no key")
	// ErrOverlap: AD shares memory with Buf. (Adjacent is fine: tcpcrypt's
	// AD is the 3 header bytes right before the ciphertext.) Go's GCM would
	// panic on it.
	ErrOverlap = errors.New("cryptopool: associated data overlaps the buffer")
)

// overlaps reports whether x and y share any byte. It is the one use of
// unsafe in the package: Go cannot order pointers otherwise.
func overlaps(x, y []byte) bool {
	return len(x) > 0 && len(y) > 0 &&
		uintptr(unsafe.Pointer(&x[0])) <= uintptr(unsafe.Pointer(&y[len(y)-1])) &&
		uintptr(unsafe.Pointer(&y[0])) <= uintptr(unsafe.Pointer(&x[len(x)-1]))
}

// Key is one direction's traffic key, ready to seal or open frames. It keeps
// the AEAD with its expanded key schedule (AES round keys and GHASH table, or
// the ChaCha20 key), so a flow builds it once per key generation.
//
// A Key is safe for concurrent use: sealing and opening do not change it.
type Key struct {
	suite Suite
	aead  cipher.AEAD
}

// NewKey returns a Key for suite s; key is the K part of a tcpcrypt traffic
// key (s.KeyLen() bytes).
func NewKey(s Suite, key []byte) (*Key, error) {
	a, err := NewAEAD(s, key)
	if err != nil {
		return nil, err
	}
	return &Key{suite: s, aead: a}, nil
}

// Suite returns the key's AEAD suite.
func (k *Key) Suite() Suite { return k.suite }

// Seal encrypts one frame in place. buf holds the plaintext in
// buf[:len(buf)-TagSize] and room for the tag in its last TagSize bytes; on
// return buf holds ciphertext and tag, and n = len(buf).
func (k *Key) Seal(nonce *[NonceSize]byte, ad, buf []byte) (n int, err error) {
	p := len(buf) - TagSize
	if p < 0 {
		return 0, ErrShortBuffer
	}
	if overlaps(ad, buf) {
		return 0, ErrOverlap
	}
	k.aead.Seal(buf[:0], nonce[:], buf[:p], ad)
	return len(buf), nil
}

// Open authenticates and decrypts one frame in place. buf holds ciphertext
// and tag; on success the plaintext is buf[:n] with n = len(buf)-TagSize.
// On failure it returns ErrAuth and buf[:len(buf)-TagSize] has been
// overwritten (both AEAD implementations zero it), so nothing unauthenticated
// can leak onward.
func (k *Key) Open(nonce *[NonceSize]byte, ad, buf []byte) (n int, err error) {
	p := len(buf) - TagSize
	if p < 0 {
		return 0, ErrShortBuffer
	}
	if overlaps(ad, buf) {
		return 0, ErrOverlap
	}
	if _, err := k.aead.Open(buf[:0], nonce[:], buf, ad); err != nil {
		return 0, ErrAuth
	}
	return p, nil
}

// Op is one frame of a batch, shaped for tcpcrypt (RFC 8548 §4.2): a 12-byte
// nonce (frame ID XOR NR), associated data (the 3 bytes control|clen; any
// length is accepted) and a buffer worked on in place.
//
// For SealBatch, Buf holds the plaintext followed by TagSize bytes of room for
// the tag; for OpenBatch, Buf holds ciphertext and tag. In a UMEM frame, AD
// and Buf are usually adjacent slices of the same packet.
type Op struct {
	Key   *Key
	Nonce [NonceSize]byte
	AD    []byte
	Buf   []byte

	// Results, written by SealBatch/OpenBatch. N is the length of the output
	// at the start of Buf (ciphertext+tag, or plaintext). Err is nil or one
	// of ErrAuth, ErrShortBuffer, ErrNoKey, ErrOverlap.
	N   int
	Err error
}

// SealBatch seals every op in place and returns how many failed (only ops
// with a nil Key, a Buf shorter than TagSize or an AD inside Buf can fail). It does not
// allocate.
//
// Batching is for the caller's structure (one call per RX batch, results in
// the ops), not for speed: each op still makes one AEAD call, and measured
// against one call per frame it saves nothing (bench/RESULTS.md, within 1 %).
func SealBatch(ops []Op) (failed int) {
	var c keyCache
	for i := range ops {
		op := &ops[i]
		a, p := c.ready(op)
		if a == nil {
			failed++
			continue
		}
		a.Seal(op.Buf[:0], op.Nonce[:], op.Buf[:p], op.AD)
		op.N, op.Err = len(op.Buf), nil
	}
	return failed
}

// OpenBatch opens every op in place and returns how many failed. A frame
// that fails authentication gets Err = ErrAuth and does not affect the other
// ops. It does not allocate.
func OpenBatch(ops []Op) (failed int) {
	var c keyCache
	for i := range ops {
		op := &ops[i]
		a, p := c.ready(op)
		if a == nil {
			failed++
			continue
		}
		if _, err := a.Open(op.Buf[:0], op.Nonce[:], op.Buf, op.AD); err != nil {
			op.N, op.Err = 0, ErrAuth
			failed++
			continue
		}
		op.N, op.Err = p, nil
	}
	return failed
}

// keyCache remembers the AEAD of the last op's key: batches are mostly under
// one key, so the lookup happens once per run of ops.
type keyCache struct {
	k *Key
	a cipher.AEAD
}

// ready checks op before sealing or opening it. It returns op's AEAD and the
// length of the data before the tag room, or a nil AEAD after recording why
// op cannot run (no key, a Buf shorter than the tag, AD inside Buf).
func (c *keyCache) ready(op *Op) (cipher.AEAD, int) {
	if op.Key != c.k {
		c.k, c.a = op.Key, nil
		if op.Key != nil {
			c.a = op.Key.aead
		}
	}
	p := len(op.Buf) - TagSize
	var err error
	switch {
	case c.a == nil:
		err = ErrNoKey
	case p < 0:
		err = ErrShortBuffer
	case overlaps(op.AD, op.Buf):
		err = ErrOverlap
	default:
		return c.a, p
	}
	op.N, op.Err = 0, err
	return nil, 0
}
