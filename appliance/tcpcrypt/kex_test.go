package tcpcrypt

import (
	"bytes"
	"crypto/ecdh"
	"crypto/elliptic"
	"encoding/hex"
	"errors"
	"math/big"
	mrand "math/rand/v2"
	"sync"
	"testing"

	"github.com/cloudflare/circl/dh/x25519"
	"github.com/cloudflare/circl/dh/x448"
)

// TestX448Vector: RFC 7748 §6.2's X448 Diffie-Hellman example through the
// TEP 0x24 key agreement.
func TestX448Vector(t *testing.T) {
	alice := hsKey(t, TEPX448, unhex(t, "9a8f4925d1519f5775cf46b04b5800d4ee9ee8bae8bc5565d498c28dd9c9baf574a9419744897391006382a6f127ab1d9ac2d8c0a598726b"))
	bob := hsKey(t, TEPX448, unhex(t, "1c306a7ac2a0e2e0990b294470cba339e6453772b075811d8fad0d1d6927c120bb5ee8972b0d3e21374c9c921b09d1b0366f10b65173992d"))
	if got := hex.EncodeToString(alice.Public); got != "9b08f7cc31b7e3e67d22d5aea121074a273bd2b83de09c63faa73d2c22c5d9bbc836647241d953d40c5b12da88120d53177f80e532c41fa0" {
		t.Errorf("alice public %s", got)
	}
	if got := hex.EncodeToString(bob.Public); got != "3eb7a829b0cd20f5bcfc0b599b6feccf6da4627107bdb0d4f345b43027d8b972fc3e34fb4232a13ca706dcb57aec3dae07bdc1c67bf33609" {
		t.Errorf("bob public %s", got)
	}
	const shared = "07fff4181ac6cc95ec1c16a94a0f74d12da232ce40a77552281d282bb60c0b56fd2464c335543936521c24403085d59a449a5037514a879d"
	for _, c := range [][2]*KeyPair{{alice, bob}, {bob, alice}} {
		es, err := x448KA{}.SharedSecret(c[0], c[1].Public)
		if err != nil || hex.EncodeToString(es) != shared {
			t.Errorf("ES = %x, %v", es, err)
		}
	}
}

// TestX25519Vector: RFC 7748 §6.1 through TEP 0x23 (the ES of
// docs/protocol.md §16).
func TestX25519Vector(t *testing.T) {
	alice := hsKey(t, TEPX25519, unhex(t, rfc7748AlicePriv))
	bob := hsKey(t, TEPX25519, unhex(t, rfc7748BobPriv))
	es, err := x25519KA{}.SharedSecret(bob, alice.Public)
	if err != nil || hex.EncodeToString(es) != "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742" {
		t.Fatalf("ES = %x, %v", es, err)
	}
}

// TestLowOrderPoints: X25519 and X448 peers that force the all-zero shared
// secret are refused (TC-73, TC-74).
func TestLowOrderPoints(t *testing.T) {
	x25519Bad := []string{
		"0000000000000000000000000000000000000000000000000000000000000000", // 0
		"0100000000000000000000000000000000000000000000000000000000000000", // 1
		"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800", // order 8
		"5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157", // order 8
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p-1
		"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p = 0
	}
	k := hsRandKey(t, TEPX25519)
	for _, h := range x25519Bad {
		_, err := x25519KA{}.SharedSecret(k, unhex(t, h))
		hsCheckAbort(t, err, ErrZeroSharedSecret)
	}
	k448 := hsRandKey(t, TEPX448)
	one := make([]byte, 56)
	one[0] = 1
	for _, pub := range [][]byte{make([]byte, 56), one} {
		_, err := x448KA{}.SharedSecret(k448, pub)
		hsCheckAbort(t, err, ErrZeroSharedSecret)
	}
	for _, c := range []struct {
		ka  KeyAgreement
		key *KeyPair
		pub []byte
	}{
		{x25519KA{}, k, make([]byte, 31)},
		{x25519KA{}, k, make([]byte, 33)},
		{x448KA{}, k448, make([]byte, 55)},
	} {
		_, err := c.ka.SharedSecret(c.key, c.pub)
		hsCheckAbort(t, err, ErrBadPublicKey)
	}
}

