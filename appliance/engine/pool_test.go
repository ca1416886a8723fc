package engine

import (
	"bytes"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
	"github.com/tcpinc/tcpinc/cryptopool"
)

// poolPair is two engines configured as cfg whose public-key work runs on
// one shared cryptopool.Pool, as a daemon's workers do.
func poolPair(t *testing.T, cfg Config) (ga, gb *gw) {
	pool, err := cryptopool.NewPool(cryptopool.PoolConfig{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	deps := Deps{Pool: pool}
	return newGWDeps(t, cfg, deps), newGWDeps(t, cfg, deps)
}

// With a cryptopool.Pool the Diffie-Hellman runs off the packet path: host
// data that arrives before the keys is queued and sent once Tick collects
// the result; frames that reach G_B before its keys are held, then opened.
func TestPoolKeyExchangeAndPreKeyQueue(t *testing.T) {
	ga, gb := poolPair(t, Config{TEPs: testTEPs})
	o := toThirdSegment(ga, gb)
	gb.push(Outside, o[0])
	_, o2 := gb.push(Outside, o[1]) // Init1 -> Init2 at once; G_B's keys are computed on the pool
	init2 := one(t, "Init2", o2)
	_, o = ga.push(Outside, tcpFrameFrom(init2))
	one(t, "ACK of Init2", o)

	// a sends before G_A has keys: queued, nothing on the wire.
	msg := []byte("early data, queued until the keys exist")
	if v := ga.e.Handle(0, Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF|pshF, 502, tsOpt(3, 2), msg), ga.tx); v != Consumed && v != Forwarded {
		t.Fatalf("pre-key data: %v", v)
	}
	var wire [][]byte
	wire = append(wire, ga.out.take()...)
	deadline := time.Now().Add(5 * time.Second)
	for len(wire) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
		_, o := ga.tick(1)
		wire = append(wire, o...)
	}
	if len(wire) != 1 {
		t.Fatalf("%d wire frames after keys", len(wire))
	}
	w := parse(t, wire[0])
	if len(w.payload) != len(msg)+20 || w.seq != isnA+1+75 {
		t.Fatalf("queued data on the wire: %+v", w)
	}
	var atB [][]byte
	in, _ := gb.push(Outside, wire[0])
	atB = append(atB, in...)
	for len(atB) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
		in, _ := gb.tick(1)
		atB = append(atB, in...)
	}
	if len(atB) != 1 || !bytes.Equal(parse(t, atB[0]).payload, msg) {
		t.Fatalf("b got %d frames", len(atB))
	}
	if !flowInfo(t, ga.e).Encrypted || !flowInfo(t, gb.e).Encrypted {
		t.Fatal("not encrypted")
	}
}

// Host data that arrived before R's Init2 waits for the keys the pool
// computes after Init2: its first frame acknowledges Init2, and no pure ACK
// goes first (one segment less per fresh connection: at the bench's
// connection rates a's request is always queued by then).
func TestPoolInit2AckedByFirstFrame(t *testing.T) {
	ga, gb := poolPair(t, Config{TEPs: testTEPs})
	o := toThirdSegment(ga, gb)
	gb.push(Outside, o[0])
	_, o2 := gb.push(Outside, o[1])
	init2 := one(t, "Init2", o2)
	msg := []byte("request")
	_, early := ga.push(Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF|pshF, 502, tsOpt(3, 2), msg))
	none(t, "data before the keys", early)
	_, o = ga.push(Outside, tcpFrameFrom(init2))
	none(t, "pure ACK of Init2 with data waiting", o)
	var wire [][]byte
	deadline := time.Now().Add(5 * time.Second)
	for len(wire) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
		_, o := ga.tick(1)
		wire = append(wire, o...)
	}
	if len(wire) != 1 {
		t.Fatalf("%d wire frames after the keys, want the data frame", len(wire))
	}
	w := parse(t, wire[0])
	if len(w.payload) != len(msg)+20 || w.seq != isnA+1+75 || w.ack != isnB+1+74 || w.flags&ackF == 0 {
		t.Fatalf("first frame: seq %x ack %x flags %x len %d, want data at %x acknowledging Init2 (%x)",
			w.seq, w.ack, w.flags, len(w.payload), isnA+1+75, isnB+1+74)
	}
}

// The same when the queued data cannot go at once (more than the
// retransmit store holds): the appliance acknowledges Init2 with a pure ACK
// once the keys are there rather than leave it to R's Init retransmission.
func TestPoolInit2AckedWhenDataCannotGo(t *testing.T) {
	ga, gb := poolPair(t, Config{TEPs: testTEPs, RetransmitBytes: 2 * tcpcrypt.MaxFrameLen / 16, PreKeyBytes: 64 << 10})
	o := toThirdSegment(ga, gb)
	gb.push(Outside, o[0])
	_, o2 := gb.push(Outside, o[1])
	init2 := one(t, "Init2", o2)
	seq := uint32(isnA + 1)
	for range 4 {
		ga.push(Inside, tcpFrame(addrA, addrB, seq, isnB+1, ackF|pshF, 502, tsOpt(3, 2), make([]byte, 4000)))
		seq += 4000
	}
	_, o = ga.push(Outside, tcpFrameFrom(init2))
	none(t, "pure ACK of Init2 with data waiting", o)
	var wire [][]byte
	deadline := time.Now().Add(5 * time.Second)
	for len(wire) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
		_, o := ga.tick(1)
		wire = append(wire, o...)
	}
	if len(wire) != 1 {
		t.Fatalf("%d wire frames after the keys, want the ACK of Init2", len(wire))
	}
	if w := parse(t, wire[0]); len(w.payload) != 0 || w.ack != isnB+1+74 {
		t.Fatalf("after the keys: ack %x len %d, want a pure ACK of Init2 (%x)", w.ack, len(w.payload), isnB+1+74)
	}
}
