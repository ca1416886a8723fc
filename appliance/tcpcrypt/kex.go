package tcpcrypt

import (
	"crypto/ecdh"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"io"

	"github.com/cloudflare/circl/dh/x25519"
	"github.com/cloudflare/circl/dh/x448"
)

// TEP is a tcpcrypt TCP-ENO encryption protocol identifier (RFC 8548 §7,
// Table 4), with the v bit clear. It names the key-agreement scheme.
type TEP byte

const (
	TEPP256   TEP = 0x21 // TCPCRYPT_ECDHE_P256, OPTIONAL
	TEPP521   TEP = 0x22 // TCPCRYPT_ECDHE_P521, OPTIONAL
	TEPX25519 TEP = 0x23 // TCPCRYPT_ECDHE_Curve25519, REQUIRED (TC-75)
	TEPX448   TEP = 0x24 // TCPCRYPT_ECDHE_Curve448, RECOMMENDED (TC-76)

	// ResumeBit is the ENO v bit: a TEP byte with it set offers or
	// accepts resumption, and a resumed session ID starts with TEP|ResumeBit.
	ResumeBit = 0x80
)

// AllTEPs lists every TEP this package implements, the required one first.
var AllTEPs = []TEP{TEPX25519, TEPX448, TEPP256, TEPP521}

func (t TEP) String() string {
	switch t {
	case TEPP256:
		return "p256"
	case TEPP521:
		return "p521"
	case TEPX25519:
		return "x25519"
	case TEPX448:
		return "x448"
	}
	return fmt.Sprintf("tep(0x%02x)", byte(t))
}

// Valid reports whether t is one of the four tcpcrypt TEPs.
func (t TEP) Valid() bool { return t >= TEPP256 && t <= TEPX448 }

// KeyPair is one ephemeral key pair. Public is its wire form (Pub_A or
// Pub_B). Pairs are meant to be used once and thrown away (TC-9, TC-79); they
// hold no reference to any shared state, so a worker pool can make them ahead
// of time. They are never serialised (TC-10, TC-80).
type KeyPair struct {
	tep    TEP
	Public []byte
	ecdh   *ecdh.PrivateKey // P-256, P-521
	x25519 x25519.Key       // X25519 secret scalar
	x448   x448.Key         // X448 secret scalar
}

// TEP returns the scheme the pair belongs to.
func (k *KeyPair) TEP() TEP { return k.tep }

// Wipe zeroes the private key once the pair has given its shared secret or
// is discarded unused (TC-9, TC-79); the pair cannot be used afterwards
// (its TEP is cleared, so SharedSecret refuses it). An X25519 or X448
// scalar is cleared in place. A P-256 or P-521 key lives inside
// crypto/ecdh, which Go gives no way to zero: only the reference is
// dropped. A nil pair is left alone.
func (k *KeyPair) Wipe() {
	if k == nil {
		return
	}
	clear(k.x25519[:])
	clear(k.x448[:])
	k.ecdh = nil
	k.tep = 0
}

// KeyAgreement is one TEP's ephemeral Diffie-Hellman (RFC 8548 §5).
// Implementations are stateless and safe for concurrent use.
type KeyAgreement interface {
	TEP() TEP
	// PublicKeyLen is the length of Pub_A / Pub_B on the wire, any
	// length prefix included.
	PublicKeyLen() int
	// GenerateKey makes a fresh key pair from rand (crypto/rand if nil).
	GenerateKey(rand io.Reader) (*KeyPair, error)
	// SharedSecret validates the peer's wire public key and returns ES.
	// Errors match ErrBadPublicKey or ErrZeroSharedSecret (and ErrAbort).
	SharedSecret(priv *KeyPair, peerPub []byte) ([]byte, error)
}

// KeyAgreementFor returns the scheme of tep.
func KeyAgreementFor(tep TEP) (KeyAgreement, error) {
	switch tep {
	case TEPX25519:
		return x25519KA{}, nil
	case TEPX448:
		return x448KA{}, nil
	case TEPP256:
		return nistKA{tep: TEPP256, curve: ecdh.P256(), legacy: elliptic.P256(), coordLen: 32}, nil
	case TEPP521:
		return nistKA{tep: TEPP521, curve: ecdh.P521(), legacy: elliptic.P521(), coordLen: 66}, nil
	}
	return nil, fmt.Errorf("%w: %v", ErrUnsupportedTEP, tep)
}