// TestNISTWireForm: P-256 / P-521 public keys go out compressed behind a
// pubkey_len that counts its own two bytes (U-2, TC-70), and ES is the
// x-coordinate of the shared point.
func TestNISTWireForm(t *testing.T) {
	for _, c := range []struct {
		tep     TEP
		curve   ecdh.Curve
		legacy  elliptic.Curve
		wireLen int
	}{
		{TEPP256, ecdh.P256(), elliptic.P256(), 35},
		{TEPP521, ecdh.P521(), elliptic.P521(), 69},
	} {
		ka, _ := KeyAgreementFor(c.tep)
		if ka.PublicKeyLen() != c.wireLen || PublicKeyLen(c.tep) != c.wireLen {
			t.Errorf("%v: wire length %d", c.tep, ka.PublicKeyLen())
		}
		a, b := hsRandKey(t, c.tep), hsRandKey(t, c.tep)
		if len(a.Public) != c.wireLen || int(a.Public[0])<<8|int(a.Public[1]) != c.wireLen {
			t.Fatalf("%v: Pub %x", c.tep, a.Public)
		}
		u := a.ecdh.PublicKey().Bytes()
		n := (len(u) - 1) / 2
		x, y := new(big.Int).SetBytes(u[1:1+n]), new(big.Int).SetBytes(u[1+n:])
		if want := elliptic.MarshalCompressed(c.legacy, x, y); !bytes.Equal(a.Public[2:], want) {
			t.Errorf("%v: point %x, want SEC 1 compressed %x", c.tep, a.Public[2:], want)
		}
		es1, err1 := ka.SharedSecret(a, b.Public)
		es2, err2 := ka.SharedSecret(b, a.Public)
		direct, _ := a.ecdh.ECDH(b.ecdh.PublicKey()) // x-coordinate, SEC 1 §3.3.1
		if err1 != nil || err2 != nil || !bytes.Equal(es1, es2) || !bytes.Equal(es1, direct) || len(es1) != n {
			t.Errorf("%v: ES %x / %x (%v, %v)", c.tep, es1, es2, err1, err2)
		}
	}
}

// TestNISTInvalidPoints: IEEE 1363 A.16.10 validation and the pubkey_len
// check refuse every malformed key (TC-11, TC-71).
func TestNISTInvalidPoints(t *testing.T) {
	for _, tep := range []TEP{TEPP256, TEPP521} {
		ka, _ := KeyAgreementFor(tep)
		k := hsRandKey(t, tep)
		good := hsRandKey(t, tep).Public
		l := len(good)
		mut := func(f func(p []byte)) []byte {
			p := bytes.Clone(good)
			f(p)
			return p
		}
		// An x with no y on the curve: the first small x that fails.
		var offCurve []byte
		for x := int64(0); offCurve == nil; x++ {
			p := mut(func(p []byte) { clear(p[3:]); p[2] = 0x02 })
			new(big.Int).SetInt64(x).FillBytes(p[3:])
			if xx, _ := elliptic.UnmarshalCompressed(ka.(nistKA).legacy, p[2:]); xx == nil {
				offCurve = p
			}
		}
		cases := map[string][]byte{
			"prefix 04":             mut(func(p []byte) { p[2] = 0x04 }),
			"prefix 00":             mut(func(p []byte) { p[2] = 0x00 }),
			"prefix 01":             mut(func(p []byte) { p[2] = 0x01 }),
			"x = all ones (>= p)":   mut(func(p []byte) { p[2] = 0x02; fill(p[3:], 0xff) }),
			"x not on the curve":    offCurve,
			"pubkey_len one less":   mut(func(p []byte) { p[1] = byte(l - 1) }),
			"pubkey_len three less": mut(func(p []byte) { p[1] = byte(l - 3) }),
			"pubkey_len 0":          mut(func(p []byte) { p[0], p[1] = 0, 0 }),
			"pubkey_len 0xffff":     mut(func(p []byte) { p[0], p[1] = 0xff, 0xff }),
			"short":                 good[:l-1],
			"long":                  append(bytes.Clone(good), 0),
			"empty":                 nil,
		}
		for name, pub := range cases {
			_, err := ka.SharedSecret(k, pub)
			if !errors.Is(err, ErrBadPublicKey) || !errors.Is(err, ErrAbort) {
				t.Errorf("%v %s: %v", tep, name, err)
			}
		}
		// An uncompressed point (what an implementation ignoring TC-70 sends).
		u := hsRandKey(t, tep).ecdh.PublicKey().Bytes()
		unc := append([]byte{byte((len(u) + 2) >> 8), byte(len(u) + 2)}, u...)
		if _, err := ka.SharedSecret(k, unc); !errors.Is(err, ErrBadPublicKey) {
			t.Errorf("%v uncompressed: %v", tep, err)
		}
	}
}

