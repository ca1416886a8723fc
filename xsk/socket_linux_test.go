package xsk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
	"golang.org/x/sys/unix"
)

// fakeKernel builds a Socket whose rings live in ordinary memory and plays
// the kernel's side of them, so ring and ownership logic can be tested and
// benchmarked without root or syscalls.
type fakeKernel struct {
	s                  *Socket
	fill, comp         *addrRing // kernel consumes fill, produces comp
	rx, tx             *descRing // kernel produces rx, consumes tx
	fillCons, compProd uint32
	rxProd, txCons     uint32
}

func fakeRingMem(size uint32, slot uintptr) ([]byte, unix.XDPRingOffset) {
	off := unix.XDPRingOffset{Producer: 0, Consumer: 64, Flags: 128, Desc: 192}
	mem := make([]byte, 192+uintptr(size)*slot)
	return mem, off
}

func newFakeSocket(t testing.TB, numFrames, frameSize int, ringSize uint32) *fakeKernel {
	t.Helper()
	o, err := (&Options{NumFrames: numFrames, FrameSize: frameSize, RingSize: int(ringSize)}).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	s := &Socket{
		fd:        -1,
		frameSize: uint64(o.FrameSize),
		frameMask: uint64(o.FrameSize - 1),
		numFrames: uint32(o.NumFrames),
		rxFrames:  uint32(o.NumFrames / 2),
		umem:      make([]byte, o.NumFrames*o.FrameSize),
	}
	half := uint32(o.NumFrames / 2)
	fq := max(uint32(o.RingSize), nextPow2(half))
	mk := func(size uint32) *addrRing {
		mem, off := fakeRingMem(size, 8)
		r := &addrRing{slots: unsafe.Slice((*uint64)(unsafe.Pointer(&mem[off.Desc])), size)}
		r.init(mem, off, size)
		return r
	}
	mkd := func(size uint32) *descRing {
		mem, off := fakeRingMem(size, unsafe.Sizeof(unix.XDPDesc{}))
		r := &descRing{slots: unsafe.Slice((*unix.XDPDesc)(unsafe.Pointer(&mem[off.Desc])), size)}
		r.init(mem, off, size)
		return r
	}
	s.fill, s.comp, s.rx, s.tx = mk(fq), mk(fq), mkd(uint32(o.RingSize)), mkd(uint32(o.RingSize))
	s.state = make([]uint8, o.NumFrames)
	s.txFree = make([]uint32, 0, o.NumFrames-int(half))
	for i := uint32(0); i < half; i++ {
		s.fill.slots[i&s.fill.mask] = uint64(i) * s.frameSize
	}
	s.fill.prodSubmit(half)
	for i := uint32(o.NumFrames) - 1; i >= half; i-- {
		s.state[i] = frameFreeTX
		s.txFree = append(s.txFree, i)
	}
	return &fakeKernel{s: s, fill: s.fill, comp: s.comp, rx: s.rx, tx: s.tx}
}

// deliver moves up to n frames from the fill ring to the RX ring, as the
// kernel does on receive, each with length l at offset Headroom.
func (k *fakeKernel) deliver(n int, l uint32) int {
	prod := *k.fill.producer
	rxCons := *k.rx.consumer
	done := 0
	for ; done < n && k.fillCons != prod && k.rxProd-rxCons < k.rx.size; done++ {
		addr := k.fill.slots[k.fillCons&k.fill.mask]
		k.fillCons++
		k.rx.slots[k.rxProd&k.rx.mask] = unix.XDPDesc{Addr: addr + Headroom, Len: l}
		k.rxProd++
	}
	*k.fill.consumer = k.fillCons
	*k.rx.producer = k.rxProd
	return done
}

// complete moves every TX descriptor to the completion ring.
func (k *fakeKernel) complete() int {
	prod := *k.tx.producer
	done := 0
	for ; k.txCons != prod; done++ {
		k.comp.slots[k.compProd&k.comp.mask] = k.tx.slots[k.txCons&k.tx.mask].Addr
		k.txCons++
		k.compProd++
	}
	*k.tx.consumer = k.txCons
	*k.comp.producer = k.compProd
	return done
}

