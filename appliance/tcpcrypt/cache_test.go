package tcpcrypt

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/cryptopool"
)

// hsPair is two hosts' caches after one fresh X25519 session: "a" was A,
// "b" was B. a files the chain under peer "b" and b under "a".
func hsPair(t *testing.T, cfg CacheConfig) (ca, cb *Cache[string], sa, sb *Session) {
	t.Helper()
	sa, sb = hsRun(t, TEPX25519, []cryptopool.Suite{cryptopool.AES256GCM}, []cryptopool.Suite{cryptopool.AES256GCM})
	ca, cb = NewCache[string](cfg), NewCache[string](cfg)
	ca.Store("b", sa)
	cb.Store("a", sb)
	return ca, cb, sa, sb
}

// hsResume runs one resumption from the active host's cache to the
// passive host's and returns both sessions.
func hsResume(t *testing.T, active, passive *Cache[string], activePeer, passivePeer string) (sAct, sPas *Session) {
	t.Helper()
	r, ok := active.Offer(activePeer)
	if !ok {
		t.Fatal("nothing to offer")
	}
	sub := r.AppendSuboption(nil)
	rp, ok := passive.Accept(passivePeer, sub[0], sub[1:])
	if !ok {
		t.Fatal("passive side refused")
	}
	reply := rp.AppendSuboption(nil)
	if !r.MatchReply(reply[0], reply[1:]) {
		t.Fatal("reply did not match")
	}
	sAct, err := r.Session(RoleA)
	if err != nil {
		t.Fatal(err)
	}
	if sPas, err = rp.Session(RoleB); err != nil {
		t.Fatal(err)
	}
	if sAct.ID != sPas.ID || sAct.ID[0] != byte(TEPX25519)|ResumeBit || hsKeyHex(sAct.Send) != hsKeyHex(sPas.Recv) || sAct.Suite != cryptopool.AES256GCM {
		t.Fatal("resumed sessions disagree")
	}
	return sAct, sPas
}

// TestCacheChainAdvances: each resumption uses the next secret of the chain:
// ss[1], ss[2], ss[3]... and session IDs never repeat (TC-25, TC-30, TC-33).
func TestCacheChainAdvances(t *testing.T) {
	ca, cb, sa, _ := hsPair(t, CacheConfig{})
	ss := sa.next[:]
	seen := map[[SessionIDLen]byte]bool{sa.ID: true}
	for i := 1; i <= 4; i++ {
		active, passive, ap, pp := ca, cb, "b", "a"
		if i%2 == 0 { // either host may start a resumption (TC-37)
			active, passive, ap, pp = cb, ca, "a", "b"
		}
		s1, _ := hsResume(t, active, passive, ap, pp)
		if seen[s1.ID] {
			t.Fatalf("resumption %d repeated a session id", i)
		}
		seen[s1.ID] = true
		if s1.next != [SecretLen]byte(NextSecret(ss)) {
			t.Fatalf("resumption %d did not use ss[%d]", i, i)
		}
		ss = s1.next[:]
		if got := ca.byPeer["b"].secret; got != s1.next {
			t.Fatalf("after resumption %d the cache does not hold ss[%d]", i, i+1)
		}
	}
}

