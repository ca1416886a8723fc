package engine

import (
	"bytes"
	"testing"
)

// A neighbour's MAC changes mid-connection (the router replaced or failed
// over, a host's new NIC): the segments the appliance builds follow the
// Ethernet addresses of the latest frame from their host, as plain
// forwarding would. Before, every frame went to the handshake's MAC, where
// no one took it, and the connection stalled.
func TestFramesFollowNeighbourMAC(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	router := []byte{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee}

	// a's gateway (b's side of the box) has a new MAC: a sends to it.
	pr.tsA++
	fr := tcpFrame(addrA, addrB, h.aNext, h.bNext, ackF|pshF, 502, tsOpt(pr.tsA, pr.tsB), []byte("to the new router"))
	copy(fr[0:6], router)
	_, toOut := pr.ga.push(Inside, fr)
	w := one(t, "a's frame on the wire", toOut)
	if !bytes.Equal(toOut[0][0:12], fr[0:12]) {
		t.Fatalf("wire frame's MACs %x, want a's latest %x", toOut[0][0:12], fr[0:12])
	}
	h.aNext += uint32(len("to the new router"))
	pr.toB([]segv{w})

	// The new router forwards b's frames to a from its new MAC.
	pr.tsB++
	_, o := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, h.aNext, ackF|pshF, 509, tsOpt(pr.tsB, pr.tsA), []byte("from behind the new router")))
	wire := o[0]
	copy(wire[6:12], router)
	toIn, _ := pr.ga.push(Outside, wire)
	one(t, "b's bytes at a", toIn)
	if !bytes.Equal(toIn[0][0:12], wire[0:12]) {
		t.Fatalf("frame to a: MACs %x, want the far frame's %x", toIn[0][0:12], wire[0:12])
	}
}
