package engine

import (
	"bytes"
	"slices"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

// The key log hook reports each generation once per side, with the flow's
// addresses, and what it reports opens the frames on the wire: generation
// 1's master key, chained from mk[0], opens the rekey frame G_A sent. The
// lines the hook takes are counted (key_log_lines), those it refuses (its
// queue full, its file failed) too (key_log_lost).
func TestKeyLogHook(t *testing.T) {
	pr := handshake(t)
	var atA, atB []KeyLogEntry
	keep := func(l *[]KeyLogEntry, take bool) func(KeyLogEntry) bool {
		return func(k KeyLogEntry) bool {
			c := k
			s := *k.Session
			c.Session = &s
			*l = append(*l, c)
			return take
		}
	}
	// Set after the handshake: generation 0 comes with the first rekey.
	pr.ga.e.deps.KeyLog = keep(&atA, true)
	pr.gb.e.deps.KeyLog = keep(&atB, false)
	pr.ga.e.cfg.RekeyBytes = 2000
	h := newHosts()
	chunk := bytes.Repeat([]byte{7}, 1400)
	w1 := pr.aSends(&h, chunk, pshF)
	w2 := pr.aSends(&h, chunk, pshF)
	w3 := pr.aSends(&h, chunk, pshF)
	pr.toB(w1)
	pr.toB(w2)
	pr.toB(w3)
	pr.toB(pr.aSends(&h, []byte("more"), pshF)) // no new generation: no new line
	for _, c := range []struct {
		name   string
		got    []KeyLogEntry
		inside string
	}{{"G_A", atA, addrA.String()}, {"G_B", atB, addrB.String()}} {
		if len(c.got) != 2 || c.got[0].Generation != 0 || c.got[1].Generation != 1 {
			t.Fatalf("%s: %d entries %+v, want generations 0 and 1", c.name, len(c.got), c.got)
		}
		if c.got[0].Inside.String() != c.inside {
			t.Fatalf("%s: inside %v, want %s", c.name, c.got[0].Inside, c.inside)
		}
	}
	if c := pr.ga.e.Counters(); c.KeyLogLines.Load() != 2 || c.KeyLogLost.Load() != 0 {
		t.Fatalf("G_A: key log lines %d, lost %d; want 2 and 0", c.KeyLogLines.Load(), c.KeyLogLost.Load())
	}
	if c := pr.gb.e.Counters(); c.KeyLogLines.Load() != 0 || c.KeyLogLost.Load() != 2 {
		t.Fatalf("G_B: key log lines %d, lost %d; want 0 and 2", c.KeyLogLines.Load(), c.KeyLogLost.Load())
	}
	for g := range atA {
		if atA[g].Session.ID != atB[g].Session.ID || atA[g].MasterKey != atB[g].MasterKey {
			t.Fatalf("the two sides log different sessions or keys for generation %d", g)
		}
	}
	// Open w3 (rekey bit, generation 1) with k_ab of mk[1], chained from mk[0].
	mk1 := atA[1].MasterKey[:]
	if !bytes.Equal(mk1, tcpcrypt.NextMasterKey(atA[0].MasterKey[:])) {
		t.Fatal("the logged mk[1] does not follow from the logged mk[0]")
	}
	kab, _ := tcpcrypt.TrafficKeys(mk1, atA[1].Session.Suite)
	o, err := tcpcrypt.NewOpener(kab)
	if err != nil {
		t.Fatal(err)
	}
	fr := slices.Clone(w3[0].payload)
	off := uint64(w3[0].seq - isnA - 1)
	if _, data, err := o.Open(fr, off); err != nil || !bytes.Equal(data, chunk) {
		t.Fatalf("the logged generation-1 key does not open the rekey frame: %v", err)
	}
}

// Without a hook nothing is recorded on the flow either.
func TestKeyLogOffByDefault(t *testing.T) {
	pr := handshake(t)
	for _, g := range []*gw{pr.ga, pr.gb} {
		for _, f := range g.e.flows {
			if f.keyLogNext != 0 {
				t.Fatalf("keyLogNext %d without a key log", f.keyLogNext)
			}
		}
	}
}