func TestOptions(t *testing.T) {
	for _, o := range []Options{
		{FrameSize: 1024}, {FrameSize: 3000}, {FrameSize: 8192}, {NumFrames: 3}, {NumFrames: 1},
		{RingSize: 1000}, {Queue: -1}, {Bind: BindMode(9)},
	} {
		if _, err := o.withDefaults(); !errors.Is(err, ErrBadOptions) {
			t.Errorf("%+v: err %v, want ErrBadOptions", o, err)
		}
	}
	d, err := (&Options{}).withDefaults()
	if err != nil || d.NumFrames != 4096 || d.FrameSize != 4096 || d.RingSize != 2048 || d.Bind != BindAuto {
		t.Errorf("defaults: %+v, %v", d, err)
	}
}

// TestFrameOwnership checks every refused transition and that no TX frame is
// ever handed out twice.
func TestFrameOwnership(t *testing.T) {
	k := newFakeSocket(t, 64, 2048, 32)
	s := k.s
	rx := make([]Desc, 64)
	if n := k.deliver(4, 60); n != 4 {
		t.Fatalf("deliver: %d", n)
	}
	n := s.Receive(rx)
	if n != 4 {
		t.Fatalf("Receive = %d, want 4", n)
	}
	for _, d := range rx[:n] {
		if f := s.Frame(d); len(f) != 60 || cap(f) != s.FrameCap() {
			t.Fatalf("Frame(%+v): len %d cap %d", d, len(f), cap(f))
		}
	}
	if s.Err() != nil {
		t.Fatal(s.Err())
	}

	// All 32 TX frames, each once.
	tx := make([]Desc, 40)
	got := s.GetTx(tx)
	if got != 32 {
		t.Fatalf("GetTx = %d, want 32", got)
	}
	seen := map[uint64]bool{}
	for _, d := range tx[:got] {
		if seen[d.Addr] || d.Len != 0 || d.Addr%2048 != Headroom {
			t.Fatalf("bad or repeated TX frame %+v", d)
		}
		seen[d.Addr] = true
	}
	if s.GetTx(tx[:1]) != 0 || s.Stats().TxExhausted == 0 {
		t.Fatal("GetTx handed out more frames than exist")
	}

	misuse := func(what string, f func()) {
		t.Helper()
		before := s.Stats().Misuse
		f()
		if s.Stats().Misuse != before+1 {
			t.Errorf("%s: not refused", what)
		}
	}
	misuse("Release of a TX frame", func() { s.Release(tx[:1]) })
	misuse("Transmit of an RX frame", func() { s.Transmit(rx[:1]) })
	misuse("Transmit past the frame end", func() {
		d := tx[0]
		d.Len = uint32(s.FrameCap()) + 1
		s.Transmit([]Desc{d})
	})
	misuse("Release of an address outside the UMEM", func() { s.Release([]Desc{{Addr: 1 << 40}}) })
	misuse("PutTx of an RX frame", func() { s.PutTx(rx[1:2]) })
	if s.Err() == nil {
		t.Error("Err() is nil after misuse")
	}

	// Transmit two frames; a second Transmit of the same desc is refused.
	tx[0].Len, tx[1].Len = 60, uint32(s.FrameCap())
	if q := s.Transmit(tx[:2]); q != 2 {
		t.Fatalf("Transmit = %d", q)
	}
	misuse("double Transmit", func() { s.Transmit(tx[:1]) })
	misuse("PutTx after Transmit", func() { s.PutTx(tx[1:2]) })
	s.PutTx(tx[2:got]) // the rest back unsent
	if st := s.Stats(); st.TxFree != 30 {
		t.Errorf("TxFree = %d, want 30", st.TxFree)
	}
	// Completion returns the two sent frames.
	k.complete()
	if n := s.GetTx(tx[:32]); n != 32 {
		t.Errorf("after completion GetTx = %d, want 32", n)
	}

	// Release all four RX frames; releasing them again is refused.
	s.Release(rx[:4])
	misuse("double Release", func() { s.Release(rx[:1]) })
	if k.deliver(64, 60) != 32 {
		t.Error("released frames did not all return to the fill ring")
	}
}

