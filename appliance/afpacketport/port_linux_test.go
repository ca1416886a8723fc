package afpacketport

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcpinc/tcpinc/afpacket"
	"github.com/tcpinc/tcpinc/bump"
)

// The packet-in/packet-out tests run over one veth pair x <-> y in namespace
// afpp-pkt: a Port on x, a plain afpacket socket on y.

const nsPkt = "afpp-pkt"

func newPair(t *testing.T) {
	requireRoot(t)
	newNetns(t, nsPkt)
	// IPv6 off before the links come up: up first, they could already
	// send autoconfiguration frames the tests would read.
	sh(t, "ip", "-n", nsPkt, "link", "add", "x", "type", "veth", "peer", "name", "y")
	noIPv6(t, nsPkt, "x", "y")
	sh(t, "ip", "-n", nsPkt, "link", "set", "x", "up")
	sh(t, "ip", "-n", nsPkt, "link", "set", "y", "up")
}

// vnetFrame is a frame to write from y with its virtio_net_hdr.
type vnetFrame struct {
	f []byte
	h afpacket.VnetHdr
}

func writeVnet(t *testing.T, s *afpacket.Socket, frames []vnetFrame) {
	t.Helper()
	const off = afpacket.VnetHdrLen
	bufs := make([][]byte, len(frames))
	sizes := make([]int, len(frames))
	for i, v := range frames {
		bufs[i] = make([]byte, off+len(v.f))
		_ = v.h.Encode(bufs[i])
		copy(bufs[i][off:], v.f)
		sizes[i] = len(v.f)
	}
	if n, err := s.Write(bufs, sizes, off); n != len(frames) || err != nil {
		t.Fatalf("Write: %d of %d, %v", n, len(frames), err)
	}
	if st := s.Stats(); st.TxErrors != 0 || st.TxDropped != 0 {
		t.Fatalf("y refused frames: %+v", st)
	}
}

// udpFrame is an IPv4 UDP frame with a partial checksum (the pseudo-header
// sum in the field) and its header.
func udpFrame(payload []byte) ([]byte, afpacket.VnetHdr) {
	f := seg{}.build()[:34] // Ethernet and IPv4 header, fixed below
	f = append([]byte{}, f...)
	f[23] = protoUDP
	binary.BigEndian.PutUint16(f[16:], uint16(20+8+len(payload)))
	f = binary.BigEndian.AppendUint16(f, 5353)
	f = binary.BigEndian.AppendUint16(f, 53)
	f = binary.BigEndian.AppendUint16(f, uint16(8+len(payload)))
	f = append(f, 0, 0)
	f = append(f, payload...)
	f[24], f[25] = 0, 0
	binary.BigEndian.PutUint16(f[24:], ^csum(f[14:34], 0))
	ps := csum(f[26:34], protoUDP+uint32(8+len(payload)))
	binary.BigEndian.PutUint16(f[40:], ps)
	return f, afpacket.VnetHdr{Flags: afpacket.FlagNeedsCsum, CsumStart: 34, CsumOffset: 6}
}

// sctpFrame is an IPv4 SCTP frame whose CRC32c is left for the receiver
// (NETIF_F_SCTP_CRC).
func sctpFrame() ([]byte, afpacket.VnetHdr) {
	f, _ := udpFrame(make([]byte, 20))
	f[23] = protoSCTP
	f[24], f[25] = 0, 0
	binary.BigEndian.PutUint16(f[24:], ^csum(f[14:34], 0))
	clear(f[34+8 : 34+12])
	return f, afpacket.VnetHdr{Flags: afpacket.FlagNeedsCsum, CsumStart: 34, CsumOffset: 8}
}