// PublicKeyLen is the wire length of Pub_A / Pub_B for tep, or 0 if tep is
// not a tcpcrypt TEP. Init readers need it to find N_A/N_B and Pub.
func PublicKeyLen(tep TEP) int {
	switch tep {
	case TEPX25519:
		return 32
	case TEPX448:
		return x448.Size
	case TEPP256:
		return nistPrefixLen + 1 + 32
	case TEPP521:
		return nistPrefixLen + 1 + 66
	}
	return 0
}

func orDefault(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return r
}

func checkPair(priv *KeyPair, tep TEP) error {
	if priv == nil || priv.tep != tep {
		return fmt.Errorf("%w: key pair is not a %v key", ErrInvalidConfig, tep)
	}
	return nil
}

// x25519KA is TCPCRYPT_ECDHE_Curve25519: RFC 7748 X25519 (TC-72) through
// circl, as X448. Pub is 32 raw bytes with no length prefix.
//
// Not crypto/ecdh: every fresh connection costs one key generation and one
// ECDH on each appliance, and these bound the fresh connection rate
// (bench/RESULTS.md). crypto/ecdh computes the public key with a general
// Montgomery ladder (about 50 µs on the bench machine) and has no way to run
// ECDH from a bare scalar without computing the public key again; circl
// generates with a ladder over a precomputed table of the base point (about
// 22 µs) and its ECDH ladder is about 33 µs against 50 (BenchmarkX25519).
type x25519KA struct{}

func (x25519KA) TEP() TEP          { return TEPX25519 }
func (x25519KA) PublicKeyLen() int { return x25519.Size }

func (x25519KA) GenerateKey(r io.Reader) (*KeyPair, error) {
	// The scalar is read from r so tests can fix it. KeyGen and Shared
	// clamp it (RFC 7748 §5).
	kp := &KeyPair{tep: TEPX25519}
	if _, err := io.ReadFull(orDefault(r), kp.x25519[:]); err != nil {
		return nil, fmt.Errorf("tcpcrypt: x25519 key: %w", err)
	}
	var pub x25519.Key
	x25519.KeyGen(&pub, &kp.x25519)
	kp.Public = pub[:]
	return kp, nil
}

func (x25519KA) SharedSecret(priv *KeyPair, peer []byte) ([]byte, error) {
	if err := checkPair(priv, TEPX25519); err != nil {
		return nil, err
	}
	if len(peer) != x25519.Size {
		return nil, fmt.Errorf("%w: x25519 key of %d bytes", ErrBadPublicKey, len(peer))
	}
	var pub, es x25519.Key
	copy(pub[:], peer)
	ok := x25519.Shared(&es, &priv.x25519, &pub)
	// Shared reports low-order peer points; the all-zero test is RFC 7748
	// §6.1's check that TC-73 names, kept in case the two ever differ.
	var zero x25519.Key
	if !ok || subtle.ConstantTimeCompare(es[:], zero[:]) == 1 {
		return nil, ErrZeroSharedSecret
	}
	return es[:], nil
}

// x448KA is TCPCRYPT_ECDHE_Curve448: RFC 7748 X448 (circl). Pub is 56 raw
// bytes with no length prefix.
type x448KA struct{}

func (x448KA) TEP() TEP          { return TEPX448 }
func (x448KA) PublicKeyLen() int { return x448.Size }

func (x448KA) GenerateKey(r io.Reader) (*KeyPair, error) {
	kp := &KeyPair{tep: TEPX448}
	if _, err := io.ReadFull(orDefault(r), kp.x448[:]); err != nil {
		return nil, fmt.Errorf("tcpcrypt: x448 key: %w", err)
	}
	var pub x448.Key
	x448.KeyGen(&pub, &kp.x448)
	kp.Public = pub[:]
	return kp, nil
}

func (x448KA) SharedSecret(priv *KeyPair, peer []byte) ([]byte, error) {
	if err := checkPair(priv, TEPX448); err != nil {
		return nil, err
	}
	if len(peer) != x448.Size {
		return nil, fmt.Errorf("%w: x448 key of %d bytes", ErrBadPublicKey, len(peer))
	}
	var pub, es x448.Key
	copy(pub[:], peer)
	ok := x448.Shared(&es, &priv.x448, &pub)
	// Shared reports low-order peer points; the explicit all-zero test is
	// the RFC 7748 §6.2 check that TC-73 names, kept in case the two differ.
	var zero x448.Key
	if !ok || subtle.ConstantTimeCompare(es[:], zero[:]) == 1 {
		return nil, ErrZeroSharedSecret
	}
	return es[:], nil
}

