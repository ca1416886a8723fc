package cryptopool

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzParseOrder: configured AEAD lists either parse into a valid order that
// prints back to the same suites, or fail with ErrBadOrder; never a panic.
func FuzzParseOrder(f *testing.F) {
	for _, s := range []string{
		"aes128gcm,aes256gcm,chacha20poly1305",
		"chacha20poly1305",
		" AES128GCM , chacha20poly1305",
		"aes128gcm,aes128gcm",
		"",
		",",
		"suite(0x0003)",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, list string) {
		order, err := ParseOrder(strings.Split(list, ","))
		if err != nil {
			if !errors.Is(err, ErrBadOrder) {
				t.Fatalf("error %v does not wrap ErrBadOrder", err)
			}
			return
		}
		if ValidateOrder(order) != nil {
			t.Fatalf("ParseOrder returned invalid order %v", order)
		}
		again, err := ParseOrder(strings.Split(orderString(order), ","))
		if err != nil || !slicesEqual(again, order) {
			t.Fatalf("round trip %v -> %q -> %v, %v", order, orderString(order), again, err)
		}
	})
}

func slicesEqual(a, b []Suite) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// FuzzOpen: arbitrary frames never open under a key they were not sealed
// with and never panic, and a sealed frame opens back to its plaintext.
func FuzzOpen(f *testing.F) {
	f.Add([]byte("hello"), []byte{0, 0, 0x16}, []byte("6794b1565fafcfab8afcab3f0c0960a9627c71abeeaa"), uint8(0))
	f.Add([]byte{}, []byte{}, []byte{}, uint8(1))
	f.Add(bytes.Repeat([]byte{0xa5}, 1500), []byte{1, 5, 0xf0}, make([]byte, 15), uint8(2))
	keys := make([]*Key, len(AllSuites))
	for i, s := range AllSuites {
		kb := make([]byte, s.KeyLen())
		for j := range kb {
			kb[j] = byte(i*31 + j)
		}
		keys[i], _ = NewKey(s, kb)
	}
	f.Fuzz(func(t *testing.T, plain, ad, garbage []byte, which uint8) {
		k := keys[int(which)%len(keys)]
		var nonce [NonceSize]byte
		copy(nonce[:], ad)
		buf := append(append([]byte(nil), plain...), make([]byte, TagSize)...)
		if _, err := k.Seal(&nonce, ad, buf); err != nil {
			t.Fatalf("seal failed: %v", err)
		}
		sealed := append([]byte(nil), buf...)
		if n, err := k.Open(&nonce, ad, buf); err != nil || !bytes.Equal(buf[:n], plain) {
			t.Fatalf("sealed frame did not open: %v", err)
		}
		g := append([]byte(nil), garbage...)
		_, err := k.Open(&nonce, ad, g)
		if bytes.Equal(garbage, sealed) {
			if err != nil {
				t.Fatal("identical frame failed to open")
			}
			return
		}
		if err != ErrAuth && err != ErrShortBuffer {
			t.Fatalf("garbage frame: err %v", err)
		}
	})
}
