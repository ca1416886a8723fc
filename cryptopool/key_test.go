package cryptopool

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// frameNonce is tcpcrypt's nonce (RFC 8548 §4.2, TC-D7): 4 zero bytes and
// the 8-byte big-endian stream offset of the frame, XOR the nonce randomizer.
func frameNonce(nr []byte, offset uint64) (n [NonceSize]byte) {
	binary.BigEndian.PutUint64(n[4:], offset)
	for i := range n {
		n[i] ^= nr[i]
	}
	return n
}

type kat struct {
	name   string
	suite  Suite
	key    string
	nonce  [NonceSize]byte
	ad     string
	plain  string
	sealed string // ciphertext | tag
}

func knownAnswers(t testing.TB) []kat {
	t.Helper()
	nonce := func(s string) (n [NonceSize]byte) {
		copy(n[:], unhex(t, s))
		return n
	}
	return []kat{{
		// docs/protocol.md §16: A's first frame, k_ab[0], offset 75 (after Init1).
		name:   "tcpcrypt-A-first-frame",
		suite:  AES128GCM,
		key:    "2f92ea21324d987d1fd4d63ac755d03d",
		nonce:  frameNonce(unhex(t, "7ac13d921cab49db0b4d0830"), 75),
		ad:     "000016",
		plain:  "00" + hex.EncodeToString([]byte("hello")),
		sealed: "6794b1565fafcfab8afcab3f0c0960a9627c71abeeaa",
	}, {
		// docs/protocol.md §16: B's empty FINp frame, k_ba[0], offset 74.
		name:   "tcpcrypt-B-FINp-frame",
		suite:  AES128GCM,
		key:    "6572aa65310eaaaa07f8d65dc1328750",
		nonce:  frameNonce(unhex(t, "57d8dd408b3e77d989ca2cd7"), 74),
		ad:     "000011",
		plain:  "01",
		sealed: "96ff5826810cf4ddd5a1960111112a8322",
	}, {
		// The GCM specification (McGrew and Viega), test case 16: AES-256,
		// 96-bit IV, associated data.
		name:  "gcm-spec-case-16",
		suite: AES256GCM,
		key:   "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
		nonce: nonce("cafebabefacedbaddecaf888"),
		ad:    "feedfacedeadbeeffeedfacedeadbeefabaddad2",
		plain: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72" +
			"1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
		sealed: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa" +
			"8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662" +
			"76fc6ece0f4e1768cddf8853bb2d551b",
	}, {
		// RFC 8439 §2.8.2.
		name:  "rfc8439-2.8.2",
		suite: ChaCha20Poly1305,
		key:   "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
		nonce: nonce("070000004041424344454647"),
		ad:    "50515253c0c1c2c3c4c5c6c7",
		plain: hex.EncodeToString([]byte("Ladies and Gentlemen of the class of '99: " +
			"If I could offer you only one tip for the future, sunscreen would be it.")),
		sealed: "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6" +
			"3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36" +
			"92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc" +
			"3ff4def08e4b7a9de576d26586cec64b6116" +
			"1ae10b594f09e26a7e902ecbd0600691",
	}}
}

// TestKnownAnswers checks every suite (TC-42) against published or
// independently computed vectors through Key.Seal and Key.Open.
func TestKnownAnswers(t *testing.T) {
	for _, v := range knownAnswers(t) {
		t.Run(v.name, func(t *testing.T) {
			k, err := NewKey(v.suite, unhex(t, v.key))
			if err != nil {
				t.Fatal(err)
			}
			plain, sealed, ad := unhex(t, v.plain), unhex(t, v.sealed), unhex(t, v.ad)

			buf := append(append([]byte(nil), plain...), make([]byte, TagSize)...)
			n, err := k.Seal(&v.nonce, ad, buf)
			if err != nil || !bytes.Equal(buf[:n], sealed) {
				t.Fatalf("Seal = %x, %v; want %x", buf[:n], err, sealed)
			}
			n, err = k.Open(&v.nonce, ad, buf)
			if err != nil || !bytes.Equal(buf[:n], plain) {
				t.Fatalf("Open = %x, %v; want %x", buf[:n], err, plain)
			}

		})
	}
}

func TestNewKeyRejects(t *testing.T) {
	if _, err := NewKey(Suite(3), make([]byte, 16)); err == nil {
		t.Error("NewKey accepted suite 0x0003")
	}
	for _, s := range AllSuites {
		if _, err := NewKey(s, make([]byte, s.KeyLen()-1)); err == nil {
			t.Errorf("NewKey(%v) accepted a short key", s)
		}
	}
}

