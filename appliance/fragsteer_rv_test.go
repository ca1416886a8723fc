package appliance

import (
	"bytes"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// rv-today31: a full route table evicts the oldest route, by creation,
// when routes expired since the last expire (at most agePeriod ago) are
// still there: add no longer forgets them first (27bc034), and steer's own
// expire ran just before (add's check is then never true). The oldest
// route is a datagram's whose first fragment came late (its deadline
// renewed), the expired ones a burst of forged first fragments: the real
// datagram's last fragment finds no route and never leaves.
func TestRVFullRouteTableEvictsLiveRouteBeforeExpiredOnes(t *testing.T) {
	r := engineRigQueues(t, 2)
	seg := tcpFrame(a4, b4, 40000, 8080, packettest.ACK, 1, 1, bytes.Repeat([]byte("fragment data. "), 100))
	frags := packettest.Fragments(seg, 512, 7)
	// t0: the datagram's middle fragment, held: its route is the oldest.
	r.in[0].Inject(frags[1])
	r.settle()
	junk := bytes.Repeat([]byte("forged "), 100)
	forged := func(id uint32) {
		fs := packettest.Fragments(tcpFrame(b4, a4, 8080, 40000, packettest.ACK, 1, 1, junk), 256, 1000+id)
		r.outp[id%2].Inject(fs[0]) // a first fragment: routed, holds nothing
	}
	// t0+1ms: forged first fragments, all but one of the table's routes.
	r.now += time.Millisecond
	for id := range uint32(fragRoutes - 2) {
		forged(id)
		if id%64 == 63 {
			r.settle()
		}
	}
	r.settle()
	// t0+4.95s: the datagram's first fragment; its route lives 5 s
	// more. The worker's expire runs (nothing expired yet).
	r.now += 4950 * time.Millisecond
	r.in[0].Inject(frags[0])
	r.settle()
	// t0+5.02s, 5.03s: the burst's routes have expired, less than
	// agePeriod after the last expire; two new datagrams fill the table,
	// then make room.
	r.now += 70 * time.Millisecond
	forged(fragRoutes)
	r.settle()
	r.now += 10 * time.Millisecond
	forged(fragRoutes + 1)
	r.settle()
	// t0+5.04s: the datagram's last fragment.
	r.now += 10 * time.Millisecond
	r.in[0].Inject(frags[2])
	r.settle()
	r.now += time.Millisecond
	r.settle()
	n := 0
	for _, o := range r.out[1] {
		for _, f := range frags {
			if bytes.Equal(o, f) {
				n++
			}
		}
	}
	if n != len(frags) {
		t.Fatalf("%d of the real datagram's %d fragments left (a live route evicted while %d expired ones stayed)", n, len(frags), fragRoutes-2)
	}
}