// TestReceive: what the kernel hands over reaches the worker with complete
// checksums and the segment size of a super-segment; malformed frames are
// dropped and counted, never passed on.
func TestReceive(t *testing.T) {
	newPair(t)
	px := openPort(t, nsPkt, "x", Options{})
	y := openSocket(t, nsPkt, "y", afpacket.Options{VnetHdr: true})

	small := seg{seq: 10, ack: 20, id: 1, payload: 300}.build()
	hSmall, err := afpacket.PrepareGSO(small, 1448) // partial checksum, no GSO
	if err != nil {
		t.Fatal(err)
	}
	super := seg{seq: 1000, ack: 20, id: 2, payload: 40000, tsval: 9}.build()
	hSuper, err := afpacket.PrepareGSO(super, 1448)
	if err != nil || !hSuper.IsGSO() {
		t.Fatalf("PrepareGSO: %+v %v", hSuper, err)
	}
	super6 := seg{v6: true, seq: 5, ack: 20, payload: 5000}.build()
	hSuper6, _ := afpacket.PrepareGSO(super6, 1000)
	udp, hUDP := udpFrame([]byte("hello, partial checksum"))
	sctp, hSCTP := sctpFrame()
	plain := seg{seq: 77, ack: 20, id: 3, payload: 100}.build() // complete checksum, no flags
	arp := append(make([]byte, 12), 0x08, 0x06)
	arp = append(arp, make([]byte, 46)...)

	tooLong := seg{seq: 1, ack: 1, payload: 50}.build()
	binary.BigEndian.PutUint16(tooLong[16:], 2000) // IP length beyond the frame
	badDoff := seg{seq: 1, ack: 1, payload: 10}.build()
	badDoff[46] = 0xf0 // a 60-byte TCP header in 30 bytes
	csumAt := seg{seq: 1, ack: 1, payload: 64}.build()
	hCsumAt := afpacket.VnetHdr{Flags: afpacket.FlagNeedsCsum, CsumStart: 34, CsumOffset: 6} // not TCP's checksum field

	writeVnet(t, y, []vnetFrame{
		{small, hSmall}, {tooLong, afpacket.VnetHdr{}}, {super, hSuper}, {badDoff, afpacket.VnetHdr{}},
		{super6, hSuper6}, {udp, hUDP}, {csumAt, hCsumAt}, {sctp, hSCTP}, {plain, afpacket.VnetHdr{}}, {arp, afpacket.VnetHdr{}},
	})
	got, gso := receiveAll(t, px, 7)
	if len(got) != 7 {
		t.Fatalf("received %d frames, want 7 (3 malformed dropped); stats %+v", len(got), px.Stats())
	}
	wantGSO := []uint16{0, 1448, 1000, 0, 0, 0, 0}
	for i, f := range got[:3] {
		p, err := afpacket.ParseTCP(f)
		if err != nil || !afpacket.TCPChecksumOK(f, p) {
			t.Errorf("TCP frame %d: %v, checksum complete: %v", i, err, err == nil && afpacket.TCPChecksumOK(f, p))
		}
	}
	for i := range got {
		if gso[i] != wantGSO[i] {
			t.Errorf("frame %d: Desc.GSO %d, want %d", i, gso[i], wantGSO[i])
		}
	}
	if u := got[3]; csum(u[34:], uint32(csum(u[26:34], protoUDP+uint32(len(u)-34)))) != 0xffff {
		t.Errorf("UDP checksum not completed: %x", u)
	}
	if s := got[4]; binary.LittleEndian.Uint32(s[42:]) != crc32c0(s[34:]) {
		t.Errorf("SCTP CRC32c not completed: %x", s)
	}
	if !bytes.Equal(got[5], plain) || !bytes.Equal(got[6][:len(arp)], arp) {
		t.Error("a frame without offload changed on the way")
	}
	st := px.Stats()
	t.Logf("x: %+v", st)
	want := Stats{RxFrames: 7, RxSuperSegments: 2, RxSegments: 28 + 5, RxChecksumsCompleted: 5, RxBad: 3}
	st.TxFrames, st.RxKernelDrops = 0, 0
	if st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
}

