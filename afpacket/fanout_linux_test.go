package afpacket

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/flow"
)

// keyFrame is an Ethernet frame of k's flow: TCP (proto 6) unless proto
// says otherwise, ipOpts bytes of IPv4 options, frag setting IPv4's MF bit,
// ext putting a hop-by-hop header in front of IPv6's next header.
type keyFrame struct {
	k      flow.Key
	proto  byte
	ipOpts int
	frag   bool
	ext    bool
}

func (s keyFrame) bytes() []byte {
	proto := s.proto
	if proto == 0 {
		proto = protoTCP
	}
	f := []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1}
	var l4 []byte
	if s.k.Family == 6 {
		f = append(f, 0x86, 0xdd)
		ip := make([]byte, 40)
		ip[0], ip[6], ip[7] = 0x60, proto, 64
		copy(ip[8:], s.k.Src[:])
		copy(ip[24:], s.k.Dst[:])
		if s.ext {
			ip[6] = 0 // hop-by-hop, then the protocol
			ip = append(ip, proto, 0, 1, 4, 0, 0, 0, 0)
		}
		f = append(f, ip...)
	} else {
		f = append(f, 0x08, 0x00)
		ip := make([]byte, 20+s.ipOpts)
		ip[0] = 0x40 | byte(len(ip)/4)
		ip[8], ip[9] = 64, proto
		if s.frag {
			ip[6] = 0x20 // MF
		}
		copy(ip[12:], s.k.Src[:4])
		copy(ip[16:], s.k.Dst[:4])
		for i := 20; i < len(ip); i++ {
			ip[i] = 1 // NOP options
		}
		f = append(f, ip...)
	}
	l4 = make([]byte, 20)
	binary.BigEndian.PutUint16(l4[0:], s.k.SrcPort)
	binary.BigEndian.PutUint16(l4[2:], s.k.DstPort)
	l4[12] = 5 << 4
	l4[13] = 0x10
	f = append(f, l4...)
	if s.k.Family == 6 {
		binary.BigEndian.PutUint16(f[14+4:], uint16(len(f)-14-40))
	} else {
		binary.BigEndian.PutUint16(f[14+2:], uint16(len(f)-14))
	}
	return f
}

func randKey(r *rand.Rand, family uint8) flow.Key {
	k := flow.Key{Family: family, SrcPort: uint16(r.Uint32()), DstPort: uint16(r.Uint32())}
	n := 4
	if family == 6 {
		n = 16
	}
	for i := range n {
		k.Src[i], k.Dst[i] = byte(r.Uint32()), byte(r.Uint32())
	}
	return k
}

// TestFanoutProgram runs the kernel's verifier and the program itself
// (BPF_PROG_TEST_RUN) on frames of many flows: it must return
// flow.FanoutHash for TCP in both directions, the ports-free hash for
// fragments, other protocols and IPv6 extension headers, and 0 for
// what is not IP.
func TestFanoutProgram(t *testing.T) {
	requireRoot(t)
	prog, err := FanoutProgram()
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	run := func(f keyFrame) uint32 {
		t.Helper()
		ret, _, err := prog.Test(f.bytes())
		if err != nil {
			t.Fatalf("test run: %v", err)
		}
		return ret
	}
	noPorts := func(k flow.Key) uint32 { k.SrcPort, k.DstPort = 0, 0; return flow.FanoutHash(k) }
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 400 {
		family := uint8(4)
		if i%2 == 1 {
			family = 6
		}
		k := randKey(r, family)
		want := flow.FanoutHash(k)
		if want != flow.FanoutHash(k.Reverse()) {
			t.Fatalf("FanoutHash not symmetric for %v", k)
		}
		for _, f := range []keyFrame{{k: k}, {k: k.Reverse()}} {
			if got := run(f); got != want {
				t.Fatalf("%v: program %#x, flow.FanoutHash %#x", f.k, got, want)
			}
		}
		if family == 4 {
			if got := run(keyFrame{k: k, ipOpts: 8}); got != want {
				t.Fatalf("%v with IP options: %#x, want %#x", k, got, want)
			}
			if got := run(keyFrame{k: k, frag: true}); got != noPorts(k) {
				t.Fatalf("%v fragment: %#x, want the ports-free %#x", k, got, noPorts(k))
			}
		} else if got := run(keyFrame{k: k, ext: true}); got != noPorts(k) {
			t.Fatalf("%v behind an extension header: %#x, want the ports-free %#x", k, got, noPorts(k))
		}
		if got := run(keyFrame{k: k.Reverse(), proto: 17}); got != noPorts(k) {
			t.Fatalf("%v UDP: %#x, want the ports-free %#x", k, got, noPorts(k))
		}
	}
	arp := make([]byte, 60)
	arp[12], arp[13] = 0x08, 0x06
	if ret, _, err := prog.Test(arp); err != nil || ret != 0 {
		t.Fatalf("ARP: %d, %v; want 0", ret, err)
	}
}

