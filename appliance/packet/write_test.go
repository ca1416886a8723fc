package packet_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/packet"
	pt "github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// randomTCPFrame builds a valid TCP frame with random family, tags, IP
// options/extension headers, TCP options and payload, and trailing padding.
func randomTCPFrame(r *rand.Rand) []byte {
	f := pt.Frame{Src: pt.HostA4, Dst: pt.HostB4}
	if r.IntN(2) == 0 {
		f.Src, f.Dst = pt.HostA6, pt.HostB6
		if r.IntN(2) == 0 {
			f.Ext = []pt.Ext{{Proto: packet.ProtoDstOpts, Data: make([]byte, 6+8*r.IntN(3))}}
		}
	} else if r.IntN(2) == 0 {
		f.IPv4Options = make([]byte, 4*(1+r.IntN(10)))
		for i := range f.IPv4Options {
			f.IPv4Options[i] = 1 // NOP
		}
	}
	for range r.IntN(3) {
		f.Tags = append(f.Tags, pt.Tag{TPID: 0x8100, TCI: uint16(r.Uint32())})
	}
	var opts []byte
	if r.IntN(2) == 0 {
		opts = append(opts, 1) // odd alignment for what follows
	}
	opts = append(opts, pt.MSSOption(uint16(r.Uint32()))...)
	if r.IntN(2) == 0 {
		opts = append(opts, pt.TimestampOption(r.Uint32(), r.Uint32())...)
	}
	payload := make([]byte, r.IntN(1500))
	for i := range payload {
		payload[i] = byte(r.Uint32())
	}
	f.TCP = &pt.TCP{SrcPort: uint16(r.Uint32()), DstPort: uint16(r.Uint32()), Seq: r.Uint32(), Ack: r.Uint32(),
		Flags: uint8(r.Uint32()), Window: uint16(r.Uint32()), Options: opts, Payload: payload}
	f.Padding = r.IntN(3) * 7
	return f.Bytes()
}

// tcpChecksumOK checks the TCP checksum of frame with the reference code.
func recomputedEqual(t *testing.T, p *packet.Packet) {
	t.Helper()
	if !p.VerifyL4Checksum() {
		t.Fatalf("TCP checksum no longer verifies")
	}
	if p.IPVersion() == 4 && !p.VerifyIPv4Checksum() {
		t.Fatalf("IPv4 checksum no longer verifies")
	}
	// And the stored value equals a from-scratch recomputation bit for bit
	// (not just an equivalent ones' complement zero).
	c := append([]byte(nil), p.Frame()...)
	var q packet.Packet
	if err := q.Decode(c); err != nil {
		t.Fatal(err)
	}
	q.FixL4Checksum()
	q.FixIPv4Checksum()
	if !bytes.Equal(c, p.Frame()) {
		t.Fatalf("incremental checksum differs from full recompute")
	}
}