// TestWaitPairSkipsIdlePort: after WaitPair, Receive on the port poll(2)
// found nothing to read on returns nothing without asking the socket, once;
// a frame that came meanwhile is read by the Receive after.
func TestWaitPairSkipsIdlePort(t *testing.T) {
	newPair(t)
	px := openPort(t, nsPkt, "x", Options{})
	py := openPort(t, nsPkt, "y", Options{})
	frame := func(i int) []vnetFrame {
		return []vnetFrame{{seg{seq: uint32(10 + 100*i), ack: 20, id: uint16(i), payload: 100}.build(), afpacket.VnetHdr{}}}
	}
	// A frame sent from y's peer socket arrives at x.
	sy := openSocket(t, nsPkt, "y", afpacket.Options{VnetHdr: true})
	writeVnet(t, sy, frame(1))
	if handled, _, err := px.WaitPair(py, nil, 5*time.Second); !handled || err != nil {
		t.Fatalf("WaitPair: %v %v", handled, err)
	}
	sx := openSocket(t, nsPkt, "x", afpacket.Options{VnetHdr: true})
	writeVnet(t, sx, frame(2)) // arrives at y after the poll: y skips one Receive
	time.Sleep(50 * time.Millisecond)
	d := make([]bump.Desc, 8)
	if n := px.Receive(d); n != 1 {
		t.Fatalf("x after WaitPair: %d frames, want 1", n)
	}
	px.Release(d[:1])
	if n := py.Receive(d); n != 0 {
		t.Fatalf("y right after WaitPair found it idle: %d frames, want 0 (skipped)", n)
	}
	if n := py.Receive(d); n != 1 {
		t.Fatalf("y's next Receive: %d frames, want the frame that came after the poll", n)
	}
	py.Release(d[:1])
}

// crc32c0 is SCTP's CRC32c of an SCTP packet, its checksum field counted
// as zero.
func crc32c0(pkt []byte) uint32 {
	c := append([]byte{}, pkt...)
	clear(c[8:12])
	return crc32.Checksum(c, crc32.MakeTable(crc32.Castagnoli))
}

// transmit sends frames through p as a worker does (GetTx, fill,
// Transmit, Kick); gso[i] is frame i's Desc.GSO.
func transmit(t *testing.T, p *Port, frames [][]byte, gso []uint16) {
	t.Helper()
	d := make([]bump.Desc, len(frames))
	if n := p.GetTx(d); n != len(frames) {
		t.Fatalf("GetTx: %d of %d", n, len(frames))
	}
	for i, f := range frames {
		d[i].Len = uint32(copy(p.Frame(d[i])[:cap(p.Frame(d[i]))], f))
		d[i].GSO = gso[i]
	}
	if n := p.Transmit(d); n != len(d) {
		t.Fatalf("Transmit: %d of %d", n, len(d))
	}
	if err := p.Kick(); err != nil {
		t.Fatal(err)
	}
}

// readWant reads frames from y until it has as many as want, and checks
// they are want's frames (sameFrame), in order; px is the sending port.
func readWant(t *testing.T, y *afpacket.Socket, px *Port, want [][]byte) {
	t.Helper()
	got := readAll(t, y, 0, len(want))
	if len(got) != len(want) {
		t.Fatalf("y read %d frames, want %d; x %+v", len(got), len(want), px.Stats())
	}
	for i := range want {
		if !sameFrame(got[i], want[i]) {
			t.Errorf("frame %d differs:\n got  %x\n want %x", i, got[i], want[i])
		}
	}
}

