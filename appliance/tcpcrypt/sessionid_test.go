package tcpcrypt

import (
	"bytes"
	"errors"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/eno"
	"github.com/tcpinc/tcpinc/cryptopool"
)

// TestFreshSessionIDTakesBsVBit: a simultaneous open where host B (b = 1)
// offered resumption (0xa3 + identifier half + nonce) and host A offered the
// same TEP for a fresh exchange (0x23). TCP-ENO negotiates 0x23 regardless of
// v bits (RFC 8548 §3.2), A sent no identifier, so the hosts run Init1/Init2.
// The session ID still begins with "the byte transmitted by host B that
// contains the negotiated TEP identifier along with the v bit" (RFC 8548
// §3.4; RFC 8547 §5.1: "this initial byte has bit v set to the same value
// that accompanied the negotiated TEP identifier in B's SYN segment"): 0xa3,
// not 0x23 (ENO-D7, TC-D5).
func TestFreshSessionIDTakesBsVBit(t *testing.T) {
	synA := []byte{0x45, 0x03, 0x23}
	resume := AppendResumeSuboption(nil, TEPX25519, [ResumeHalf]byte{1, 2, 3, 4, 5, 6, 7, 8, 9}, seq(0xb0, 8))
	synB := append([]byte{0x45, byte(3 + len(resume)), 0x01}, resume...)
	setA := eno.Settings{Offers: []eno.Offer{{TEP: eno.TEPTcpcryptCurve25519}}}
	setB := eno.Settings{PassiveRole: true, Offers: []eno.Offer{{TEP: eno.TEPTcpcryptCurve25519, Data: resume[1:]}}}
	outA, outB := setA.Negotiate(synA, synB), setB.Negotiate(synB, synA)
	if !outA.OK() || !outB.OK() || outA.TEPByte != 0xa3 || outB.TEPByte != 0xa3 {
		t.Fatalf("ENO: A %v 0x%02x, B %v 0x%02x; want success with TEP byte 0xa3", outA.Reason, outA.TEPByte, outB.Reason, outB.TEPByte)
	}
	a, err := NewInitiator(InitiatorConfig{
		TEP: TEPX25519, TEPByte: outA.TEPByte, Ciphers: []cryptopool.Suite{cryptopool.AES128GCM},
		Key: hsRandKey(t, TEPX25519), Transcript: outA.Transcript(),
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewResponder(ResponderConfig{
		TEP: TEPX25519, TEPByte: outB.TEPByte, Prefs: []cryptopool.Suite{cryptopool.AES128GCM},
		Key: hsRandKey(t, TEPX25519), Transcript: outB.Transcript(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, done, err := b.Feed(a.Init1()); !done || err != nil {
		t.Fatalf("B.Feed(Init1): %v %v", done, err)
	}
	if _, done, err := a.Feed(b.Init2()); !done || err != nil {
		t.Fatalf("A.Feed(Init2): %v %v", done, err)
	}
	sa, err := a.Session()
	if err != nil {
		t.Fatal(err)
	}
	sb, err := b.Session()
	if err != nil {
		t.Fatal(err)
	}
	if sa.ID != sb.ID || sa.ID[0] != 0xa3 || sa.Resumed {
		t.Errorf("session IDs A %x, B %x (resumed %v); want equal, starting with a3, fresh", sa.ID, sb.ID, sa.Resumed)
	}
}

// TestSessionTEPByteDefaultAndMismatch: without TEPByte the worked example's
// ID starts with 0x23; a TEP byte naming another TEP is a configuration error.
func TestSessionTEPByteDefaultAndMismatch(t *testing.T) {
	_, _, sa, _ := hsWorkedPeers(t)
	if sa.ID[0] != 0x23 {
		t.Errorf("default session ID byte 0x%02x, want 0x23", sa.ID[0])
	}
	for _, bad := range []byte{0x24, 0xa4, 0x03} {
		_, errA := NewInitiator(InitiatorConfig{TEP: TEPX25519, TEPByte: bad, Ciphers: []cryptopool.Suite{cryptopool.AES128GCM}, Key: hsRandKey(t, TEPX25519)})
		_, errB := NewResponder(ResponderConfig{TEP: TEPX25519, TEPByte: bad, Prefs: []cryptopool.Suite{cryptopool.AES128GCM}, Key: hsRandKey(t, TEPX25519)})
		if !errors.Is(errA, ErrInvalidConfig) || !errors.Is(errB, ErrInvalidConfig) {
			t.Errorf("TEPByte 0x%02x: errors %v, %v; want ErrInvalidConfig", bad, errA, errB)
		}
	}
	// The hash part does not depend on byte 0.
	id := SessionID(0xa3, bytes.Repeat([]byte{7}, SecretLen), nil)
	id0 := SessionID(0x23, bytes.Repeat([]byte{7}, SecretLen), nil)
	if !bytes.Equal(id[1:], id0[1:]) {
		t.Error("session ID hash depends on the TEP byte")
	}
}
