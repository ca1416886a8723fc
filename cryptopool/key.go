package cryptopool

import (
	"crypto/cipher"
	"errors"
	"unsafe"
)

// Errors of Seal and Open. They are sentinels, so returning one never
// allocates; compare with ==.
var (
	// ErrAuth: the frame failed authentication (forged, corrupted, wrong key
	// or nonce). RFC 8548 §3.6 (TC-47/TC-48) decides what the caller does.
	ErrAuth = errors.New("cryptopool: message authentication failed")
	// ErrShortBuffer: Buf is shorter than TagSize.
	ErrShortBuffer = errors.New("cryptopool: buffer shorter than the AEAD tag")
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
	aead cipher.AEAD
}

// NewKey returns a Key for suite s; key is the K part of a tcpcrypt traffic
// key (s.KeyLen() bytes).
func NewKey(s Suite, key []byte) (*Key, error) {
	a, err := NewAEAD(s, key)
	if err != nil {
		return nil, err
	}
	return &Key{aead: a}, nil
}

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