// TestCacheSingleUse: a secret is consumed by Offer or Accept even when the
// connection never uses it, so it is never offered or accepted twice
// (TC-33, TC-34, TC-35).
func TestCacheSingleUse(t *testing.T) {
	ca, cb, sa, _ := hsPair(t, CacheConfig{})
	r1, _ := ca.Offer("b") // SYN lost, connection failed: r1 is dropped
	r1.Erase()
	r2, ok := ca.Offer("b")
	if !ok {
		t.Fatal("no second offer")
	}
	if r1.OwnHalf() == r2.OwnHalf() {
		t.Fatal("the same secret was offered twice")
	}
	ss1 := sa.next
	if r2.resume != ResumeID(NextSecret(ss1[:])) {
		t.Fatal("second offer is not ss[2]")
	}
	if !bytes.Equal(r1.secret[:], make([]byte, SecretLen)) {
		t.Fatal("Erase left the secret in memory")
	}

	// b still holds ss[1]: a's ss[2] offer names nothing it has (TC-20).
	sub := r2.AppendSuboption(nil)
	if _, ok := cb.Accept("a", sub[0], sub[1:]); ok {
		t.Fatal("b accepted a secret it never cached")
	}

	// A fresh pair: the same SYN seen twice is accepted once.
	ca, cb, _, _ = hsPair(t, CacheConfig{})
	r, _ := ca.Offer("b")
	sub = r.AppendSuboption(nil)
	if _, ok := cb.Accept("a", sub[0], sub[1:]); !ok {
		t.Fatal("first accept failed")
	}
	if _, ok := cb.Accept("a", sub[0], sub[1:]); ok {
		t.Fatal("a replayed offer was accepted twice (TC-34)")
	}
	if _, err := r.Session(RoleA); !errors.Is(err, ErrNotReady) {
		t.Fatalf("Session before the reply: %v", err)
	}
}

// TestResumptionSessionOnce: a taken secret gives one session only.
func TestResumptionSessionOnce(t *testing.T) {
	ca, cb, _, _ := hsPair(t, CacheConfig{})
	r, _ := ca.Offer("b")
	sub := r.AppendSuboption(nil)
	rb, _ := cb.Accept("a", sub[0], sub[1:])
	if _, err := rb.Session(RoleB); err != nil {
		t.Fatal(err)
	}
	if _, err := rb.Session(RoleB); !errors.Is(err, ErrNotReady) {
		t.Fatalf("second Session: %v", err)
	}
}

// TestCacheAcceptRules: the passive side agrees only to a resumption
// suboption whose half names a cached secret of the same TEP (TC-19,
// TC-20), and treats short or v = 0 suboptions as fresh offers (TC-22).
func TestCacheAcceptRules(t *testing.T) {
	ca, cb, _, _ := hsPair(t, CacheConfig{})
	r, _ := ca.Offer("b")
	sub := r.AppendSuboption(nil) // a3 | half | 8-byte nonce
	wrongHalf := bytes.Clone(sub)
	wrongHalf[1] ^= 1
	ownHalf := AppendResumeSuboption(nil, TEPX25519, r.PeerHalf(), r.Nonce()) // b's own half echoed
	cases := map[string][]byte{
		"v = 0":            append([]byte{byte(TEPX25519)}, sub[1:]...),
		"other TEP":        append([]byte{byte(TEPX448) | ResumeBit}, sub[1:]...),
		"8 data bytes":     sub[:9],
		"empty data":       sub[:1],
		"nonce of 9 bytes": append(bytes.Clone(sub), 0),
		"unknown half":     wrongHalf,
		"b's own half":     ownHalf,
	}
	for name, s := range cases {
		if _, ok := cb.Accept("a", s[0], s[1:]); ok {
			t.Errorf("%s: accepted", name)
		}
	}
	// None of those consumed b's secret: the real offer still works.
	if _, ok := cb.Accept("a", sub[0], sub[1:]); !ok {
		t.Fatal("valid offer refused after the invalid ones")
	}

	if _, ok := ParseResumeSuboption(0xa3, sub[1:9]); ok {
		t.Error("8 data bytes parsed as resumption (TC-22)")
	}
	s, ok := ParseResumeSuboption(0xa3, sub[1:10])
	if !ok || s.TEP != TEPX25519 || len(s.Nonce) != 0 {
		t.Errorf("9 data bytes: %+v %v", s, ok)
	}
}