// TestIncrementalEqualsRecompute is the property test of the writers: on random
// frames, every in-place rewrite leaves exactly the checksum a full
// recomputation gives.
func TestIncrementalEqualsRecompute(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var p packet.Packet
	for i := 0; i < 3000; i++ {
		frame := randomTCPFrame(r)
		if err := p.Decode(frame); err != nil {
			t.Fatalf("random frame %d: %v", i, err)
		}
		var err error
		switch i % 7 {
		case 0:
			err = p.SetSeq(r.Uint32())
		case 1:
			err = p.SetAck(r.Uint32())
		case 2:
			err = p.SetWindow(uint16(r.Uint32()))
		case 3:
			err = p.SetFlags(uint8(r.Uint32()))
		case 4:
			p.ClampMSS(uint16(r.Uint32()))
		case 5:
			o, ok, _ := p.FindOption(packet.OptTimestamp)
			if ok {
				v := make([]byte, 8)
				binary.BigEndian.PutUint64(v, r.Uint64())
				err = p.PatchTCP(o.Off+2, v)
			}
		case 6:
			buf := make([]byte, len(frame)+40)
			copy(buf, frame)
			opts := make([]byte, r.IntN(41))
			for j := range opts {
				opts[j] = 1
			}
			n, e := p.ReplaceOptions(buf, opts)
			if e != nil {
				t.Fatal(e)
			}
			if n != p.End() {
				t.Fatalf("length %d, End %d", n, p.End())
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		recomputedEqual(t, &p)
	}
}

func TestWriters(t *testing.T) {
	for _, six := range []bool{false, true} {
		f := pt.Frame{Src: pt.HostA4, Dst: pt.HostB4, TCP: tcpSeg(pt.ACK, pt.MSSOption(1460), []byte("payload")), Padding: 5}
		if six {
			f.Src, f.Dst = pt.HostA6, pt.HostB6
		}
		frame := f.Bytes()
		var p packet.Packet
		if err := p.Decode(frame); err != nil {
			t.Fatal(err)
		}
		p.SetSeq(0xfffffff0)
		p.SetAck(7)
		p.SetWindow(0xffff)
		p.SetFlags(pt.ACK | pt.FIN)
		if old, ch := p.ClampMSS(1440); old != 1460 || !ch {
			t.Errorf("ClampMSS = %d %v", old, ch)
		}
		if old, ch := p.ClampMSS(1500); old != 1440 || ch {
			t.Errorf("ClampMSS above = %d %v", old, ch)
		}
		if m, _ := p.MSS(); m != 1440 {
			t.Errorf("MSS %d", m)
		}
		if p.Seq() != 0xfffffff0 || p.Ack() != 7 || p.Window() != 0xffff || p.Flags() != pt.ACK|pt.FIN || p.TCPHeaderLen() != 24 {
			t.Errorf("fields %x %x %x %x %d", p.Seq(), p.Ack(), p.Window(), p.Flags(), p.TCPHeaderLen())
		}
		recomputedEqual(t, &p)
	}
	var p packet.Packet
	p.Decode(pt.Frame{Src: pt.HostA4, Dst: pt.HostB4, Proto: 17, L4: pt.UDP(1, 2, nil)}.Bytes())
	if err := p.SetSeq(1); err != packet.ErrNotTCP {
		t.Errorf("SetSeq on UDP: %v", err)
	}
	p.Decode(pt.Frame{Src: pt.HostA4, Dst: pt.HostB4, TCP: tcpSeg(0, nil, nil)}.Bytes())
	for _, off := range []int{p.L4Offset() - 1, p.L4Offset() + 15, p.L4Offset() + 17, p.L4Offset() + 19} {
		if err := p.PatchTCP(off, []byte{1, 2}); err != packet.ErrOutOfRange {
			t.Errorf("PatchTCP at %d: %v", off-p.L4Offset(), err)
		}
	}
}

// TestBadChecksumStaysBad: incremental updates must not turn a corrupted
// segment into one that verifies.
func TestBadChecksumStaysBad(t *testing.T) {
	frame := pt.Frame{Src: pt.HostA4, Dst: pt.HostB4, TCP: tcpSeg(pt.ACK, nil, []byte("x"))}.Bytes()
	frame[len(frame)-1] ^= 0x40
	var p packet.Packet
	p.Decode(frame)
	p.SetSeq(12345)
	if p.VerifyL4Checksum() {
		t.Fatal("corrupted segment verifies after SetSeq")
	}
}

func TestOptionIter(t *testing.T) {
	type opt struct {
		kind uint8
		data string
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want []opt
		err  error
	}{
		{"empty", nil, nil, nil},
		{"nops and eol", []byte{1, 1, 0, 2, 1}, nil, nil}, // bytes after EOL are ignored
		{"mss ws sackok", []byte{2, 4, 5, 0xb4, 1, 3, 3, 7, 4, 2}, []opt{{2, "\x05\xb4"}, {3, "\x07"}, {4, ""}}, nil},
		{"eno", []byte{69, 4, 0x21, 0x23, 0, 0, 0, 0}, []opt{{69, "\x21\x23"}}, nil},
		{"length 1", []byte{2, 1, 0, 0}, nil, packet.ErrBadOption},
		{"length 0", []byte{8, 0}, nil, packet.ErrBadOption},
		{"length past end", []byte{1, 8, 10, 0, 0}, nil, packet.ErrBadOption},
		{"kind without length", []byte{1, 1, 1, 5}, nil, packet.ErrBadOption},
		{"good then bad", []byte{4, 2, 5, 9, 0}, []opt{{4, ""}}, packet.ErrBadOption},
	} {
		t.Run(tc.name, func(t *testing.T) {
			it := packet.ParseOptions(tc.b)
			var got []opt
			for o, ok := it.Next(); ok; o, ok = it.Next() {
				got = append(got, opt{o.Kind, string(o.Data)})
				if o.Total != len(o.Data)+2 || tc.b[o.Off] != o.Kind {
					t.Errorf("option %d: Off %d Total %d", o.Kind, o.Off, o.Total)
				}
			}
			if it.Err() != tc.err {
				t.Errorf("Err = %v, want %v", it.Err(), tc.err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("option %d: %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestReplaceOptions(t *testing.T) {
	eno := []byte{69, 4, 0x20, 0x23} // TCP-ENO: global suboption, tcpcrypt X25519 (ENO-4)
	payload := []byte("the payload must arrive intact after the header grows")
	for _, tc := range []struct {
		name  string
		f     pt.Frame
		opts  []byte
		inPl  bool
		extra int // room after the frame
		err   error
	}{
		{"v4 grow in place", pt.Frame{Src: pt.HostA4, Dst: pt.HostB4, TCP: tcpSeg(pt.SYN, pt.MSSOption(1460), payload)}, append(pt.MSSOption(1460), eno...), true, 40, nil},
		{"v4 grow other buffer", pt.Frame{Src: pt.HostA4, Dst: pt.HostB4, TCP: tcpSeg(pt.SYN, nil, payload), Padding: 6}, eno, false, 40, nil},
		{"v4 shrink in place", pt.Frame{Src: pt.HostA4, Dst: pt.HostB4, IPv4Options: []byte{1, 1, 1, 1}, TCP: tcpSeg(pt.ACK, pt.TimestampOption(5, 6), payload)}, nil, true, 0, nil},
		{"v4 odd length padded", pt.Frame{Src: pt.HostA4, Dst: pt.HostB4, TCP: tcpSeg(pt.SYN, nil, payload)}, []byte{69, 3, 0x23}, true, 40, nil},
		{"v6 ext grow in place", pt.Frame{Tags: []pt.Tag{{TPID: 0x8100, TCI: 9}}, Src: pt.HostA6, Dst: pt.HostB6, Ext: []pt.Ext{{Proto: 60, Data: make([]byte, 6)}}, TCP: tcpSeg(pt.SYN, pt.MSSOption(1440), payload)}, append(eno, pt.MSSOption(1440)...), true, 40, nil},
		{"v6 max options", pt.Frame{Src: pt.HostA6, Dst: pt.HostB6, TCP: tcpSeg(pt.SYN, nil, nil)}, bytes.Repeat([]byte{1}, 40), false, 40, nil},
		{"too long", pt.Frame{Src: pt.HostA4, Dst: pt.HostB4, TCP: tcpSeg(pt.SYN, nil, nil)}, make([]byte, 41), true, 41, packet.ErrOptionsTooLong},
		{"no room", pt.Frame{Src: pt.HostA4, Dst: pt.HostB4, TCP: tcpSeg(pt.SYN, nil, payload)}, eno, true, 3, packet.ErrNoRoom},
		{"fragment", pt.Frame{Src: pt.HostA4, Dst: pt.HostB4, MoreFragments: true, TCP: tcpSeg(pt.SYN, nil, nil)}, eno, true, 40, packet.ErrFragment},
		{"udp", pt.Frame{Src: pt.HostA4, Dst: pt.HostB4, Proto: 17, L4: pt.UDP(1, 2, nil)}, eno, true, 40, packet.ErrNotTCP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frame := tc.f.Bytes()
			buf := make([]byte, len(frame)+tc.extra)
			copy(buf, frame)
			var p packet.Packet
			if err := p.Decode(buf[:len(frame)]); err != nil {
				t.Fatal(err)
			}
			before := append([]byte(nil), buf[:p.L4Offset()]...)
			wantPayload := append([]byte(nil), p.Payload()...)
			dst := buf
			if !tc.inPl {
				dst = make([]byte, len(frame)+tc.extra)
			}
			n, err := p.ReplaceOptions(dst, tc.opts)
			if err != tc.err {
				t.Fatalf("ReplaceOptions = %v, want %v", err, tc.err)
			}
			if err != nil {
				if !bytes.Equal(buf[:len(frame)], frame) {
					t.Error("frame changed on error")
				}
				return
			}
			var q packet.Packet
			if err := q.Decode(dst[:n]); err != nil {
				t.Fatalf("rewritten frame does not decode: %v", err)
			}
			padded := (len(tc.opts) + 3) &^ 3
			if !bytes.Equal(q.OptionBytes()[:len(tc.opts)], tc.opts) || len(q.OptionBytes()) != padded {
				t.Errorf("options %x, want %x padded to %d", q.OptionBytes(), tc.opts, padded)
			}
			if !bytes.Equal(q.Payload(), wantPayload) {
				t.Errorf("payload %q, want %q", q.Payload(), wantPayload)
			}
			if q.End() != n || q.Seq() != 1000 || q.SrcPort() != 40000 {
				t.Errorf("header fields lost")
			}
			// Link and IP header bytes are unchanged except the length and checksum fields.
			got := dst[:q.L4Offset()]
			for i := range before {
				l3 := q.L3Offset()
				isLen := (q.IPVersion() == 4 && (i == l3+2 || i == l3+3 || i == l3+10 || i == l3+11)) ||
					(q.IPVersion() == 6 && (i == l3+4 || i == l3+5))
				if !isLen && got[i] != before[i] {
					t.Errorf("header byte %d changed", i)
				}
			}
			recomputedEqual(t, &q)
			recomputedEqual(t, &p) // p was re-decoded onto dst
		})
	}
}

func TestCountOption(t *testing.T) {
	eno := []byte{69, 3, 0x23}
	var p packet.Packet
	for _, tc := range []struct {
		opts []byte
		n    int
		err  error
	}{
		{nil, 0, nil},
		{eno, 1, nil},
		{append(append([]byte{1}, eno...), eno...), 2, nil},        // ENO-6: the engine must see both
		{append(append([]byte{}, eno...), 0, 69, 3, 0x23), 1, nil}, // after EOL nothing counts
		{append(append([]byte{}, eno...), 69, 9), 1, packet.ErrBadOption},
	} {
		p.Decode(pt.Frame{Src: pt.HostA4, Dst: pt.HostB4, TCP: tcpSeg(pt.SYN, tc.opts, nil)}.Bytes())
		if n, err := p.CountOption(packet.OptENO); n != tc.n || err != tc.err {
			t.Errorf("opts %x: %d %v, want %d %v", tc.opts, n, err, tc.n, tc.err)
		}
	}
}

func TestMSSAbsentOrMalformed(t *testing.T) {
	var p packet.Packet
	for _, opts := range [][]byte{nil, {2, 3, 5}, {2, 6, 0, 0, 0, 0}, {3, 3, 7}} {
		p.Decode(pt.Frame{Src: pt.HostA4, Dst: pt.HostB4, TCP: tcpSeg(pt.SYN, opts, nil)}.Bytes())
		if m, ok := p.MSS(); ok {
			t.Errorf("opts %x: MSS %d", opts, m)
		}
		if _, ch := p.ClampMSS(1); ch {
			t.Errorf("opts %x: clamped", opts)
		}
	}
	_, _, err := func() (packet.Option, bool, error) {
		p.Decode(pt.Frame{Src: pt.HostA4, Dst: pt.HostB4, TCP: tcpSeg(pt.SYN, []byte{2, 9, 0, 0}, nil)}.Bytes())
		return p.FindOption(packet.OptMSS)
	}()
	if !errors.Is(err, packet.ErrBadOption) {
		t.Errorf("FindOption on bad length: %v", err)
	}
}

func TestResizePayload(t *testing.T) {
	for _, f := range []pt.Frame{
		{Src: pt.HostA4, Dst: pt.HostB4, IPv4Options: []byte{1, 1, 1, 1}, TCP: tcpSeg(pt.ACK, pt.TimestampOption(1, 2), []byte("short")), Padding: 9},
		{Tags: []pt.Tag{{TPID: 0x8100, TCI: 1}}, Src: pt.HostA6, Dst: pt.HostB6, Ext: []pt.Ext{{Proto: 60, Data: make([]byte, 6)}}, TCP: tcpSeg(pt.ACK, nil, []byte("short"))},
	} {
		frame := f.Bytes()
		buf := make([]byte, len(frame), len(frame)+100)
		copy(buf, frame)
		var p packet.Packet
		if err := p.Decode(buf); err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{0, 105, 1, 30} {
			if err := p.ResizePayload(n); err != nil {
				t.Fatalf("ResizePayload(%d): %v", n, err)
			}
			for i := range p.Payload() {
				p.Payload()[i] = byte(i)
			}
			p.FixL4Checksum()
			if len(p.Payload()) != n || p.End() != len(p.Frame()) || p.Seq() != 1000 {
				t.Fatalf("n=%d: payload %d end %d len %d", n, len(p.Payload()), p.End(), len(p.Frame()))
			}
			recomputedEqual(t, &p)
		}
		if err := p.ResizePayload(200); err != packet.ErrNoRoom {
			t.Errorf("beyond capacity: %v", err)
		}
		if n := testing.AllocsPerRun(100, func() { p.ResizePayload(50); p.ResizePayload(10) }); n != 0 {
			t.Errorf("ResizePayload allocates: %v", n)
		}
	}
	var p packet.Packet
	p.Decode(pt.Frame{Src: pt.HostA4, Dst: pt.HostB4, MoreFragments: true, TCP: tcpSeg(0, nil, nil)}.Bytes())
	if err := p.ResizePayload(0); err != packet.ErrFragment {
		t.Errorf("fragment: %v", err)
	}
}