// A peer that reads RFC 8548 §5's "prefixed by a two-byte length" as the
// point's length alone sends pubkey_len = 33 (P-256) or 67 (P-521): its key
// is the same key, and gives the same shared secret as with the length
// counting itself (U-2).
func TestNISTPubkeyLenEitherReading(t *testing.T) {
	for _, tep := range []TEP{TEPP256, TEPP521} {
		ka, _ := KeyAgreementFor(tep)
		a, b := hsRandKey(t, tep), hsRandKey(t, tep)
		want, err := ka.SharedSecret(a, b.Public)
		if err != nil {
			t.Fatal(err)
		}
		pointOnly := bytes.Clone(b.Public)
		l := len(pointOnly) - nistPrefixLen
		pointOnly[0], pointOnly[1] = byte(l>>8), byte(l)
		got, err := ka.SharedSecret(a, pointOnly)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%v: pubkey_len %d (the point alone): %v", tep, l, err)
		}
	}
}

func fill(b []byte, v byte) {
	for i := range b {
		b[i] = v
	}
}

// TestGenerateKey: key generation reads its scalar from the given source
// (deterministic for tests), reports a failing source, redraws P-256 / P-521
// scalars out of range, and is safe from many goroutines (no shared state).
func TestGenerateKey(t *testing.T) {
	for _, tep := range AllTEPs {
		ka, _ := KeyAgreementFor(tep)
		if ka.TEP() != tep || !tep.Valid() || tep.String() == "" {
			t.Errorf("%v: identity", tep)
		}
		seed := seq(7, 132)
		k1, err1 := ka.GenerateKey(bytes.NewReader(seed))
		k2, err2 := ka.GenerateKey(bytes.NewReader(seed))
		if err1 != nil || err2 != nil || !bytes.Equal(k1.Public, k2.Public) || k1.TEP() != tep {
			t.Errorf("%v: not deterministic: %v %v", tep, err1, err2)
		}
		if _, err := ka.GenerateKey(bytes.NewReader(nil)); err == nil {
			t.Errorf("%v: empty random source accepted", tep)
		}
		// Wrong-TEP key pairs are a local error.
		other := hsRandKey(t, AllTEPs[(int(tep-TEPP256)+1)%4])
		if _, err := ka.SharedSecret(other, k1.Public); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%v: foreign key pair: %v", tep, err)
		}
	}
	// P-256: an all-ones scalar is >= n and must be redrawn.
	src := append(bytes.Repeat([]byte{0xff}, 32), seq(1, 32)...)
	k, err := nistKAFor(t, TEPP256).GenerateKey(bytes.NewReader(src))
	want, _ := ecdh.P256().NewPrivateKey(seq(1, 32))
	if err != nil || !k.ecdh.Equal(want) {
		t.Errorf("P-256 rejection sampling: %v", err)
	}
	if _, err := KeyAgreementFor(0x20); !errors.Is(err, ErrUnsupportedTEP) {
		t.Errorf("TEP 0x20: %v", err)
	}
	if PublicKeyLen(0x25) != 0 || TEP(0x25).Valid() {
		t.Error("0x25 is not a tcpcrypt TEP")
	}

	var wg sync.WaitGroup
	pubs := make([][]byte, 8)
	for i := range pubs {
		wg.Go(func() {
			k, err := x25519KA{}.GenerateKey(nil)
			if err == nil {
				pubs[i] = k.Public
			}
		})
	}
	wg.Wait()
	for i := range pubs {
		for j := range i {
			if pubs[i] == nil || bytes.Equal(pubs[i], pubs[j]) {
				t.Fatal("concurrent key generation failed or repeated a key")
			}
		}
	}
}