// TestTransmitRingFull: Transmit stops at the ring size and leaves the rest
// with the caller.
func TestTransmitRingFull(t *testing.T) {
	k := newFakeSocket(t, 128, 2048, 16)
	s := k.s
	tx := make([]Desc, 64)
	n := s.GetTx(tx)
	for i := range n {
		tx[i].Len = 64
	}
	q := s.Transmit(tx[:n])
	if q != 16 {
		t.Fatalf("Transmit on a 16-slot ring took %d", q)
	}
	k.complete()
	if q2 := s.Transmit(tx[q:n]); q2 != 16 {
		t.Fatalf("second Transmit took %d", q2)
	}
	if s.Err() != nil {
		t.Fatal(s.Err())
	}
}

// cycle is one forwarding batch on the fake socket: the kernel delivers,
// the caller receives, copies into TX frames, transmits and releases, the
// kernel completes.
func cycle(k *fakeKernel, rx, tx []Desc) int {
	s := k.s
	k.deliver(len(rx), 64)
	n := s.Receive(rx)
	m := s.GetTx(tx[:n])
	for i := range m {
		in := s.Frame(rx[i])
		copy(s.Frame(tx[i])[:len(in)], in)
		tx[i].Len = uint32(len(in))
	}
	s.Transmit(tx[:m])
	s.Release(rx[:n])
	k.complete()
	return n
}

// TestNoAllocs proves Receive, Release, GetTx, Transmit, PutTx and Frame
// allocate nothing.
func TestNoAllocs(t *testing.T) {
	k := newFakeSocket(t, 256, 2048, 64)
	rx, tx := make([]Desc, 32), make([]Desc, 32)
	if a := testing.AllocsPerRun(200, func() {
		if cycle(k, rx, tx) != 32 {
			panic("short cycle")
		}
		n := k.s.GetTx(tx)
		k.s.PutTx(tx[:n])
	}); a != 0 {
		t.Fatalf("%v allocations per batch, want 0", a)
	}
}