// TestOpenForged: a forged frame fails authentication (TC-47/TC-48 are the
// caller's decision) and its unauthenticated plaintext is not left in the
// buffer; a frame too short for the tag is refused.
func TestOpenForged(t *testing.T) {
	k, _ := NewKey(AES128GCM, make([]byte, 16))
	other, _ := NewKey(AES128GCM, bytes.Repeat([]byte{1}, 16))
	plain := make([]byte, 100)
	rand.Read(plain)
	var nonce [NonceSize]byte
	nonce[11] = 7
	ad := []byte{0, 0, 100 + 17}
	sealed := append(append([]byte(nil), plain...), make([]byte, TagSize)...)
	if _, err := k.Seal(&nonce, ad, sealed); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		why   string
		key   *Key
		forge func(nonce *[NonceSize]byte, ad, buf []byte) []byte
		want  error
	}{
		{"flipped ciphertext bit", k, func(_ *[NonceSize]byte, _, b []byte) []byte { b[0] ^= 1; return b }, ErrAuth},
		{"flipped tag bit", k, func(_ *[NonceSize]byte, _, b []byte) []byte { b[len(b)-1] ^= 0x80; return b }, ErrAuth},
		{"changed associated data (rekey bit)", k, func(_ *[NonceSize]byte, ad, b []byte) []byte { ad[0] = 1; return b }, ErrAuth},
		{"wrong nonce (frame at another offset)", k, func(n *[NonceSize]byte, _, b []byte) []byte { n[11] ^= 1; return b }, ErrAuth},
		{"wrong key", other, func(_ *[NonceSize]byte, _, b []byte) []byte { return b }, ErrAuth},
		{"truncated below the tag", k, func(_ *[NonceSize]byte, _, b []byte) []byte { return b[:TagSize-1] }, ErrShortBuffer},
	} {
		n, a, buf := nonce, append([]byte(nil), ad...), append([]byte(nil), sealed...)
		buf = c.forge(&n, a, buf)
		if got, err := c.key.Open(&n, a, buf); err != c.want || got != 0 {
			t.Errorf("%s: n %d err %v, want 0 %v", c.why, got, err, c.want)
		}
		if len(buf) > 100 && bytes.Equal(buf[:100], plain) {
			t.Errorf("%s: plaintext left in the buffer of a forged frame", c.why)
		}
	}
	if n, err := k.Open(&nonce, ad, sealed); err != nil || !bytes.Equal(sealed[:n], plain) {
		t.Fatalf("the authentic frame did not open: %v", err)
	}
}

func TestKeyShortBuffer(t *testing.T) {
	k, _ := NewKey(ChaCha20Poly1305, make([]byte, 32))
	if _, err := k.Seal(&[NonceSize]byte{}, nil, make([]byte, TagSize-1)); err != ErrShortBuffer {
		t.Errorf("Key.Seal short: %v", err)
	}
	if _, err := k.Open(&[NonceSize]byte{}, nil, make([]byte, TagSize-1)); err != ErrShortBuffer {
		t.Errorf("Key.Open short: %v", err)
	}
	buf := make([]byte, TagSize) // an empty plaintext: fine
	if n, err := k.Seal(&[NonceSize]byte{}, nil, buf); err != nil || n != TagSize {
		t.Errorf("empty Seal: n %d err %v", n, err)
	}
	if n, err := k.Open(&[NonceSize]byte{}, nil, buf); err != nil || n != 0 {
		t.Errorf("empty Open: n %d err %v", n, err)
	}
}

// TestKeyZeroAllocs proves the per-frame path allocates nothing, for every
// suite, sealing and opening (including failed opens).
func TestKeyZeroAllocs(t *testing.T) {
	for _, s := range AllSuites {
		for _, size := range []int{1, 1400} {
			t.Run(fmt.Sprintf("%v/%d", s, size), func(t *testing.T) {
				k, err := NewKey(s, make([]byte, s.KeyLen()))
				if err != nil {
					t.Fatal(err)
				}
				var nonce [NonceSize]byte
				ad, buf := []byte{0, 5, 0x8c}, make([]byte, size+TagSize)
				if a := testing.AllocsPerRun(50, func() {
					k.Seal(&nonce, ad, buf)
					k.Open(&nonce, ad, buf)
				}); a != 0 {
					t.Errorf("Key.Seal+Open: %v allocs per run", a)
				}
				// A forged tag: the error path allocates nothing either.
				k.Seal(&nonce, ad, buf)
				buf[len(buf)-1] ^= 0xff
				if a := testing.AllocsPerRun(50, func() {
					if _, err := k.Open(&nonce, ad, buf); err != ErrAuth {
						t.Fatal("a forged frame opened")
					}
				}); a != 0 {
					t.Errorf("failing Key.Open: %v allocs per run", a)
				}
			})
		}
	}
}

// TestFrameInPlace: the way the engine uses it, AD is the 3-byte frame header
// right before the ciphertext in the same packet buffer. Adjacent is fine;
// an AD that overlaps Buf is refused with ErrOverlap, never a panic.
func TestFrameInPlace(t *testing.T) {
	for _, s := range AllSuites {
		k, _ := NewKey(s, make([]byte, s.KeyLen()))
		frame := make([]byte, 3+6+TagSize)
		frame[2] = byte(6 + TagSize)
		copy(frame[3:], "\x00hello")
		var nonce [NonceSize]byte
		for _, ad := range [][]byte{frame[:4], frame[10:12]} {
			if _, err := k.Seal(&nonce, ad, frame[3:]); err != ErrOverlap {
				t.Errorf("%v: Key.Seal with overlapping AD: %v", s, err)
			}
			if _, err := k.Open(&nonce, ad, frame[3:]); err != ErrOverlap {
				t.Errorf("%v: Key.Open with overlapping AD: %v", s, err)
			}
		}
		if _, err := k.Seal(&nonce, frame[:3], frame[3:]); err != nil {
			t.Fatalf("%v: Seal with adjacent AD: %v", s, err)
		}
		if n, err := k.Open(&nonce, frame[:3], frame[3:]); err != nil || string(frame[3:3+n]) != "\x00hello" {
			t.Fatalf("%v: Open with adjacent AD: %q, %v", s, frame[3:3+n], err)
		}
	}
}