// TestMatchReply: the active side ignores a reply with a half that does not
// match, or another TEP, or no v bit (TC-23).
func TestMatchReply(t *testing.T) {
	ca, _, _, _ := hsPair(t, CacheConfig{})
	r, _ := ca.Offer("b")
	good := AppendResumeSuboption(nil, TEPX25519, r.PeerHalf(), seq(0xb0, 8))
	bad := bytes.Clone(good)
	bad[9] ^= 0x80
	for name, s := range map[string][]byte{
		"mismatched half": bad,
		"our own half":    r.AppendSuboption(nil),
		"other TEP":       append([]byte{byte(TEPP256) | ResumeBit}, good[1:]...),
		"v = 0":           append([]byte{byte(TEPX25519)}, good[1:]...),
		"short":           good[:9],
	} {
		if r.MatchReply(s[0], s[1:]) {
			t.Errorf("%s matched", name)
		}
	}
	if _, err := r.Session(RoleA); !errors.Is(err, ErrNotReady) {
		t.Fatalf("Session after only bad replies: %v", err)
	}
	if !r.MatchReply(good[0], good[1:]) {
		t.Fatal("good reply refused")
	}
}

// TestCacheNonceLength: 8-byte random nonces by default, settable 0..8
// (TC-15..TC-18); with 0-byte nonces resumption still works.
func TestCacheNonceLength(t *testing.T) {
	ca, cb, _, _ := hsPair(t, CacheConfig{})
	r, _ := ca.Offer("b")
	if len(r.Nonce()) != 8 || bytes.Equal(r.Nonce(), make([]byte, 8)) {
		t.Fatalf("default nonce %x", r.Nonce())
	}
	r2, _ := ca.Offer("b")
	if bytes.Equal(r.Nonce(), r2.Nonce()) {
		t.Fatal("nonces repeat")
	}
	for _, n := range []int{-1, 9} {
		if err := ca.SetNonceLen(n); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("SetNonceLen(%d): %v", n, err)
		}
	}
	ca, cb, _, _ = hsPair(t, CacheConfig{})
	for _, c := range []*Cache[string]{ca, cb} {
		if err := c.SetNonceLen(0); err != nil {
			t.Fatal(err)
		}
	}
	sa, _ := hsResume(t, ca, cb, "b", "a")
	if !sa.Resumed {
		t.Fatal("not resumed")
	}
	if err := ca.SetNonceLen(3); err != nil {
		t.Fatal(err)
	}
	r, _ = ca.Offer("b")
	if len(r.Nonce()) != 3 || len(r.AppendSuboption(nil)) != 1+9+3 {
		t.Fatalf("3-byte nonce: %x", r.AppendSuboption(nil))
	}
}

// TestCacheFlush: flushing one peer (TC-41) or all, and the switch that
// neither offers, accepts nor caches (TC-40).
func TestCacheFlush(t *testing.T) {
	ca, cb, sa, _ := hsPair(t, CacheConfig{})
	other, _ := hsRun(t, TEPX25519, []cryptopool.Suite{1}, []cryptopool.Suite{1})
	ca.Store("c", other)
	if ca.Len() != 2 {
		t.Fatalf("Len %d, want 2", ca.Len())
	}
	ca.Flush("b")
	if _, ok := ca.Offer("b"); ok {
		t.Fatal("offer after Flush")
	}
	if ca.Len() != 1 {
		t.Fatalf("Len %d after flushing one of two", ca.Len())
	}
	ca.FlushAll()
	if ca.Len() != 0 {
		t.Fatal("FlushAll left chains")
	}

	// A flushed passive side refuses the offer it would have accepted.
	ca, cb, _, _ = hsPair(t, CacheConfig{})
	r, _ := ca.Offer("b")
	sub := r.AppendSuboption(nil)
	cb.Flush("a")
	if _, ok := cb.Accept("a", sub[0], sub[1:]); ok {
		t.Fatal("accepted after Flush")
	}

	ca, cb, sa, _ = hsPair(t, CacheConfig{})
	r, _ = ca.Offer("b")
	sub = r.AppendSuboption(nil)
	cb.SetEnabled(false)
	if _, ok := cb.Accept("a", sub[0], sub[1:]); ok || cb.Len() != 0 {
		t.Fatal("disabled cache accepted or kept state")
	}
	cb.Store("a", sa)
	if cb.Len() != 0 {
		t.Fatal("disabled cache stored a session")
	}
	ca.SetEnabled(false)
	if _, ok := ca.Offer("b"); ok {
		t.Fatal("disabled cache offered")
	}
	ca.SetEnabled(true)
	ca.Store("b", sa)
	if _, ok := ca.Offer("b"); !ok {
		t.Fatal("re-enabled cache does not work")
	}
}

