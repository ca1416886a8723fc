package engine

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/negstate"
)

// A reboot of the appliance empties the BPF file system, and with it the
// pinned negotiated set, while the hosts keep their connections. The set's
// disk copy (negstate) carries it across: the first process after the boot
// loads it, and the inside host's next segment of a connection encrypted
// before the reboot is reset, its plaintext kept off the wire. Before,
// the set after a boot was empty and the segment passed unchanged: its
// plaintext crossed the untrusted link (the control case below).
func TestRebootResetsFromDiskCopy(t *testing.T) {
	dir := t.TempDir()
	quiet := slog.New(slog.DiscardHandler)
	file, err := negstate.Open(dir, "", "in", "out")
	if err != nil {
		t.Fatal(err)
	}
	saver := negstate.NewSaver(file, nil, 16)
	set := NewNegotiatedSet(NegotiatedConfig{Capacity: 16, Store: saver})
	saver.Start(set, time.Hour, quiet)
	pr := handshakeOn(t, newGWDeps(t, Config{TEPs: testTEPs}, Deps{Negotiated: set}), newGW(t, Config{TEPs: testTEPs}))
	h := newHosts()
	pr.toB(pr.aSends(&h, []byte("before the reboot"), pshF))
	// The daemon stops for the reboot: the copy is written.
	if err := saver.Stop(); err != nil {
		t.Fatal(err)
	}
	file.Close()

	// After the boot: a new process, a new set, and the disk copy.
	afterBoot := func(load bool) (toIn, toOut [][]byte, c *Counters) {
		set := NewNegotiatedSet(NegotiatedConfig{Capacity: 16})
		if load {
			file, err := negstate.Open(dir, "", "in", "out")
			if err != nil {
				t.Fatal(err)
			}
			defer file.Close()
			prior, _, err := file.Load()
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range prior {
				set.Restore(e.In, e.Out, e.Left)
			}
		}
		ga := newGWDeps(t, Config{TEPs: testTEPs}, Deps{Negotiated: set})
		toIn, toOut = ga.push(Inside, tcpFrame(addrA, addrB, h.aNext, h.bNext, ackF|pshF, 502, nil, []byte("MARKER after the reboot")))
		return toIn, toOut, ga.e.Counters()
	}
	toIn, toOut, c := afterBoot(true)
	for _, f := range toOut {
		if bytes.Contains(f, []byte("MARKER")) {
			t.Fatal("the host's plaintext reached the wire after the reboot")
		}
	}
	if rst := one(t, "to the inside host", toIn); rst.flags&rstF == 0 || c.StrayResets.Load() != 1 {
		t.Fatalf("to the inside host: flags %#x; stray resets %d; want its RST", rst.flags, c.StrayResets.Load())
	}

	// The control: without the copy the set is empty, as it was after
	// every boot, and the plaintext goes out.
	_, toOut, _ = afterBoot(false)
	if len(toOut) != 1 || !bytes.Contains(toOut[0], []byte("MARKER")) {
		t.Fatalf("without the copy: %d frames to the wire; the check would prove nothing", len(toOut))
	}
}
