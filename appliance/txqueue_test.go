package appliance

import (
	"testing"

	"github.com/tcpinc/tcpinc/appliance/memport"
)

// TestTxQueueTails: a port that sends no tails (memport, as AF_XDP) gets
// none: the queue says so, and a CommitTail all the same is counted as a
// bad commit and sends nothing. Every flush counts, whether or not it had
// frames, so that the engine's loans end at the next one.
func TestTxQueueTails(t *testing.T) {
	var sent int
	p, err := memport.New(8, 2048, func([]byte) { sent++ })
	if err != nil {
		t.Fatal(err)
	}
	q := newTxQueue(p, 4)
	q.t = &tally{}
	q.kicks = &counters{}
	if q.SendsTails() || q.SendsGSO() {
		t.Fatal("memport queue claims tails or GSO")
	}
	before := q.Flushes()
	buf := q.Buffer()
	if buf == nil {
		t.Fatal("no TX frame")
	}
	q.CommitTail(54, make([]byte, 3000), 1448)
	if q.t.badCommits != 1 || q.used != 0 {
		t.Fatalf("CommitTail on memport: %d bad commits, %d queued", q.t.badCommits, q.used)
	}
	q.flush()
	q.flush()
	if q.Flushes() != before+2 || sent != 0 {
		t.Fatalf("flushes %d -> %d, %d frames sent", before, q.Flushes(), sent)
	}
}