// BenchmarkRingCycle measures the user-space ring work per descriptor:
// Receive + GetTx + Frame/copy of 64 bytes + Transmit + Release, with the
// kernel side simulated in memory.
func BenchmarkRingCycle(b *testing.B) {
	for _, batch := range []int{1, 16, 64} {
		b.Run(strconv.Itoa(batch), func(b *testing.B) {
			k := newFakeSocket(b, 4096, 4096, 2048)
			rx, tx := make([]Desc, batch), make([]Desc, batch)
			b.ReportAllocs()
			b.SetBytes(int64(64 * batch))
			for b.Loop() {
				cycle(k, rx, tx)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/desc")
		})
	}
}

// loopPair is a real socket pair on a veth in a namespace: frames sent by tx
// arrive at rx through the classifier (TCP of an unknown flow: to the socket).
type loopPair struct {
	bump   *Bump
	tx, rx *Socket
	frame  []byte
}

func newLoopPair(t testing.TB, opt Options) *loopPair {
	requireRoot(t)
	const ns = "xskt-loop"
	newNetns(t, ns)
	// No IPv6 on the loop: its MLD/ND frames would mix with the test's.
	sh(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	vethPair(t, ns, "l0", ns, "l1")
	i0, i1 := ifindexIn(t, ns, "l0"), ifindexIn(t, ns, "l1")
	lp := &loopPair{frame: packettest.Frame{Src: packettest.HostA4, Dst: packettest.HostB4,
		TCP: &packettest.TCP{SrcPort: 1, DstPort: 2, Flags: packettest.ACK, Payload: make([]byte, 10)}}.Bytes()}
	err := inNetns(ns, func() (err error) {
		if lp.bump, err = AttachBump(i0, i1, AttachOptions{}); err != nil {
			return err
		}
		if err := lp.bump.SetFastPath(true); err != nil {
			return err
		}
		if lp.rx, err = Open(i0, opt); err != nil {
			return err
		}
		if lp.tx, err = Open(i1, opt); err != nil {
			return err
		}
		if err := lp.bump.Register(Inside, 0, lp.rx); err != nil {
			return err
		}
		return lp.bump.Register(Outside, 0, lp.tx)
	})
	t.Cleanup(func() {
		if lp.bump != nil {
			lp.bump.Close()
		}
		for _, s := range []*Socket{lp.rx, lp.tx} {
			if s != nil {
				s.Close()
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return lp
}

// send transmits len(txd) copies of the test frame from tx and receives
// them on rx; it returns how many arrived.
func (lp *loopPair) send(txd, rxd []Desc) int {
	m := lp.tx.GetTx(txd)
	for i := range m {
		txd[i].Len = uint32(copy(lp.tx.Frame(txd[i])[:len(lp.frame)], lp.frame))
	}
	lp.tx.Transmit(txd[:m])
	socks := [2]*Socket{lp.rx, lp.tx}
	got := 0
	for tries := 0; got < m && tries < 1000; tries++ {
		lp.tx.Kick()
		n := lp.rx.Receive(rxd)
		if n == 0 {
			Wait(socks[:], time.Millisecond)
			continue
		}
		lp.rx.Release(rxd[:n])
		got += n
	}
	return got
}

// TestSocketLoopNoAllocs runs real frames through the kernel (veth, XDP,
// XSKMAP) and proves the whole path, syscalls included (Kick, Wait), does
// not allocate; it also checks BindMode and the kernel statistics.
func TestSocketLoopNoAllocs(t *testing.T) {
	lp := newLoopPair(t, Options{NumFrames: 256, RingSize: 64})
	if lp.rx.BindMode() != "copy" {
		t.Errorf("BindMode on veth = %q, want copy", lp.rx.BindMode())
	}
	txd, rxd := make([]Desc, 16), make([]Desc, 16)
	if got := lp.send(txd, rxd); got != 16 {
		t.Fatalf("loop delivered %d of 16 frames", got)
	}
	if a := testing.AllocsPerRun(50, func() { lp.send(txd, rxd) }); a != 0 {
		t.Errorf("%v allocations per 16-frame round trip, want 0", a)
	}
	st := lp.rx.Stats()
	if st.RxFrames < 16*51 || st.RxDropped != 0 || st.Misuse != 0 {
		t.Errorf("rx stats: %+v", st)
	}
	if ts := lp.tx.Stats(); ts.TxCompleted == 0 || ts.Kicks == 0 {
		t.Errorf("tx stats: %+v", ts)
	}
	if lp.bump.Stats().Inside.ToXSK < 16*51 {
		t.Errorf("classifier: %+v", lp.bump.Stats())
	}
}

// TestZeroCopyRefused: veth has no zero-copy; BindZeroCopy must fail with
// EOPNOTSUPP and BindAuto must fall back to copy mode.
func TestZeroCopyRefused(t *testing.T) {
	requireRoot(t)
	const ns = "xskt-zc"
	newNetns(t, ns)
	vethPair(t, ns, "z0", ns, "z1")
	idx := ifindexIn(t, ns, "z0")
	err := inNetns(ns, func() error {
		opt := Options{NumFrames: 64, RingSize: 32, Bind: BindZeroCopy}
		s, err := Open(idx, opt)
		if err == nil {
			s.Close()
			return errors.New("zero-copy bind on veth succeeded")
		}
		if !errors.Is(err, unix.EOPNOTSUPP) {
			return fmt.Errorf("zero-copy bind: %w, want EOPNOTSUPP", err)
		}
		opt.Bind = BindAuto
		if s, err = Open(idx, opt); err != nil {
			return err
		}
		if s.BindMode() != "copy" {
			s.Close()
			return fmt.Errorf("BindAuto gave %q, want copy", s.BindMode())
		}
		return checkClosed(s)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCrossedWorkers drives each socket's RX half and TX half from different
// goroutines, as a bump's workers do (worker i receives on port i and
// transmits on the other port), and checks every frame arrives intact and in
// order. Run with -race to check the halves share no unsynchronised state.
func TestCrossedWorkers(t *testing.T) {
	lp := newLoopPair(t, Options{NumFrames: 1024, RingSize: 256})
	const frames = 20000
	socks := [2]*Socket{lp.rx, lp.tx}
	errs := make(chan error, 2)
	for w := range 2 {
		go func() { errs <- crossedWorker(socks[w], socks[1-w], lp.frame, frames) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	for i, s := range socks {
		if st := s.Stats(); st.Misuse != 0 || st.RxDropped != 0 {
			t.Errorf("socket %d: %+v", i, st)
		}
	}
}

// crossedWorker sends n numbered frames on out and receives n on in.
func crossedWorker(in, out *Socket, tmpl []byte, n uint32) error {
	var rx, tx [32]Desc
	var sent, got uint32
	deadline := time.Now().Add(30 * time.Second)
	for got < n || sent < n {
		if time.Now().After(deadline) {
			return fmt.Errorf("timeout: sent %d, received %d of %d; rx %+v", sent, got, n, in.Stats())
		}
		if sent < n {
			m := out.GetTx(tx[:min(len(tx), int(n-sent))])
			for i := range m {
				f := out.Frame(tx[i])[:len(tmpl)]
				copy(f, tmpl)
				binary.BigEndian.PutUint32(f[len(f)-4:], sent+uint32(i))
				tx[i].Len = uint32(len(f))
			}
			q := out.Transmit(tx[:m])
			out.PutTx(tx[q:m])
			sent += uint32(q)
			if err := out.Kick(); err != nil {
				return err
			}
		}
		k := in.Receive(rx[:])
		for i := range k {
			f := in.Frame(rx[i])
			if len(f) != len(tmpl) || !bytes.Equal(f[:len(f)-4], tmpl[:len(tmpl)-4]) {
				return fmt.Errorf("frame %d corrupted: %x", got, f)
			}
			if seq := binary.BigEndian.Uint32(f[len(f)-4:]); seq != got {
				return fmt.Errorf("frame %d arrived as number %d", got, seq)
			}
			got++
		}
		in.Release(rx[:k])
		if k == 0 {
			if _, err := Wait([]*Socket{in}, time.Millisecond); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkClosed closes s and checks that using it afterwards is harmless.
func checkClosed(s *Socket) error {
	d := make([]Desc, 4)
	if s.GetTx(d) != 4 {
		return errors.New("GetTx before Close")
	}
	if err := s.Close(); err != nil {
		return err
	}
	if err := s.Close(); err != nil {
		return fmt.Errorf("second Close: %w", err)
	}
	s.Release(d)
	s.PutTx(d)
	if s.Receive(d) != 0 || s.GetTx(d) != 0 || s.Transmit(d) != 0 {
		return errors.New("closed socket moved frames")
	}
	if err := s.Kick(); !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("Kick after Close: %v", err)
	}
	if n, err := Wait([]*Socket{s}, time.Millisecond); n != 0 || err != nil {
		return fmt.Errorf("Wait after Close: %d, %v", n, err)
	}
	return nil
}

// BenchmarkVethRoundTrip measures real frames through the kernel: GetTx,
// Transmit, Kick on one socket, XDP classifier, Receive, Release on the
// other (ns per frame, copy mode, one CPU for both ends).
func BenchmarkVethRoundTrip(b *testing.B) {
	lp := newLoopPair(b, Options{})
	txd, rxd := make([]Desc, 64), make([]Desc, 64)
	b.ReportAllocs()
	b.SetBytes(int64(64 * len(lp.frame)))
	frames := 0
	for b.Loop() {
		frames += lp.send(txd, rxd)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(max(frames, 1)), "ns/frame")
}

// TestBindWaitsForBusyQueue: a socket opened while another still holds the
// queue waits for it (as a restarted daemon must while the kernel releases
// the old process's socket), and gives up with EBUSY after bindBusyWait.
func TestBindWaitsForBusyQueue(t *testing.T) {
	requireRoot(t)
	const ns = "xskt-busy"
	newNetns(t, ns)
	vethPair(t, ns, "b0", ns, "b1")
	idx := ifindexIn(t, ns, "b0")
	err := inNetns(ns, func() error {
		opt := Options{NumFrames: 64, RingSize: 32, Bind: BindCopy}
		first, err := Open(idx, opt)
		if err != nil {
			return err
		}
		start := time.Now()
		if s, err := Open(idx, opt); err == nil {
			s.Close()
			first.Close()
			return errors.New("second socket bound a queue that was taken")
		} else if !errors.Is(err, unix.EBUSY) {
			first.Close()
			return fmt.Errorf("second bind: %w, want EBUSY", err)
		}
		if waited := time.Since(start); waited < bindBusyWait {
			first.Close()
			return fmt.Errorf("gave up after %v, want at least %v", waited, bindBusyWait)
		}
		// Free the queue while the next Open waits: it must then succeed.
		go func() {
			time.Sleep(300 * time.Millisecond)
			first.Close()
		}()
		s, err := Open(idx, opt)
		if err != nil {
			return fmt.Errorf("open after the queue was freed: %w", err)
		}
		return s.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}