// TestJoinFanoutSteers: frames of many flows, both directions, sent into a
// veth arrive at the fanout member flow.Fanout names and at no other, and
// what a member sends does not come back to the group.
func TestJoinFanoutSteers(t *testing.T) {
	requireRoot(t)
	const ns = "afpt-fanout"
	quietVeth(t, ns)
	x := openIn(t, ns, "x", Options{})
	const n = 3
	members := make([]*Socket, n)
	for i := range members {
		members[i] = openIn(t, ns, "y", Options{})
	}
	if err := JoinFanout(members); err != nil {
		t.Fatal(err)
	}
	fan := flow.NewFanout(n)
	r := rand.New(rand.NewPCG(3, 4))
	var frames [][]byte
	var want []int
	for i := range 60 {
		k := randKey(r, uint8(4+2*(i%2)))
		for _, kk := range []flow.Key{k, k.Reverse()} {
			frames = append(frames, keyFrame{k: kk}.bytes())
			want = append(want, fan.Queue(kk))
		}
	}
	sizes := make([]int, len(frames))
	for i, f := range frames {
		sizes[i] = len(f)
	}
	for done := 0; done < len(frames); {
		sent, err := x.Write(frames[done:], sizes[done:], 0) // a batch at a time
		if sent == 0 || err != nil {
			t.Fatalf("Write: %d of %d, %v", done, len(frames), err)
		}
		done += sent
	}
	// Member 0 sends one frame out of y: it must reach x, not the group.
	echo := keyFrame{k: randKey(r, 4)}.bytes()
	if sent, err := members[0].Write([][]byte{echo}, []int{len(echo)}, 0); sent != 1 || err != nil {
		t.Fatalf("member 0 Write: %v", err)
	}

	got := map[string]int{} // frame -> member
	buf := make([][]byte, 16)
	for i := range buf {
		buf[i] = make([]byte, MaxFrame)
	}
	bs := make([]int, len(buf))
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		idle := true
		for m, s := range members {
			k, err := s.Read(buf, bs, 0)
			if err != nil {
				t.Fatal(err)
			}
			for i := range k {
				f := string(buf[i][:bs[i]])
				if prev, dup := got[f]; dup {
					t.Fatalf("a frame reached members %d and %d", prev, m)
				}
				got[f] = m
				idle = false
			}
		}
		if idle && len(got) >= len(frames) {
			break
		}
		if idle {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if m, ok := got[string(echo)]; ok {
		t.Errorf("member %d received what member 0 sent", m)
	}
	per := make([]int, n)
	for i, f := range frames {
		m, ok := got[string(f)]
		if !ok {
			t.Fatalf("frame %d never arrived", i)
		}
		if m != want[i] {
			t.Errorf("frame %d at member %d, flow.Fanout says %d", i, m, want[i])
		}
		per[m]++
	}
	for m, c := range per {
		if c == 0 {
			t.Errorf("member %d received nothing of %d frames: %v", m, len(frames), per)
		}
	}
}