// TestTransmit: frames of one flow that the kernel's segmentation gives
// back exactly leave as one GSO frame, and the kernel (x has no TSO, GSO or
// checksum offload, so it segments in software) delivers exactly the frames
// that went in; a super-segment with Desc.GSO leaves cut at its segment
// size; nothing is reordered.
func TestTransmit(t *testing.T) {
	newPair(t)
	ethtoolK(t, nsPkt, "x", "tx", "off", "tso", "off", "gso", "off")
	px := openPort(t, nsPkt, "x", Options{Slots: 32})
	y := openSocket(t, nsPkt, "y", afpacket.Options{})

	a := flowOf(seg{seq: 0xfffffe00, ack: 9, id: 0xfffe, tsval: 3}, 1448, 1448, 1448, 1448, 1448, 1448, 1448, 1448, 1448, 500)
	a[9].flags = tcpPSH
	b := flowOf(seg{v6: true, srcPort: 7, seq: 50, ack: 9, tsval: 4}, 1428, 1428, 1428)
	c := flowOf(seg{seq: 3000, ack: 9, id: 40}, 1000, 1000, 1000, 1000)
	super := seg{seq: 100000, ack: 9, id: 80, payload: 5000, flags: tcpPSH}.build()
	super[50] ^= 0xff // its checksum field: PrepareGSO writes it anew
	arp := append(make([]byte, 12), 0x08, 0x06)
	arp = append(arp, make([]byte, 46)...)

	var in [][]byte
	in = append(in, buildAll(a)...)     // 10 frames: one GSO frame
	in = append(in, buildAll(b[:2])...) // 2: one GSO frame
	in = append(in, arp)
	in = append(in, buildAll(b[2:])...) // alone: the ARP frame came between
	in = append(in, buildAll(c[:2])...)
	cs := buildAll(c[2:])
	cs[0][20] = 0 // flow c: the third frame without DF ends the run
	setSums(cs[0], 14, 34, len(cs[0]), false)
	in = append(in, cs...)
	// Flow e as the engine builds it: one IPv4 ID for all its frames.
	in = append(in, buildAll(sameID(flowOf(seg{srcPort: 9, seq: 1, ack: 9, id: 555}, 800, 800, 300)))...)
	// Flows behind a VLAN tag.
	in = append(in, buildAll(flowOf(seg{vlan: true, srcPort: 10, seq: 1, ack: 9, id: 7}, 1000, 1000, 1000))...)
	in = append(in, buildAll(flowOf(seg{vlan: true, v6: true, srcPort: 11, seq: 1, ack: 9}, 1000, 10))...)
	in = append(in, super)
	gso := make([]uint16, len(in))
	gso[len(in)-1] = 1448
	transmit(t, px, in, gso)

	// What y must see: the frames as they went in, the super-segment as
	// the kernel cuts it.
	want := append([][]byte{}, in[:len(in)-1]...)
	segs := make([][]byte, 8)
	for i := range segs {
		segs[i] = make([]byte, 2000)
	}
	sizes := make([]int, len(segs))
	fixed := append([]byte{}, super...)
	k, err := afpacket.Segment(fixed, 1448, segs, sizes)
	if err != nil {
		t.Fatal(err)
	}
	for i := range k {
		want = append(want, segs[i][:sizes[i]])
	}
	readWant(t, y, px, want)
	st := px.Stats()
	t.Logf("x: %+v", st)
	// Merged: a (10 -> 1), b[:2] (2 -> 1), c[:2] (2 -> 1), e (3 -> 1),
	// the VLAN flows (3 -> 1, 2 -> 1); alone: arp, b[2], c[2], c[3]; the
	// super-segment with its own GSO header.
	if st.TxCoalesced != 9+1+1+2+2+1 || st.TxSuperSegments != 7 || st.TxSegments != 10+2+2+3+3+2+4 || st.TxErrors != 0 || st.TxDropped != 0 {
		t.Errorf("stats %+v", st)
	}
	if st.TxFrames != 11 {
		t.Errorf("%d frames sent, want 11", st.TxFrames)
	}
	// Every TX slot is free again.
	d := make([]bump.Desc, 64)
	if n := px.GetTx(d); n != 32 {
		t.Errorf("%d TX slots free after sending, want 32", n)
	}
	// The worker's round allocates nothing: Receive (nothing to read),
	// GetTx, Transmit and Kick of a merged run.
	run := buildAll(flowOf(seg{seq: 1, ack: 1, id: 1}, 1000, 1000, 1000))
	if a := testing.AllocsPerRun(50, func() {
		px.Receive(d)
		k := px.GetTx(d[:len(run)])
		for i := range k {
			d[i].Len = uint32(copy(px.Frame(d[i])[:cap(px.Frame(d[i]))], run[i]))
		}
		px.Transmit(d[:k])
		_ = px.Kick()
	}); a != 0 {
		t.Errorf("%v allocations per round", a)
	}
}

