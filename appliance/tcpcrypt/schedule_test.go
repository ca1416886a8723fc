package tcpcrypt

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	mrand "math/rand/v2"
	"testing"

	"github.com/tcpinc/tcpinc/cryptopool"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func seq(from, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(from + i)
	}
	return b
}

// RFC 7748 §6.1 keys, used by docs/protocol.md §16's worked example.
const (
	rfc7748AlicePriv = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
	rfc7748BobPriv   = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"
)

// workedExampleSS0 recomputes ss[0] of docs/protocol.md §16 from its inputs.
func workedExampleSS0(t *testing.T) (ss0 []byte) {
	t.Helper()
	a, err := ecdh.X25519().NewPrivateKey(unhex(t, rfc7748AlicePriv))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ecdh.X25519().NewPrivateKey(unhex(t, rfc7748BobPriv))
	if err != nil {
		t.Fatal(err)
	}
	es, err := a.ECDH(b.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hex.EncodeToString(es), "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"; got != want {
		t.Fatalf("ES = %s, want %s", got, want)
	}
	nA, nB := seq(0x00, 32), seq(0x20, 32)
	init1 := append(unhex(t, "15101a0e0000004b010001"), nA...)
	init1 = append(init1, a.PublicKey().Bytes()...)
	init2 := append(unhex(t, "097105e00000004a0001"), nB...)
	init2 = append(init2, b.PublicKey().Bytes()...)
	transcript := unhex(t, "45032345040123")
	return PRK(nA, transcript, init1, init2, es)
}

// TestWorkedExampleSchedule reproduces docs/protocol.md §16's key schedule byte for
// byte (TC-D3, TC-D4, TC-D5).
func TestWorkedExampleSchedule(t *testing.T) {
	ss0 := workedExampleSS0(t)
	check := func(name string, got []byte, want string) {
		t.Helper()
		if hex.EncodeToString(got) != want {
			t.Errorf("%s = %x, want %s", name, got, want)
		}
	}
	check("PRK", ss0, "57b451fb5d9a89f812be6014167252a32a16a9b5759ae39754c372c48c7940fb")
	sid := SessionID(0x23, ss0, nil)
	check("session_id[0]", sid[:], "2360583ca04231aa3be00fb3d3e878f7f5a8e610875816bebcb7cecca7780e386f")
	mk0 := MasterKey(ss0, nil)
	check("mk[0]", mk0, "3f67b8c27ad91954c6d1e3d52f3b9613f6c97f98b3f523ba37580c4f6145aa12")
	kab, kba := TrafficKeys(mk0, cryptopool.AES128GCM)
	check("k_ab[0]", append(kab.Key, kab.NR[:]...), "2f92ea21324d987d1fd4d63ac755d03d7ac13d921cab49db0b4d0830")
	check("k_ba[0]", append(kba.Key, kba.NR[:]...), "6572aa65310eaaaa07f8d65dc132875057d8dd408b3e77d989ca2cd7")
	mk1 := NextMasterKey(mk0)
	check("mk[1]", mk1, "f94c952748af78c3d8ed778ff7c033f6a844b4a4fbbfc01deebc0698abfd7a7a")
	kab1, _ := TrafficKeys(mk1, cryptopool.AES128GCM)
	check("k_ab[1]", append(kab1.Key, kab1.NR[:]...), "1e83b95785c9ef5956a6bbfcc976f8fd9356c57b381bfa93745160cc")

	// Resumption (docs/protocol.md §16, second half).
	ss1 := NextSecret(ss0)
	check("ss[1]", ss1, "1665859b0d79b86d0ee80780a5986c6d7524fd1f5509adbd9d06d684de6dc130")
	r := ResumeID(ss1)
	check("resume[1]", r[:], "6c85ba61caecae74aa6a92af908d78d80bac")
	sn := append(seq(0xa0, 8), seq(0xb0, 8)...)
	sid1 := SessionID(0xa3, ss1, sn)
	check("session_id[1]", sid1[:], "a31f02a1dc80ff5b7c9961e672ff9b7b8fe4d208ae00ada876df6216fa879f0f11")
	rmk := MasterKey(ss1, sn)
	check("resumed mk[0]", rmk, "8dbec8b3d3ad71a7ae0efe6e0ea1b41f03ea4ee0d880d7ae9957a8ad7e6dc4d7")
	rab, rba := TrafficKeys(rmk, cryptopool.AES128GCM)
	check("resumed k_ab[0]", append(rab.Key, rab.NR[:]...), "730b1f7c39f2796da85039d0b132ae1a06752f8f37777e4c7cbe9b58")
	check("resumed k_ba[0]", append(rba.Key, rba.NR[:]...), "0ef8fac7644befc90d8511d2d0f5d16f7abf75a8219a1272404db1e4")
	check("ss[2]", NextSecret(ss1), "213ea3b50172fba7f34b69e24eda7be2388921b63f23c8a32521218e87483161")
}

// TestTranscriptBindsKeys: a changed ENO transcript gives a different PRK
// (ENO-55, ENO-56).
func TestTranscriptBindsKeys(t *testing.T) {
	base := PRK(seq(0, 32), []byte{0x45, 0x03, 0x23, 0x45, 0x04, 0x01, 0x23}, []byte("i1"), []byte("i2"), seq(9, 32))
	tampered := PRK(seq(0, 32), []byte{0x45, 0x03, 0x23, 0x45, 0x04, 0x01, 0x24}, []byte("i1"), []byte("i2"), seq(9, 32))
	if bytes.Equal(base, tampered) {
		t.Fatal("PRK does not depend on the transcript")
	}
}

// TestCPRFShort: the allocation-free HKDF-Expand behind CPRF (expandShort)
// gives crypto/hkdf's bytes for every key, info and output length it takes
// (one to several output blocks), and longer keys or infos still work.
func TestCPRFShort(t *testing.T) {
	rnd := mrand.New(mrand.NewPCG(3, 4))
	buf := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		return b
	}
	for range 500 {
		k := buf(32 + rnd.IntN(48)) // 32..79: keys over a block go to crypto/hkdf
		info := buf(rnd.IntN(maxShortInfo + 8))
		l := 1 + rnd.IntN(100)
		want, err := hkdf.Expand(sha256.New, k, string(info), l)
		if err != nil {
			t.Fatal(err)
		}
		if got := CPRF(k, info, l); !bytes.Equal(got, want) {
			t.Fatalf("key %x info %x l %d: %x, want %x", k, info, l, got, want)
		}
	}
}
