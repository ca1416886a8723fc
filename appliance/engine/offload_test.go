package engine

import (
	"bytes"
	"slices"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/packet"
)

// offloadSink is a sink on a port with checksum offload (OffloadSink): it
// completes every partial frame's TCP checksum as the kernel would, after
// checking the engine left the field for it.
type offloadSink struct {
	sink
	t       testing.TB
	partial int
}

func (s *offloadSink) OffloadsChecksums() bool { return true }

func (s *offloadSink) CommitPartial(n int) {
	f := slices.Clone(s.buf[:n])
	var p packet.Packet
	if err := p.Decode(f); err != nil || !p.IsTCP() {
		s.t.Fatalf("partial frame does not decode as TCP: %v", err)
	}
	if c := f[p.L4Offset()+16 : p.L4Offset()+18]; !bytes.Equal(c, []byte{0, 0}) {
		s.t.Fatalf("partial frame's TCP checksum field is %x, want it left zero", c)
	}
	if !p.VerifyIPv4Checksum() {
		s.t.Fatal("partial frame's IPv4 header checksum is not right: only the TCP sum is the port's")
	}
	p.FixL4Checksum()
	s.partial++
	s.out = append(s.out, f)
}

// TestOffloadSinkGetsPartialFrames: on ports that compute TCP checksums,
// the engine leaves them to the port in both directions (sealed frames to
// the far side, plaintext to the host), and the frames, once the port has
// summed them, carry the data as before.
func TestOffloadSinkGetsPartialFrames(t *testing.T) {
	pr := handshakeOn(t, newGW(t, Config{TEPs: testTEPs}), newGW(t, Config{TEPs: testTEPs}))
	aOut := &offloadSink{sink: *newSink(), t: t}
	bIn := &offloadSink{sink: *newSink(), t: t}
	pr.ga.out, pr.ga.tx[Outside] = &aOut.sink, aOut
	pr.gb.in, pr.gb.tx[Inside] = &bIn.sink, bIn

	h := newHosts()
	data := bytes.Repeat([]byte("offload "), 300)
	wire := pr.aSends(&h, data, pshF)
	if len(wire) != 2 || aOut.partial != 2 {
		t.Fatalf("G_A sent %d frames, %d of them partial; want 2 and 2", len(wire), aOut.partial)
	}
	var got []byte
	for _, s := range wire {
		toIn, _ := pr.gb.push(Outside, s.frame())
		for _, f := range toIn {
			got = append(got, parse(t, f).payload...)
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("b got %d bytes, want the %d a sent", len(got), len(data))
	}
	if bIn.partial == 0 {
		t.Fatal("G_B's plaintext to b was not left to its port's offload")
	}
}