// TestCacheResumedSessionNotStored: storing a resumed session is a no-op,
// so its ss[i+1] is never in the cache twice.
func TestCacheResumedSessionNotStored(t *testing.T) {
	ca, cb, _, _ := hsPair(t, CacheConfig{})
	sAct, _ := hsResume(t, ca, cb, "b", "a")
	ca.Offer("b") // takes ss[2]
	ca.Store("b", sAct)
	r, ok := ca.Offer("b")
	if !ok || r.secret == sAct.next {
		t.Fatal("a resumed session's secret was stored again")
	}
}

// TestSessionWipe: once the cache has its copy of ss[1] (Store), Wipe
// leaves nothing in the session that leads to a later secret: after a
// resumption with ss[1] and a flush of both caches, the session no longer
// reproduces the resumed session's keys, and its mk[0] and generation-0
// keys are zero (TC-30, RFC 8548 §3.8). What names the session stays.
func TestSessionWipe(t *testing.T) {
	ca, cb, sa, sb := hsPair(t, CacheConfig{})
	id := sa.ID
	sa.Wipe()
	sb.Wipe()
	var zero [SecretLen]byte
	for _, s := range []*Session{sa, sb} {
		if s.MasterKey != zero || s.next != zero {
			t.Fatalf("after Wipe: mk[0] %x, ss[1] %x", s.MasterKey, s.next)
		}
		for _, k := range []TrafficKey{s.Send, s.Recv} {
			if !bytes.Equal(k.Key[:cap(k.Key)], make([]byte, cap(k.Key))) || k.NR != [cryptopool.NonceSize]byte{} {
				t.Fatalf("after Wipe a generation-0 key is left: %s", hsKeyHex(k))
			}
		}
		if s.ID != id || s.TEP != TEPX25519 || s.Suite != cryptopool.AES256GCM || s.Resumed {
			t.Fatalf("Wipe changed what names the session: %+v", s)
		}
	}
	r, _ := ca.Offer("b")
	sub := r.AppendSuboption(nil)
	rp, ok := cb.Accept("a", sub[0], sub[1:])
	if !ok {
		t.Fatal("b refused the resumption")
	}
	reply := rp.AppendSuboption(nil)
	if !r.MatchReply(reply[0], reply[1:]) {
		t.Fatal("reply did not match")
	}
	nA, nB := bytes.Clone(r.Nonce()), bytes.Clone(rp.Nonce())
	s1, err := r.Session(RoleA)
	if err != nil {
		t.Fatal(err)
	}
	ca.FlushAll()
	cb.FlushAll()
	for _, s := range []*Session{sa, sb} {
		again, err := ResumedSession(s.TEP, s.Suite, RoleA, RoleA, s.next[:], nA, nB)
		if err == nil && again.MasterKey == s1.MasterKey {
			t.Fatal("the wiped session still derives the resumed session's mk[0] after the flush")
		}
	}
}

// TestCacheAcceptRefiles: after accepting, the chain answers to the
// current peer key, which is what the engine will flush (TC-41).
func TestCacheAcceptRefiles(t *testing.T) {
	ca, cb, _, _ := hsPair(t, CacheConfig{})
	r, _ := ca.Offer("b")
	sub := r.AppendSuboption(nil)
	if _, ok := cb.Accept("a-new-address", sub[0], sub[1:]); !ok {
		t.Fatal("refused")
	}
	if _, ok := cb.Offer("a"); ok {
		t.Fatal("chain still under the old key")
	}
	if _, ok := cb.Offer("a-new-address"); !ok {
		t.Fatal("chain not under the new key")
	}
}

