package engine

import (
	"bytes"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
	"github.com/tcpinc/tcpinc/cryptopool"
)

// liveSecrets names the secrets s still holds (not all zero bytes).
func liveSecrets(s *tcpcrypt.Session) []string {
	var live []string
	if s.MasterKey != [tcpcrypt.SecretLen]byte{} {
		live = append(live, "mk[0]")
	}
	for _, k := range []struct {
		name string
		key  tcpcrypt.TrafficKey
	}{{"send key", s.Send}, {"receive key", s.Recv}} {
		if slices.ContainsFunc(k.key.Key, func(b byte) bool { return b != 0 }) {
			live = append(live, k.name)
		}
		if k.key.NR != [cryptopool.NonceSize]byte{} {
			live = append(live, k.name+"'s NR")
		}
	}
	return live
}

// pairUsable reports whether kp still computes a shared secret, with a
// fresh pair of the same TEP as the peer.
func pairUsable(t *testing.T, ka tcpcrypt.KeyAgreement, kp *tcpcrypt.KeyPair) bool {
	t.Helper()
	other, err := ka.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ka.SharedSecret(kp, other.Public)
	return err == nil
}

// After rekeys the flow keeps nothing that opens a frame of generation 0:
// the session's mk[0] and generation-0 keys are zeroed once the KeyRing has
// its own copy, so rekeying wipes "keys that could decrypt previously
// transmitted segments" (RFC 8548 §3.8, TC-60). Before, the session kept
// mk[0] and the generation-0 keys for the flow's life.
func TestRekeyWipesGenerationZero(t *testing.T) {
	pr := handshake(t)
	pr.ga.e.cfg.RekeyBytes = 1000
	h := newHosts()
	chunk := bytes.Repeat([]byte{7}, 1400)
	var first segv
	for i := 0; flowInfo(t, pr.ga.e).KeyGeneration < 3; i++ {
		if i == 10 {
			t.Fatal("G_A did not reach generation 3")
		}
		w := pr.aSends(&h, chunk, pshF)
		if i == 0 {
			first = w[0]
		}
		_, back := pr.toB(w)
		for _, b := range back { // G_B's answers: its rekeys too
			pr.ga.push(Outside, tcpFrameFrom(b))
		}
	}
	if first.payload[0] != 0 {
		t.Fatal("the first frame is not of generation 0")
	}
	off := uint64(first.seq - isnA - 1)
	opens := func(k tcpcrypt.TrafficKey) bool {
		o, err := tcpcrypt.NewOpener(k)
		if err != nil {
			return false
		}
		_, data, err := o.Open(slices.Clone(first.payload), off)
		return err == nil && bytes.Equal(data, chunk)
	}
	for _, g := range []*gw{pr.ga, pr.gb} {
		f := g.onlyFlow()
		s := f.sess
		if live := liveSecrets(s); live != nil {
			t.Errorf("%s after rekeys: the session keeps %v", g.name(), live)
		}
		send, recv := s.Keys(s.MasterKey[:])
		for _, k := range []tcpcrypt.TrafficKey{send, recv, s.Send, s.Recv} {
			if opens(k) {
				t.Fatalf("%s after rekeys: a key kept in the session opens the generation-0 frame", g.name())
			}
		}
	}
	if _, err := pr.ga.onlyFlow().keys.Sealer(0); err == nil {
		t.Fatal("G_A keeps its generation-0 sending key")
	}
}

func (g *gw) name() string {
	if g.e.flows[flowKey{in: addrA, out: addrB}] != nil {
		return "G_A"
	}
	return "G_B"
}

// The ephemeral pair is wiped as soon as it has given the shared secret
// (TC-9, TC-79). Before, it was dropped as it was.
func TestUsedPairWiped(t *testing.T) {
	ga, gb := newGW(t, Config{TEPs: testTEPs}), newGW(t, Config{TEPs: testTEPs})
	o := toThirdSegment(ga, gb)
	kp := ga.onlyFlow().kp
	ka, err := tcpcrypt.KeyAgreementFor(kp.TEP())
	if err != nil {
		t.Fatal(err)
	}
	finishKex(ga, gb, o)
	if f := ga.onlyFlow(); f.state != stOpen {
		t.Fatalf("G_A in state %s, want encrypted", stateNames[f.state])
	}
	if pairUsable(t, ka, kp) {
		t.Fatal("after the key exchange G_A's ephemeral private key still computes a shared secret")
	}
}