// TestKeyPairWipe: Wipe zeroes an X25519 or X448 scalar and drops a
// P-256 or P-521 key (crypto/ecdh cannot zero it), and the pair is refused
// afterwards (TC-9, TC-79).
func TestKeyPairWipe(t *testing.T) {
	for _, tep := range AllTEPs {
		ka, _ := KeyAgreementFor(tep)
		kp, peer := hsRandKey(t, tep), hsRandKey(t, tep)
		if _, err := ka.SharedSecret(kp, peer.Public); err != nil {
			t.Fatalf("%v: %v", tep, err)
		}
		kp.Wipe()
		if kp.x25519 != (x25519.Key{}) || kp.x448 != (x448.Key{}) || kp.ecdh != nil {
			t.Errorf("%v: Wipe left the private key", tep)
		}
		if _, err := ka.SharedSecret(kp, peer.Public); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%v: a wiped pair computes a shared secret: %v", tep, err)
		}
	}
	(*KeyPair)(nil).Wipe()
}

func nistKAFor(t *testing.T, tep TEP) KeyAgreement {
	ka, err := KeyAgreementFor(tep)
	if err != nil {
		t.Fatal(err)
	}
	return ka
}

// TestX25519AgainstStdlib: the circl X25519 behind TEP 0x23 gives the same
// public keys and shared secrets as crypto/ecdh (RFC 7748 §5) for random
// scalars, for peer keys with the top bit set (masked, §5) and for
// non-canonical peer u-coordinates (reduced mod p, §5).
func TestX25519AgainstStdlib(t *testing.T) {
	rnd := mrand.New(mrand.NewPCG(1, 2))
	buf := func() []byte {
		b := make([]byte, 32)
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		return b
	}
	for i := range 200 {
		scalar := buf()
		kp := hsKey(t, TEPX25519, scalar)
		std, err := ecdh.X25519().NewPrivateKey(scalar)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(kp.Public, std.PublicKey().Bytes()) {
			t.Fatalf("scalar %x: public %x, crypto/ecdh %x", scalar, kp.Public, std.PublicKey().Bytes())
		}
		peer := buf()
		switch i % 4 {
		case 1:
			peer[31] |= 0x80
		case 2: // p + k for a small k: u >= p
			copy(peer, unhex(t, "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"))
			peer[0] += byte(2 + i%16)
		case 3:
			peer = hsRandKey(t, TEPX25519).Public
		}
		pub, err := ecdh.X25519().NewPublicKey(peer)
		if err != nil {
			t.Fatal(err)
		}
		want, werr := std.ECDH(pub)
		got, gerr := x25519KA{}.SharedSecret(kp, peer)
		if (werr != nil) != (gerr != nil) || !bytes.Equal(got, want) {
			t.Fatalf("scalar %x peer %x: ES %x (%v), crypto/ecdh %x (%v)", scalar, peer, got, gerr, want, werr)
		}
	}
}

// BenchmarkX25519 is one key generation plus one ECDH, the public-key work
// of a fresh connection at one appliance, through TEP 0x23 and, for
// comparison, through crypto/ecdh.
func BenchmarkX25519(b *testing.B) {
	peer := hsRandKey(b, TEPX25519).Public
	b.Run("tep", func(b *testing.B) {
		for b.Loop() {
			k, err := x25519KA{}.GenerateKey(nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := (x25519KA{}).SharedSecret(k, peer); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("crypto-ecdh", func(b *testing.B) {
		pub, err := ecdh.X25519().NewPublicKey(peer)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			k, err := ecdh.X25519().GenerateKey(nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := k.ECDH(pub); err != nil {
				b.Fatal(err)
			}
		}
	})
}