// TestCacheEviction: the cap drops the least recently used chain.
func TestCacheEviction(t *testing.T) {
	s, _ := hsRun(t, TEPX25519, []cryptopool.Suite{1}, []cryptopool.Suite{1})
	c := NewCache[int](CacheConfig{MaxEntries: 3})
	for p := range 3 {
		c.Store(p, s)
		s.next[0]++ // distinct secrets, so distinct halves
	}
	c.Offer(0) // 0 is now the most recently used
	c.Store(3, s)
	if c.Len() != 3 {
		t.Fatalf("Len %d, want 3", c.Len())
	}
	if _, ok := c.Offer(1); ok {
		t.Fatal("least recently used chain 1 survived")
	}
	for _, p := range []int{0, 2, 3} {
		if _, ok := c.Offer(p); !ok {
			t.Fatalf("chain %d was evicted", p)
		}
	}
	// Replacing a peer's chain keeps one entry and drops the old half.
	c.Store(3, s)
	if c.Len() != 3 || len(c.byHalf) != 3 {
		t.Fatalf("Len %d halves %d", c.Len(), len(c.byHalf))
	}
}

// TestCacheTTL: chains unused for the TTL are gone; using one renews it.
func TestCacheTTL(t *testing.T) {
	now := time.Unix(1000, 0)
	cfg := CacheConfig{TTL: time.Minute, Now: func() time.Time { return now }}
	ca, cb, _, _ := hsPair(t, cfg)
	now = now.Add(50 * time.Second)
	r, ok := ca.Offer("b") // renews a's chain
	if !ok {
		t.Fatal("expired early")
	}
	now = now.Add(30 * time.Second) // b's chain is 80 s old
	sub := r.AppendSuboption(nil)
	if _, ok := cb.Accept("a", sub[0], sub[1:]); ok {
		t.Fatal("expired chain accepted")
	}
	if cb.Len() != 0 {
		t.Fatal("expired chain kept")
	}
	if _, ok := ca.Offer("b"); !ok {
		t.Fatal("renewed chain expired")
	}
	now = now.Add(time.Minute)
	if _, ok := ca.Offer("b"); ok || ca.Len() != 0 {
		t.Fatal("chain outlived its TTL")
	}
}

// A chain past its TTL is erased by Expire with no other use of the cache
// (a quiet appliance's secrets stayed in memory until the next connection;
// a soak review).
func TestCacheExpireErasesIdleSecrets(t *testing.T) {
	now := time.Unix(1000, 0)
	cfg := CacheConfig{TTL: time.Minute, Now: func() time.Time { return now }}
	ca, _, _, _ := hsPair(t, cfg)
	ch := ca.byPeer["b"]
	if ch == nil || ch.secret == [SecretLen]byte{} {
		t.Fatal("no chain with a secret for b")
	}
	now = now.Add(time.Minute)
	ca.Expire()
	if ch.secret != [SecretLen]byte{} || len(ca.byPeer) != 0 {
		t.Fatal("a chain past its TTL kept its secret")
	}
}

// TestCacheConcurrent: workers taking secrets from one chain at once never
// get the same one (TC-34).
func TestCacheConcurrent(t *testing.T) {
	ca, _, _, _ := hsPair(t, CacheConfig{})
	const n = 64
	halves := make([][ResumeHalf]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if r, ok := ca.Offer("b"); ok {
				halves[i] = r.OwnHalf()
			}
		})
	}
	wg.Wait()
	seen := map[[ResumeHalf]byte]bool{}
	for _, h := range halves {
		if seen[h] {
			t.Fatal("two workers got the same secret")
		}
		seen[h] = true
	}
}