// A flow that ends keeps no secret: remove (and kill) zero the session's
// keys, the ephemeral pair of a key exchange under way and an unused
// resumption secret, such as the one a SYN offered before its
// retransmissions gave up on TCP-ENO (resendSYN). Before, the pair and the
// resumption secret were dropped unwiped and the session's mk[0] and
// generation-0 keys outlived the flow (ENO-63).
func TestEndedFlowHoldsNoSecrets(t *testing.T) {
	t.Run("encrypted", func(t *testing.T) {
		pr := handshake(t)
		f := pr.ga.onlyFlow()
		pr.ga.e.remove(f)
		if live := liveSecrets(f.sess); live != nil {
			t.Fatalf("after remove the session keeps %v", live)
		}
		if _, err := f.keys.Sealer(0); err == nil {
			t.Fatal("after remove the KeyRing still seals")
		}
	})
	t.Run("key exchange", func(t *testing.T) {
		ga, gb := newGW(t, Config{TEPs: testTEPs}), newGW(t, Config{TEPs: testTEPs})
		toThirdSegment(ga, gb) // G_A sent Init1 and waits for Init2
		f := ga.onlyFlow()
		if f.state != stKex || f.kp == nil {
			t.Fatalf("state %s, pair %v: want a key exchange holding its pair", stateNames[f.state], f.kp)
		}
		kp := f.kp
		ka, err := tcpcrypt.KeyAgreementFor(kp.TEP())
		if err != nil {
			t.Fatal(err)
		}
		ga.e.remove(f)
		if pairUsable(t, ka, kp) {
			t.Fatal("after remove the flow's ephemeral private key still computes a shared secret")
		}
	})
	for _, end := range []string{"SYN retries", "remove"} {
		t.Run("resumption secret, "+end, func(t *testing.T) {
			ga, gb := newGWCache(t, Config{TEPs: testTEPs}), newGWCache(t, Config{TEPs: testTEPs})
			connect(t, ga, gb, 40001) // G_A caches ss[1] for b's address
			a2 := netip.AddrPortFrom(addrA.Addr(), 40002)
			syn := tcpFrame(a2, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil)
			ga.push(Inside, syn)
			f := ga.e.flows[flowKey{in: a2, out: addrB}]
			if f == nil || f.res == nil {
				t.Fatal("the second SYN offers no resumption")
			}
			r := f.res
			if end == "remove" {
				ga.e.remove(f)
			} else {
				for range DefaultSYNsWithENO + 2 { // b is known (connect): two more keep ENO
					ga.now += int64(time.Second) // the host's retransmission timeout
					ga.push(Inside, syn)
				}
				if n := ga.e.Counters().Fallbacks[FallbackSYNRetries].Load(); n != 1 || f.state != stPlain {
					t.Fatalf("syn_retries %d, state %s: want the flow killed", n, stateNames[f.state])
				}
			}
			// Had B answered, would the secret still give a session?
			sub := tcpcrypt.AppendResumeSuboption(nil, r.TEP, r.PeerHalf(), []byte("nonce_b!"))
			if !r.MatchReply(sub[0], sub[1:]) {
				t.Fatal("reply not matched")
			}
			if _, err := r.Session(tcpcrypt.RoleA); !errors.Is(err, tcpcrypt.ErrNotReady) {
				t.Fatalf("after %s the offered resumption secret still gives a session (%v)", end, err)
			}
		})
	}
}

// A flow that ends while the pool computes its session: the session the
// job made, and the pair it used, are wiped when the result comes back
// (poll). Before, both were dropped as they were.
func TestPoolResultOfEndedFlowWiped(t *testing.T) {
	pool, release := busyPool(t)
	ga := newGW(t, Config{TEPs: testTEPs})
	gb := newGWDeps(t, Config{TEPs: testTEPs}, Deps{Pool: pool})
	kexFlows(t, ga, gb, 1) // G_B's key exchange waits behind the blocker
	f := gb.onlyFlow()
	if !f.kexBusy || f.kp != nil {
		// B's pair is made on the pool with the session (no stock here).
		t.Fatalf("G_B's key exchange is not on the pool (busy %v), or its pair was made on the worker (%v)", f.kexBusy, f.kp != nil)
	}
	ka, err := tcpcrypt.KeyAgreementFor(f.rsp.TEP())
	if err != nil {
		t.Fatal(err)
	}
	gb.e.remove(f)
	release()
	deadline := time.Now().Add(5 * time.Second)
	for f.kexBusy && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
		gb.tick(1)
	}
	if f.kexBusy {
		t.Fatal("the pool's result did not come back")
	}
	if f.sessOut == nil {
		t.Fatalf("the pool computed no session (%v)", f.sessErr)
	}
	kp := f.kp // the pair the job made
	if live := liveSecrets(f.sessOut); live != nil {
		t.Errorf("the session computed for the ended flow keeps %v", live)
	}
	if pairUsable(t, ka, kp) {
		t.Error("the ended flow's ephemeral private key still computes a shared secret")
	}
}