// TestTransmitPartial: frames queued with bump.CsumPartial (the engine's,
// its TCP checksum left to the port) leave with their sums computed by the
// kernel: merged runs, frames alone (PSH, FIN, a run's break), IPv6 and
// VLAN-tagged ones. x has no checksum offload, so the kernel sums in
// software and y reads exactly the frames with whole checksums. A frame
// queued whole next to them is left as it is.
func TestTransmitPartial(t *testing.T) {
	newPair(t)
	ethtoolK(t, nsPkt, "x", "tx", "off", "tso", "off", "gso", "off")
	px := openPort(t, nsPkt, "x", Options{Slots: 32})
	y := openSocket(t, nsPkt, "y", afpacket.Options{})

	a := sameID(flowOf(seg{seq: 1, ack: 9, id: 3, tsval: 3}, 1448, 1448, 1448, 700))
	a[3].flags = tcpPSH
	fin := seg{srcPort: 5, seq: 70, ack: 9, id: 4, payload: 10, flags: tcpFIN}
	v6 := flowOf(seg{v6: true, srcPort: 7, seq: 50, ack: 9, tsval: 4}, 1428, 1428)
	vlan := sameID(flowOf(seg{vlan: true, srcPort: 10, seq: 1, ack: 9, id: 7}, 1000, 1000))
	whole := seg{srcPort: 12, seq: 1, ack: 9, id: 9, payload: 100}

	var want [][]byte
	var partial []bool
	add := func(ss []seg, p bool) {
		for _, f := range buildAll(ss) {
			want = append(want, f)
			partial = append(partial, p)
		}
	}
	add(a, true)
	add([]seg{fin}, true)
	add(v6, true)
	add([]seg{whole}, false)
	add(vlan, true)

	d := make([]bump.Desc, len(want))
	if n := px.GetTx(d); n != len(d) {
		t.Fatalf("GetTx: %d of %d", n, len(d))
	}
	for i, f := range want {
		b := px.Frame(d[i])[:cap(px.Frame(d[i]))]
		d[i].Len = uint32(copy(b, f))
		if partial[i] {
			p, err := afpacket.ParseTCP(b[:len(f)])
			if err != nil {
				t.Fatal(err)
			}
			b[p.L4+16], b[p.L4+17] = 0xde, 0xad // no sum: the port's to compute
			d[i].Csum = bump.CsumPartial
		}
	}
	if n := px.Transmit(d); n != len(d) {
		t.Fatalf("Transmit: %d of %d", n, len(d))
	}
	if err := px.Kick(); err != nil {
		t.Fatal(err)
	}
	readWant(t, y, px, want)
	// Merged: a (4 -> 1), v6 (2 -> 1), vlan (2 -> 1); alone: fin, whole.
	if st := px.Stats(); st.TxCoalesced != 3+1+1 || st.TxFrames != 5 || st.TxErrors != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestTransmitZeroLength: a frame committed with no bytes is counted and
// its slot comes back; the frames after it still leave.
func TestTransmitZeroLength(t *testing.T) {
	newPair(t)
	px := openPort(t, nsPkt, "x", Options{Slots: 4})
	y := openSocket(t, nsPkt, "y", afpacket.Options{})
	f := seg{seq: 1, ack: 1, id: 1, payload: 10}.build()
	transmit(t, px, [][]byte{{}, f}, []uint16{0, 0})
	if got := readAll(t, y, 0, 1); len(got) != 1 || !bytes.Equal(got[0], f) {
		t.Fatalf("read %d frames", len(got))
	}
	if st := px.Stats(); st.TxErrors != 1 || st.TxFrames != 1 {
		t.Errorf("stats %+v", st)
	}
	if n := px.GetTx(make([]bump.Desc, 8)); n != 4 {
		t.Errorf("%d TX slots free, want 4", n)
	}
}

// slowPair gives the pair a slow sender: x's qdisc a token bucket of the
// given rate, burst and limit, a Port on x with slots slots and a 32 KiB
// send buffer, so that its socket fills; and y's socket with a receive
// buffer of rcvbuf bytes, room for everything x sends before y is read,
// whatever the machine's rmem_default and the skbs' truesize.
func slowPair(t *testing.T, slots int, rate, burst, limit string, rcvbuf int) (*Port, *afpacket.Socket) {
	t.Helper()
	sh(t, "ip", "netns", "exec", nsPkt, "tc", "qdisc", "add", "dev", "x", "root", "tbf", "rate", rate, "burst", burst, "limit", limit)
	px := openPort(t, nsPkt, "x", Options{Slots: slots})
	if err := unix.SetsockoptInt(px.sock.Fd(), unix.SOL_SOCKET, unix.SO_SNDBUF, 32<<10); err != nil {
		t.Fatal(err)
	}
	y := openSocket(t, nsPkt, "y", afpacket.Options{})
	if err := unix.SetsockoptInt(y.Fd(), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf); err != nil {
		t.Fatal(err)
	}
	return px, y
}

// drain has px send what waits for room in its socket (Wait), for up to
// 10 s.
func drain(t *testing.T, px *Port) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); px.pending() && time.Now().Before(deadline); {
		if err := px.Wait(20 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTransmitBackpressure: when the socket's send buffer is full (x's
// qdisc holds the frames: a slow token bucket), Kick keeps the rest in
// order and Wait sends it as room comes; nothing is dropped or reordered,
// and the slots of waiting frames stay taken until they are sent.
func TestTransmitBackpressure(t *testing.T) {
	newPair(t)
	const n = 200
	px, y := slowPair(t, n, "20mbit", "16kb", "4mb", 4<<20)
	in := make([][]byte, n)
	for i := range in {
		f := make([]byte, 1000)
		copy(f, []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x88, 0xb5}) // local experimental EtherType
		binary.BigEndian.PutUint32(f[14:], uint32(i))
		in[i] = f
	}
	transmit(t, px, in, make([]uint16, n))
	if !px.pending() {
		t.Fatalf("all %d frames went at once: the send buffer never filled (%+v)", n, px.Stats())
	}
	held := n - px.GetTx(make([]bump.Desc, n))
	t.Logf("after Kick: %d frames wait for room, their slots held", held)
	drain(t, px)
	got := readAll(t, y, 0, n) // y's receive buffer holds them all
	if len(got) != n {
		t.Fatalf("y read %d frames, want %d; x %+v", len(got), n, px.Stats())
	}
	for i, f := range got {
		if !bytes.Equal(f[:len(in[i])], in[i]) {
			t.Fatalf("frame %d is frame %d", i, binary.BigEndian.Uint32(f[14:]))
		}
	}
	if st := px.Stats(); st.TxFrames != n || st.TxDropped != 0 || st.TxErrors != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestWaitPair: one poll over both ports and the worker's wake source ends
// on a frame for either port or on the wake, and only then.
func TestWaitPair(t *testing.T) {
	newPair(t)
	px := openPort(t, nsPkt, "x", Options{})
	py := openPort(t, nsPkt, "y", Options{})
	wake := bump.NewWake()
	if err := wake.OpenFd(); err != nil {
		t.Fatal(err)
	}
	defer wake.CloseFd()
	// Idle: no frame, no wake. A frame that still comes (the kernel's own
	// on a fresh link) ends a wait rightly: then the wait is measured again.
	descs := make([]bump.Desc, 64)
	for try := 1; ; try++ {
		start := time.Now()
		if handled, woke, err := px.WaitPair(py, wake, 50*time.Millisecond); !handled || woke || err != nil {
			t.Fatalf("idle: %v %v %v", handled, woke, err)
		}
		d := time.Since(start)
		if d >= 40*time.Millisecond {
			break
		}
		frames := 0
		for _, p := range []*Port{px, py} {
			n := p.Receive(descs)
			frames += n
			p.Release(descs[:n])
		}
		if frames == 0 || try == 5 {
			t.Fatalf("an idle wait ended after %v (try %d, %d frames there)", d, try, frames)
		}
		t.Logf("a wait ended after %v on %d frame(s) nobody sent here; measured again", d, frames)
	}
	wake.Signal()
	if handled, woke, err := px.WaitPair(py, wake, 5*time.Second); !handled || !woke || err != nil {
		t.Fatalf("signalled: %v %v %v", handled, woke, err)
	}
	wake.Drain()
	// A frame sent from x arrives at y: the wait ends without the wake.
	transmit(t, px, [][]byte{seg{seq: 1, ack: 1, payload: 10}.build()}, []uint16{0})
	start := time.Now()
	if handled, woke, err := px.WaitPair(py, wake, 5*time.Second); !handled || woke || err != nil || time.Since(start) > 2*time.Second {
		t.Fatalf("frame for y: %v %v %v after %v", handled, woke, err, time.Since(start))
	}
	if got, _ := receiveAll(t, py, 1); len(got) != 1 {
		t.Fatalf("y received %d frames", len(got))
	}
	if handled, _, _ := px.WaitPair(nil, wake, 0); handled {
		t.Error("WaitPair with a port of another kind claimed it")
	}
}

// TestTransmitBypassFallsBack: with the queue bypass (what tcpincd opens),
// the kernel drops a super-segment the device would have to segment in
// software: x without TSO, or a frame as long as x's gso_max_size (65536).
// The port turns the bypass off at that first drop and sends the frame
// again through the queueing layer, which segments it: y gets every
// segment, nothing is counted dropped, and later super-segments go the
// same way.
func TestTransmitBypassFallsBack(t *testing.T) {
	for _, c := range []struct {
		name    string
		tsoOff  bool
		payload int
		gso     int
	}{
		{"device without TSO", true, 5000, 1448},
		{"frame of 65,549 bytes", false, 65495, 1364},
	} {
		t.Run(c.name, func(t *testing.T) {
			newPair(t)
			if c.tsoOff {
				ethtoolK(t, nsPkt, "x", "tso", "off", "gso", "off")
			}
			px := openPort(t, nsPkt, "x", Options{Slots: 32, QdiscBypass: true})
			y := openSocket(t, nsPkt, "y", afpacket.Options{})
			for i := range 2 {
				super := seg{seq: uint32(1000 + i*c.payload), ack: 9, id: 80, payload: c.payload}.build()
				transmit(t, px, [][]byte{super}, []uint16{uint16(c.gso)})
				segs := make([][]byte, 64)
				for j := range segs {
					segs[j] = make([]byte, 2000)
				}
				sizes := make([]int, len(segs))
				k, err := afpacket.Segment(append([]byte{}, super...), c.gso, segs, sizes)
				if err != nil {
					t.Fatal(err)
				}
				got := readAll(t, y, 0, k)
				if len(got) != k {
					t.Fatalf("super-segment %d: y read %d frames, want %d; x %+v", i, len(got), k, px.Stats())
				}
				for j := range k {
					// x's checksum offload may leave the TCP sum partial:
					// the payload and the other headers are what counts.
					setSums(got[j], 14, 34, len(got[j]), false)
					if !sameFrame(got[j], segs[j][:sizes[j]]) {
						t.Fatalf("super-segment %d, segment %d differs", i, j)
					}
				}
			}
			if st := px.Stats(); st.BypassOff != 1 || st.TxDropped != 0 || st.TxErrors != 0 || st.TxFrames != 2 {
				t.Errorf("stats %+v, want the bypass turned off once, 2 frames sent, none dropped", st)
			}
		})
	}
}