// nistPrefixLen is the size of pubkey_len before a P-256 / P-521 point.
//
// Decision on U-2 (does pubkey_len count its own two bytes?): yes. RFC 8548
// §5's figure numbers the structure's bytes 0 .. L-1 with pubkey_len = L in
// bytes 0-1, so L is the length of the whole structure, prefix included,
// exactly as message_len covers the whole Init message. The text ("prefixed
// by a two-byte length") does not contradict that, and the authors' pre-RFC
// code wrote the length the same way (docs/protocol.md §8). So P-256 sends
// L = 35 (2 + 33-byte compressed point) and P-521 sends L = 69 (2 + 67).
// On receive, L may also be the point's length alone (33 or 67), what an
// implementation reading only the text would send: the field's size is
// fixed by the TEP either way (§4.1), so both readings are unambiguous,
// and refusing one would only break such a peer. Any other L is an invalid
// public key.
const nistPrefixLen = 2

// nistKA is TCPCRYPT_ECDHE_P256 / _P521: ECSVDP-DH (IEEE 1363) with points
// sent compressed (TC-70) behind pubkey_len, validated per IEEE 1363
// A.16.10 (TC-71), and ES = the x-coordinate of the shared point.
type nistKA struct {
	tep      TEP
	curve    ecdh.Curve
	legacy   elliptic.Curve // only for compressed-point decoding
	coordLen int
}

func (n nistKA) TEP() TEP          { return n.tep }
func (n nistKA) PublicKeyLen() int { return nistPrefixLen + 1 + n.coordLen }

func (n nistKA) GenerateKey(r io.Reader) (*KeyPair, error) {
	r = orDefault(r)
	s := make([]byte, n.coordLen)
	defer clear(s)
	// Rejection sampling: a scalar outside [1, n-1] is drawn again. P-521
	// scalars have 521 bits, so the top byte keeps only its lowest bit.
	for range 64 {
		if _, err := io.ReadFull(r, s); err != nil {
			return nil, fmt.Errorf("tcpcrypt: %v key: %w", n.tep, err)
		}
		if n.tep == TEPP521 {
			s[0] &= 0x01
		}
		k, err := n.curve.NewPrivateKey(s)
		if err != nil {
			continue
		}
		return &KeyPair{tep: n.tep, Public: n.encode(k.PublicKey()), ecdh: k}, nil
	}
	return nil, fmt.Errorf("tcpcrypt: %v key: no valid scalar from the random source", n.tep)
}

// encode writes pubkey_len | compressed point (IEEE 1363 E.2.3 with point
// compression, which is SEC 1's 02/03 || X).
func (n nistKA) encode(pub *ecdh.PublicKey) []byte {
	u := pub.Bytes() // 04 || X || Y
	l := n.PublicKeyLen()
	out := make([]byte, l)
	out[0], out[1] = byte(l>>8), byte(l)
	out[2] = 0x02 | u[len(u)-1]&1
	copy(out[3:], u[1:1+n.coordLen])
	return out
}

func (n nistKA) SharedSecret(priv *KeyPair, peer []byte) ([]byte, error) {
	if err := checkPair(priv, n.tep); err != nil {
		return nil, err
	}
	l := n.PublicKeyLen()
	if len(peer) != l {
		return nil, fmt.Errorf("%w: %v pubkey_len or size mismatch", ErrBadPublicKey, n.tep)
	}
	if pl := int(peer[0])<<8 | int(peer[1]); pl != l && pl != l-nistPrefixLen {
		return nil, fmt.Errorf("%w: %v pubkey_len or size mismatch", ErrBadPublicKey, n.tep)
	}
	// IEEE 1363 A.16.10 for a prime-order curve: the point is not the
	// point at infinity (it has no compressed encoding), its x is below p,
	// and it lies on the curve. UnmarshalCompressed checks all three;
	// ecdh.NewPublicKey checks the decoded point again.
	x, y := elliptic.UnmarshalCompressed(n.legacy, peer[nistPrefixLen:])
	if x == nil {
		return nil, fmt.Errorf("%w: %v point not on the curve", ErrBadPublicKey, n.tep)
	}
	u := make([]byte, 1+2*n.coordLen)
	u[0] = 4
	x.FillBytes(u[1 : 1+n.coordLen])
	y.FillBytes(u[1+n.coordLen:])
	pub, err := n.curve.NewPublicKey(u)
	if err != nil {
		return nil, fmt.Errorf("%w: %v: %v", ErrBadPublicKey, n.tep, err)
	}
	es, err := priv.ecdh.ECDH(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v: %v", ErrBadPublicKey, n.tep, err)
	}
	return es, nil
}
