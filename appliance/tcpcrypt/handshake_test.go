package tcpcrypt

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/tcpinc/tcpinc/cryptopool"
)

// hsHex decodes hex with spaces allowed.
func hsHex(t testing.TB, s string) []byte {
	t.Helper()
	return unhex(t, strings.ReplaceAll(s, " ", ""))
}

// hsKey makes a key pair of tep from a fixed scalar (the generators read
// their scalar from the reader).
func hsKey(t testing.TB, tep TEP, scalar []byte) *KeyPair {
	t.Helper()
	ka, err := KeyAgreementFor(tep)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ka.GenerateKey(bytes.NewReader(scalar))
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func hsRandKey(t testing.TB, tep TEP) *KeyPair {
	t.Helper()
	ka, err := KeyAgreementFor(tep)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ka.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

const hsTranscript = "45032345040123" // docs/protocol.md §16: A's 45 03 23, B's 45 04 01 23

// Worked example of docs/protocol.md §16, Init messages exactly as sent.
const (
	weInit1 = "15101a0e 0000004b 01 0001" +
		" 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f" +
		" 8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
	weInit2 = "097105e0 0000004a 0001" +
		" 202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f" +
		" de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
)

// hsWorkedPeers runs the fresh half of the worked example through the API.
func hsWorkedPeers(t *testing.T) (a *Initiator, b *Responder, sa, sb *Session) {
	t.Helper()
	a, err := NewInitiator(InitiatorConfig{
		TEP:        TEPX25519,
		Ciphers:    []cryptopool.Suite{cryptopool.AES128GCM},
		NA:         seq(0x00, 32),
		Key:        hsKey(t, TEPX25519, unhex(t, rfc7748AlicePriv)),
		Transcript: unhex(t, hsTranscript),
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err = NewResponder(ResponderConfig{
		TEP:        TEPX25519,
		Prefs:      []cryptopool.Suite{cryptopool.AES128GCM},
		NB:         seq(0x20, 32),
		Key:        hsKey(t, TEPX25519, unhex(t, rfc7748BobPriv)),
		Transcript: unhex(t, hsTranscript),
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, done, err := b.Feed(a.Init1()); n != 75 || !done || err != nil {
		t.Fatalf("B.Feed(Init1) = %d, %v, %v", n, done, err)
	}
	if n, done, err := a.Feed(b.Init2()); n != 74 || !done || err != nil {
		t.Fatalf("A.Feed(Init2) = %d, %v, %v", n, done, err)
	}
	if sa, err = a.Session(); err != nil {
		t.Fatal(err)
	}
	if sb, err = b.Session(); err != nil {
		t.Fatal(err)
	}
	return a, b, sa, sb
}

func hsKeyHex(k TrafficKey) string { return hex.EncodeToString(append(bytes.Clone(k.Key), k.NR[:]...)) }

// TestWorkedExampleHandshake: docs/protocol.md §16 byte for byte through the
// handshake API (TC-63, TC-65, TC-D3..TC-D5).
func TestWorkedExampleHandshake(t *testing.T) {
	a, b, sa, sb := hsWorkedPeers(t)
	if got, want := a.Init1(), hsHex(t, weInit1); !bytes.Equal(got, want) {
		t.Errorf("Init1 = %x\nwant    %x", got, want)
	}
	if got, want := b.Init2(), hsHex(t, weInit2); !bytes.Equal(got, want) {
		t.Errorf("Init2 = %x\nwant    %x", got, want)
	}
	const (
		sid = "2360583ca04231aa3be00fb3d3e878f7f5a8e610875816bebcb7cecca7780e386f"
		mk  = "3f67b8c27ad91954c6d1e3d52f3b9613f6c97f98b3f523ba37580c4f6145aa12"
		kab = "2f92ea21324d987d1fd4d63ac755d03d7ac13d921cab49db0b4d0830"
		kba = "6572aa65310eaaaa07f8d65dc132875057d8dd408b3e77d989ca2cd7"
		ss1 = "1665859b0d79b86d0ee80780a5986c6d7524fd1f5509adbd9d06d684de6dc130"
	)
	for _, c := range []struct {
		name      string
		s         *Session
		send, rcv string
		so, ro    uint64
		role      Role
	}{
		{"A", sa, kab, kba, 75, 74, RoleA},
		{"B", sb, kba, kab, 74, 75, RoleB},
	} {
		s := c.s
		if hex.EncodeToString(s.ID[:]) != sid {
			t.Errorf("%s: session_id = %x, want %s", c.name, s.ID, sid)
		}
		if hex.EncodeToString(s.MasterKey[:]) != mk {
			t.Errorf("%s: mk[0] = %x, want %s", c.name, s.MasterKey, mk)
		}
		if hsKeyHex(s.Send) != c.send || hsKeyHex(s.Recv) != c.rcv {
			t.Errorf("%s: send %s recv %s, want %s %s", c.name, hsKeyHex(s.Send), hsKeyHex(s.Recv), c.send, c.rcv)
		}
		if s.SendOffset != c.so || s.RecvOffset != c.ro {
			t.Errorf("%s: offsets send %d recv %d, want %d %d", c.name, s.SendOffset, s.RecvOffset, c.so, c.ro)
		}
		if s.Role != c.role || s.OrigRole != c.role || s.Resumed || s.TEP != TEPX25519 || s.Suite != cryptopool.AES128GCM {
			t.Errorf("%s: session %+v", c.name, s)
		}
		if hex.EncodeToString(s.next[:]) != ss1 {
			t.Errorf("%s: cached ss[1] = %x, want %s", c.name, s.next, ss1)
		}
		if c.role == RoleA != s.SendsAB() {
			t.Errorf("%s: SendsAB = %v", c.name, s.SendsAB())
		}
	}
}

// hsFixedRand returns the given bytes, then fails.
func hsFixedRand(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// TestWorkedExampleResumption: the resumption half of docs/protocol.md §16: the
// SYN and SYN-ACK ENO options, session_id[1], the resumed keys by original
// role, and ss[2] left in both caches (TC-25, TC-30, TC-38, TC-D6).
func TestWorkedExampleResumption(t *testing.T) {
	_, _, sa, sb := hsWorkedPeers(t)
	cacheA := NewCache[string](CacheConfig{Rand: hsFixedRand(seq(0xa0, 8))})
	cacheB := NewCache[string](CacheConfig{Rand: hsFixedRand(seq(0xb0, 8))})
	cacheA.Store("bob", sa)
	cacheB.Store("alice", sb)

	ra, ok := cacheA.Offer("bob")
	if !ok {
		t.Fatal("A has nothing to offer")
	}
	sub := ra.AppendSuboption(nil)
	syn := append([]byte{0x45, byte(2 + len(sub))}, sub...)
	if got, want := syn, hsHex(t, "45 14 a3 6c85ba61caecae74aa a0a1a2a3a4a5a6a7"); !bytes.Equal(got, want) {
		t.Errorf("SYN ENO = %x, want %x", got, want)
	}
	rb, ok := cacheB.Accept("alice", sub[0], sub[1:])
	if !ok {
		t.Fatal("B did not accept the resumption offer (TC-19)")
	}
	subB := rb.AppendSuboption(nil)
	synack := append([]byte{0x45, byte(3 + len(subB)), 0x01}, subB...)
	if got, want := synack, hsHex(t, "45 15 01 a3 6a92af908d78d80bac b0b1b2b3b4b5b6b7"); !bytes.Equal(got, want) {
		t.Errorf("SYN-ACK ENO = %x, want %x", got, want)
	}
	if !ra.MatchReply(subB[0], subB[1:]) {
		t.Fatal("A rejected B's matching reply")
	}
	a2, err := ra.Session(RoleA)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := rb.Session(RoleB)
	if err != nil {
		t.Fatal(err)
	}
	const (
		sid = "a31f02a1dc80ff5b7c9961e672ff9b7b8fe4d208ae00ada876df6216fa879f0f11"
		mk  = "8dbec8b3d3ad71a7ae0efe6e0ea1b41f03ea4ee0d880d7ae9957a8ad7e6dc4d7"
		kab = "730b1f7c39f2796da85039d0b132ae1a06752f8f37777e4c7cbe9b58"
		kba = "0ef8fac7644befc90d8511d2d0f5d16f7abf75a8219a1272404db1e4"
		ss2 = "213ea3b50172fba7f34b69e24eda7be2388921b63f23c8a32521218e87483161"
	)
	for name, s := range map[string]*Session{"A": a2, "B": b2} {
		if hex.EncodeToString(s.ID[:]) != sid || hex.EncodeToString(s.MasterKey[:]) != mk {
			t.Errorf("%s: id %x mk %x", name, s.ID, s.MasterKey)
		}
		if !s.Resumed || s.SendOffset != 0 || s.RecvOffset != 0 {
			t.Errorf("%s: resumed %v offsets %d %d, want true 0 0", name, s.Resumed, s.SendOffset, s.RecvOffset)
		}
	}
	if hsKeyHex(a2.Send) != kab || hsKeyHex(a2.Recv) != kba || hsKeyHex(b2.Send) != kba || hsKeyHex(b2.Recv) != kab {
		t.Errorf("resumed keys: A send %s, B send %s", hsKeyHex(a2.Send), hsKeyHex(b2.Send))
	}
	for name, c := range map[string]*Cache[string]{"A": cacheA, "B": cacheB} {
		peer := map[string]string{"A": "bob", "B": "alice"}[name]
		ch := c.byPeer[peer]
		if ch == nil || hex.EncodeToString(ch.secret[:]) != ss2 {
			t.Errorf("%s: cache does not hold ss[2]", name)
		}
	}
}

// TestResumeRoleSwap: the host that was B opens actively this time. It
// sends the second half, nonce_a is still the ORIGINAL A's nonce (U-4), and
// each host keeps its original send key (TC-37, TC-38).
func TestResumeRoleSwap(t *testing.T) {
	_, _, sa, sb := hsWorkedPeers(t)
	ss1 := bytes.Clone(sa.next[:])
	cacheA := NewCache[string](CacheConfig{Rand: hsFixedRand(seq(0xa0, 8))})
	cacheB := NewCache[string](CacheConfig{Rand: hsFixedRand(seq(0xb0, 8))})
	cacheA.Store("bob", sa)
	cacheB.Store("alice", sb)

	rb, ok := cacheB.Offer("alice") // original B, now the active opener
	if !ok {
		t.Fatal("no offer")
	}
	sub := rb.AppendSuboption(nil)
	if want := hsHex(t, "a3 6a92af908d78d80bac b0b1b2b3b4b5b6b7"); !bytes.Equal(sub, want) {
		t.Fatalf("suboption %x, want %x", sub, want)
	}
	ra, ok := cacheA.Accept("bob", sub[0], sub[1:]) // original A, now passive
	if !ok {
		t.Fatal("original A refused")
	}
	reply := ra.AppendSuboption(nil)
	if !rb.MatchReply(reply[0], reply[1:]) {
		t.Fatal("reply did not match")
	}
	nowB, err := rb.Session(RoleA) // active opener is TCP-ENO role A now
	if err != nil {
		t.Fatal(err)
	}
	nowA, err := ra.Session(RoleB)
	if err != nil {
		t.Fatal(err)
	}
	sn := append(seq(0xa0, 8), seq(0xb0, 8)...) // nonce of the original A first
	kab, kba := TrafficKeys(MasterKey(ss1, sn), cryptopool.AES128GCM)
	wantID := SessionID(0xa3, ss1, sn)
	if nowA.ID != wantID || nowB.ID != wantID {
		t.Errorf("session ids %x / %x, want %x", nowA.ID, nowB.ID, wantID)
	}
	if hsKeyHex(nowA.Send) != hsKeyHex(kab) || hsKeyHex(nowB.Send) != hsKeyHex(kba) {
		t.Error("send keys do not follow the original roles")
	}
	if nowA.Role != RoleB || nowA.OrigRole != RoleA || nowB.Role != RoleA || nowB.OrigRole != RoleB {
		t.Errorf("roles: %v/%v and %v/%v", nowA.Role, nowA.OrigRole, nowB.Role, nowB.OrigRole)
	}
}

// hsRun runs a fresh handshake for tep with A offering offer and B
// preferring prefs, and checks that both ends agree.
func hsRun(t testing.TB, tep TEP, offer, prefs []cryptopool.Suite) (sa, sb *Session) {
	t.Helper()
	tr := []byte{0x45, 0x03, byte(tep), 0x45, 0x04, 0x01, byte(tep)}
	a, err := NewInitiator(InitiatorConfig{TEP: tep, Ciphers: offer, Key: hsRandKey(t, tep), Transcript: tr})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewResponder(ResponderConfig{TEP: tep, Prefs: prefs, Key: hsRandKey(t, tep), Transcript: tr})
	if err != nil {
		t.Fatal(err)
	}
	// The peer's first frame follows in the same buffer: it is not consumed.
	streamA := append(bytes.Clone(a.Init1()), "frame"...)
	if n, done, err := b.Feed(streamA); err != nil || !done || n != len(a.Init1()) {
		t.Fatalf("B.Feed = %d, %v, %v", n, done, err)
	}
	streamB := append(bytes.Clone(b.Init2()), "frame"...)
	if n, done, err := a.Feed(streamB); err != nil || !done || n != len(b.Init2()) {
		t.Fatalf("A.Feed = %d, %v, %v", n, done, err)
	}
	if sa, err = a.Session(); err != nil {
		t.Fatal(err)
	}
	if sb, err = b.Session(); err != nil {
		t.Fatal(err)
	}
	if sa.ID != sb.ID || sa.MasterKey != sb.MasterKey || sa.next != sb.next || sa.Suite != sb.Suite {
		t.Fatalf("%v: ends disagree", tep)
	}
	if hsKeyHex(sa.Send) != hsKeyHex(sb.Recv) || hsKeyHex(sa.Recv) != hsKeyHex(sb.Send) || hsKeyHex(sa.Send) == hsKeyHex(sa.Recv) {
		t.Fatalf("%v: direction keys wrong", tep)
	}
	if sa.SendOffset != sb.RecvOffset || sa.RecvOffset != sb.SendOffset || sa.ID[0] != byte(tep) {
		t.Fatalf("%v: offsets or id byte wrong", tep)
	}
	return sa, sb
}

// TestRoundTripAllSuites: A<->B for every TEP x AEAD (TC-42, TC-75, TC-76),
// and the Init lengths of docs/protocol.md §8 (73+2K / 74 for X25519, 97+2K /
// 98 for X448; P-256 and P-521 with pubkey_len counting itself, U-2).
func TestRoundTripAllSuites(t *testing.T) {
	wantLen := map[TEP][2]uint64{
		TEPX25519: {75, 74}, TEPX448: {99, 98}, TEPP256: {78, 77}, TEPP521: {112, 111},
	}
	for _, tep := range AllTEPs {
		for _, s := range cryptopool.AllSuites {
			t.Run(fmt.Sprintf("%v/%v", tep, s), func(t *testing.T) {
				sa, _ := hsRun(t, tep, []cryptopool.Suite{s}, []cryptopool.Suite{s})
				if sa.Suite != s {
					t.Errorf("suite %v", sa.Suite)
				}
				if got := [2]uint64{sa.SendOffset, sa.RecvOffset}; got != wantLen[tep] {
					t.Errorf("Init lengths %v, want %v", got, wantLen[tep])
				}
				if len(sa.Send.Key) != s.KeyLen() {
					t.Errorf("key length %d", len(sa.Send.Key))
				}
			})
		}
	}
}

// TestCipherChoice: B picks by its own preference among A's list (TC-12),
// skipping ids it does not know (U-1).
func TestCipherChoice(t *testing.T) {
	all := []cryptopool.Suite{cryptopool.AES128GCM, cryptopool.AES256GCM, cryptopool.ChaCha20Poly1305}
	sa, _ := hsRun(t, TEPX25519, all, []cryptopool.Suite{cryptopool.ChaCha20Poly1305, cryptopool.AES128GCM})
	if sa.Suite != cryptopool.ChaCha20Poly1305 {
		t.Errorf("chose %v, want B's first preference", sa.Suite)
	}
	sa, _ = hsRun(t, TEPX25519, []cryptopool.Suite{cryptopool.AES128GCM}, []cryptopool.Suite{cryptopool.ChaCha20Poly1305, cryptopool.AES128GCM})
	if sa.Suite != cryptopool.AES128GCM {
		t.Errorf("chose %v, want the only common one", sa.Suite)
	}

	// A peer's Init1 listing unknown ids first.
	b := hsResponder(t, []cryptopool.Suite{cryptopool.AES128GCM, cryptopool.AES256GCM})
	init1, _ := AppendInit1(nil, []cryptopool.Suite{0x7777, 0xffff, cryptopool.AES256GCM}, seq(0, 32), hsRandKey(t, TEPX25519).Public)
	if _, done, err := b.Feed(init1); !done || err != nil {
		t.Fatal(err)
	}
	if b.Suite() != cryptopool.AES256GCM {
		t.Errorf("chose %v, want aes256gcm", b.Suite())
	}
}

func hsResponder(t testing.TB, prefs []cryptopool.Suite) *Responder {
	t.Helper()
	b, err := NewResponder(ResponderConfig{TEP: TEPX25519, Prefs: prefs, Key: hsRandKey(t, TEPX25519), Transcript: unhex(t, hsTranscript)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hsInitiator(t testing.TB, tep TEP, offer []cryptopool.Suite) *Initiator {
	t.Helper()
	a, err := NewInitiator(InitiatorConfig{TEP: tep, Ciphers: offer, Key: hsRandKey(t, tep), Transcript: unhex(t, hsTranscript)})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// hsCheckAbort asserts err is want, matches ErrAbort and is not EOF.
func hsCheckAbort(t testing.TB, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
	if !errors.Is(err, ErrAbort) {
		t.Fatalf("%v does not match ErrAbort", err)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("%v looks like EOF", err)
	}
}

// TestNoCommonCipher: B supports nothing A offered (U-1).
func TestNoCommonCipher(t *testing.T) {
	b := hsResponder(t, []cryptopool.Suite{cryptopool.AES128GCM})
	init1, _ := AppendInit1(nil, []cryptopool.Suite{cryptopool.ChaCha20Poly1305, 0x4242}, seq(0, 32), hsRandKey(t, TEPX25519).Public)
	_, done, err := b.Feed(init1)
	if done {
		t.Fatal("done without a common AEAD")
	}
	hsCheckAbort(t, err, ErrNoCommonCipher)
	if _, err := b.Session(); !errors.Is(err, ErrNoCommonCipher) {
		t.Fatalf("Session after failure: %v", err)
	}
	if b.Init2() != nil {
		t.Fatal("Init2 built without a common AEAD")
	}
}

// TestInit2CipherNotOffered: A aborts when B names an AEAD not in Init1,
// even one A supports (TC-14).
func TestInit2CipherNotOffered(t *testing.T) {
	for _, c := range []cryptopool.Suite{cryptopool.AES256GCM, 0x0003, 0} {
		a := hsInitiator(t, TEPX25519, []cryptopool.Suite{cryptopool.AES128GCM, cryptopool.ChaCha20Poly1305})
		init2, _ := AppendInit2(nil, c, seq(0x20, 32), hsRandKey(t, TEPX25519).Public)
		_, done, err := a.Feed(init2)
		if done {
			t.Fatalf("%v accepted", c)
		}
		hsCheckAbort(t, err, ErrCipherNotOffered)
		if _, err := a.Session(); !errors.Is(err, ErrCipherNotOffered) {
			t.Fatalf("Session: %v", err)
		}
	}
}

// TestIgnoredTailInPRK: Init1/Init2 with bytes after Pub are accepted, the
// tail is skipped for parsing but is part of the PRK, and the peer's first
// frame starts after it (TC-64, TC-66, TC-D3).
func TestIgnoredTailInPRK(t *testing.T) {
	tail := []byte("ignored tail")
	withTail := func(msg []byte) []byte {
		out := append(bytes.Clone(msg), tail...)
		binary.BigEndian.PutUint32(out[4:8], uint32(len(out)))
		return out
	}
	tr := unhex(t, hsTranscript)
	keyA, keyB := hsKey(t, TEPX25519, unhex(t, rfc7748AlicePriv)), hsKey(t, TEPX25519, unhex(t, rfc7748BobPriv))
	es, err := x25519KA{}.SharedSecret(keyA, keyB.Public)
	if err != nil {
		t.Fatal(err)
	}

	// A receives an Init2 with a tail.
	a, err := NewInitiator(InitiatorConfig{TEP: TEPX25519, Ciphers: []cryptopool.Suite{cryptopool.AES128GCM}, NA: seq(0, 32), Key: keyA, Transcript: tr})
	if err != nil {
		t.Fatal(err)
	}
	init2 := withTail(hsHex(t, weInit2))
	if n, done, err := a.Feed(append(bytes.Clone(init2), 0x00)); n != len(init2) || !done || err != nil {
		t.Fatalf("Feed = %d %v %v", n, done, err)
	}
	sa, err := a.Session()
	if err != nil {
		t.Fatal(err)
	}
	want := SessionID(0x23, PRK(seq(0, 32), tr, hsHex(t, weInit1), init2, es), nil)
	if sa.ID != want || sa.RecvOffset != uint64(len(init2)) || sa.SendOffset != 75 {
		t.Errorf("A with Init2 tail: id %x recv offset %d, want %x %d", sa.ID, sa.RecvOffset, want, len(init2))
	}
	if hex.EncodeToString(sa.ID[:]) == "2360583ca04231aa3be00fb3d3e878f7f5a8e610875816bebcb7cecca7780e386f" {
		t.Error("the tail did not change the PRK")
	}
	m, _ := a.reader.Init2()
	if !bytes.Equal(m.Ignored(), tail) {
		t.Errorf("Ignored() = %q", m.Ignored())
	}

	// B receives an Init1 with a tail.
	b, err := NewResponder(ResponderConfig{TEP: TEPX25519, Prefs: []cryptopool.Suite{cryptopool.AES128GCM}, NB: seq(0x20, 32), Key: keyB, Transcript: tr})
	if err != nil {
		t.Fatal(err)
	}
	init1 := withTail(hsHex(t, weInit1))
	if n, done, err := b.Feed(init1); n != len(init1) || !done || err != nil {
		t.Fatalf("Feed = %d %v %v", n, done, err)
	}
	sb, err := b.Session()
	if err != nil {
		t.Fatal(err)
	}
	want = SessionID(0x23, PRK(seq(0, 32), tr, init1, hsHex(t, weInit2), es), nil)
	if sb.ID != want || sb.RecvOffset != uint64(len(init1)) || sb.SendOffset != 74 {
		t.Errorf("B with Init1 tail: id %x offsets %d %d", sb.ID, sb.SendOffset, sb.RecvOffset)
	}
}

// TestHandshakeBadPeerKeys: a bad Pub in Init1 or Init2 aborts with the
// public-key errors (TC-11, TC-73).
func TestHandshakeBadPeerKeys(t *testing.T) {
	zero := make([]byte, 32)
	// B side: Init1 carrying the all-zero X25519 point.
	b := hsResponder(t, []cryptopool.Suite{cryptopool.AES128GCM})
	init1, _ := AppendInit1(nil, []cryptopool.Suite{cryptopool.AES128GCM}, seq(0, 32), zero)
	if _, done, err := b.Feed(init1); !done || err != nil {
		t.Fatal(err)
	}
	_, err := b.Session()
	hsCheckAbort(t, err, ErrZeroSharedSecret)

	// A side: Init2 with a P-256 point off the curve.
	a := hsInitiator(t, TEPP256, []cryptopool.Suite{cryptopool.AES128GCM})
	bad := bytes.Clone(hsRandKey(t, TEPP256).Public)
	bad[2] = 0x04 // not a compressed-point prefix
	init2, _ := AppendInit2(nil, cryptopool.AES128GCM, seq(0, 32), bad)
	if _, done, err := a.Feed(init2); !done || err != nil {
		t.Fatal(err)
	}
	_, err = a.Session()
	hsCheckAbort(t, err, ErrBadPublicKey)
}

// TestHandshakeConfigErrors: local misuse is reported as ErrInvalidConfig
// or ErrUnsupportedTEP, never as an abort.
func TestHandshakeConfigErrors(t *testing.T) {
	k := hsRandKey(t, TEPX25519)
	aes := []cryptopool.Suite{cryptopool.AES128GCM}
	cases := []struct {
		name string
		cfg  InitiatorConfig
		want error
	}{
		{"tep", InitiatorConfig{TEP: 0x25, Ciphers: aes, Key: k}, ErrUnsupportedTEP},
		{"key of other tep", InitiatorConfig{TEP: TEPX448, Ciphers: aes, Key: k}, ErrInvalidConfig},
		{"no key", InitiatorConfig{TEP: TEPX25519, Ciphers: aes}, ErrInvalidConfig},
		{"no ciphers", InitiatorConfig{TEP: TEPX25519, Key: k}, ErrInvalidConfig},
		{"unknown cipher", InitiatorConfig{TEP: TEPX25519, Ciphers: []cryptopool.Suite{7}, Key: k}, ErrInvalidConfig},
		{"short N_A", InitiatorConfig{TEP: TEPX25519, Ciphers: aes, Key: k, NA: seq(0, 31)}, ErrInvalidConfig},
	}
	for _, c := range cases {
		if _, err := NewInitiator(c.cfg); !errors.Is(err, c.want) || errors.Is(err, ErrAbort) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := NewResponder(ResponderConfig{TEP: TEPX25519, Key: k}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("responder without prefs: %v", err)
	}
	b := hsResponder(t, aes)
	if _, err := b.Session(); !errors.Is(err, ErrNotReady) {
		t.Errorf("Session before Init1: %v", err)
	}
	a := hsInitiator(t, TEPX25519, aes)
	if _, err := a.Session(); !errors.Is(err, ErrNotReady) {
		t.Errorf("Session before Init2: %v", err)
	}
	if _, err := ResumedSession(TEPX25519, cryptopool.AES128GCM, RoleA, RoleA, seq(0, 32), seq(0, 9), nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("9-byte nonce: %v", err)
	}
}

// TestRandomNonces: N_A and N_B default to fresh random values (TC-81).
func TestRandomNonces(t *testing.T) {
	a1 := hsInitiator(t, TEPX25519, []cryptopool.Suite{cryptopool.AES128GCM})
	a2 := hsInitiator(t, TEPX25519, []cryptopool.Suite{cryptopool.AES128GCM})
	if bytes.Equal(a1.nA[:], a2.nA[:]) || bytes.Equal(a1.nA[:], make([]byte, 32)) {
		t.Fatal("N_A is not random")
	}
}

// BenchmarkHandshake: one whole fresh key exchange per TEP, both roles: two
// key generations, two shared secrets, Init1/Init2 build and parse, and the
// key schedule.
func BenchmarkHandshake(b *testing.B) {
	tr := unhex(b, hsTranscript)
	aes := []cryptopool.Suite{cryptopool.AES128GCM}
	for _, tep := range AllTEPs {
		b.Run(tep.String(), func(b *testing.B) {
			ka, _ := KeyAgreementFor(tep)
			b.ReportAllocs()
			for b.Loop() {
				ka1, _ := ka.GenerateKey(nil)
				kb1, _ := ka.GenerateKey(nil)
				a, _ := NewInitiator(InitiatorConfig{TEP: tep, Ciphers: aes, Key: ka1, Transcript: tr})
				r, _ := NewResponder(ResponderConfig{TEP: tep, Prefs: aes, Key: kb1, Transcript: tr})
				r.Feed(a.Init1())
				a.Feed(r.Init2())
				sa, err1 := a.Session()
				sb, err2 := r.Session()
				if err1 != nil || err2 != nil || sa.ID != sb.ID {
					b.Fatal(err1, err2)
				}
			}
		})
	}
}

// BenchmarkKeySchedule: PRK, session ID, mk[0], both traffic keys and
// ss[1] from a known ES: the symmetric part of one handshake.
func BenchmarkKeySchedule(b *testing.B) {
	tr, i1, i2 := unhex(b, hsTranscript), hsHex(b, weInit1), hsHex(b, weInit2)
	es, nA := seq(0x40, 32), seq(0, 32)
	b.ReportAllocs()
	for b.Loop() {
		ss0 := PRK(nA, tr, i1, i2, es)
		newSession(TEPX25519, byte(TEPX25519), false, RoleA, RoleA, cryptopool.AES128GCM, ss0, nil)
	}
}

// BenchmarkResumption: one resumption through both caches (no public-key
// work): Offer, Accept, MatchReply and both Sessions.
func BenchmarkResumption(b *testing.B) {
	sa, sb := hsRun(b, TEPX25519, []cryptopool.Suite{1}, []cryptopool.Suite{1})
	ca, cb := NewCache[int](CacheConfig{}), NewCache[int](CacheConfig{})
	ca.Store(1, sa)
	cb.Store(0, sb)
	buf := make([]byte, 0, 32)
	b.ReportAllocs()
	for b.Loop() {
		r, _ := ca.Offer(1)
		sub := r.AppendSuboption(buf[:0])
		rb, ok := cb.Accept(0, sub[0], sub[1:])
		if !ok {
			b.Fatal("refused")
		}
		reply := rb.AppendSuboption(buf[:0])
		r.MatchReply(reply[0], reply[1:])
		r.Session(RoleA)
		rb.Session(RoleB)
	}
}
