// Package keylogtest builds the Ethernet frames of a whole tcpcrypt
// connection for tests of capture tools (the Wireshark dissector, the
// decoder): TCP-ENO in the SYN and SYN-ACK, a real key exchange, frames
// sealed with the real key schedule, rekeys and FINp where asked, and the
// key log line an appliance in front of the client would write.
package keylogtest

import (
	"fmt"
	"net/netip"

	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/keylog"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
	"github.com/tcpinc/tcpinc/cryptopool"
)

// Options describe the connection. Zero values take the defaults noted.
type Options struct {
	Client, Server netip.AddrPort // default 192.0.2.1:40000 and 198.51.100.2:443
	TEP            tcpcrypt.TEP   // default X25519
	Suite          cryptopool.Suite
	// Data are the application bytes each side sends ([0] client to
	// server), one frame per chunk; the last frame of each side has FINp.
	Data [2][][]byte
	// RekeyAt: a frame index per side whose frame starts a new generation
	// (the rekey bit); 0 means no rekey (frame 0 cannot carry it).
	RekeyAt [2]int
	// MSS cuts each stream into segments (default 700).
	MSS int
	// Retransmit repeats the client's second data segment after its third
	// and sends its fourth before its third (a retransmission and a
	// reordering for the reassembly to cope with).
	Retransmit bool
}

// Result is the connection.
type Result struct {
	Frames [][]byte // in capture order
	// KeyLog is the key log line (with a newline) of the client's side.
	KeyLog  string
	Entry   engine.KeyLogEntry // what the client's engine hands its key log
	Session *tcpcrypt.Session  // the client's
	// InitLen are the Init messages' lengths (the first frame's offset).
	InitLen [2]int
	// FrameOffsets are each side's frames' stream offsets.
	FrameOffsets [2][]uint64
	ISN          [2]uint32
}

// Build makes the connection.
func Build(o Options) (*Result, error) {
	if !o.Client.IsValid() {
		o.Client = netip.AddrPortFrom(packettest.HostA4, 40000)
	}
	if !o.Server.IsValid() {
		o.Server = netip.AddrPortFrom(packettest.HostB4, 443)
	}
	if o.TEP == 0 {
		o.TEP = tcpcrypt.TEPX25519
	}
	if o.Suite == 0 {
		o.Suite = cryptopool.AES128GCM
	}
	if o.MSS == 0 {
		o.MSS = 700
	}
	ka, err := tcpcrypt.KeyAgreementFor(o.TEP)
	if err != nil {
		return nil, err
	}
	kpA, err := ka.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	kpB, err := ka.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	// A offers the TEP; B answers with b = 1 and the same TEP.
	synOpt := []byte{69, 3, byte(o.TEP)}
	synAckOpt := []byte{69, 4, 0x01, byte(o.TEP)}
	transcript := append(append([]byte(nil), synOpt...), synAckOpt...)
	ini, err := tcpcrypt.NewInitiator(tcpcrypt.InitiatorConfig{TEP: o.TEP, TEPByte: byte(o.TEP),
		Ciphers: []cryptopool.Suite{o.Suite, cryptopool.ChaCha20Poly1305}, Key: kpA, Transcript: transcript})
	if err != nil {
		return nil, err
	}
	rsp, err := tcpcrypt.NewResponder(tcpcrypt.ResponderConfig{TEP: o.TEP, TEPByte: byte(o.TEP),
		Prefs: []cryptopool.Suite{o.Suite}, Key: kpB, Transcript: transcript})
	if err != nil {
		return nil, err
	}
	init1 := ini.Init1()
	if _, done, err := rsp.Feed(init1); err != nil || !done {
		return nil, fmt.Errorf("responder: Init1 not taken: %v", err)
	}
	init2 := rsp.Init2()
	if _, done, err := ini.Feed(init2); err != nil || !done {
		return nil, fmt.Errorf("initiator: Init2 not taken: %v", err)
	}
	sA, err := ini.Session()
	if err != nil {
		return nil, err
	}
	sB, err := rsp.Session()
	if err != nil {
		return nil, err
	}
	res := &Result{Session: sA, InitLen: [2]int{len(init1), len(init2)}, ISN: [2]uint32{0xfffff000, 0x12345678}}
	res.Entry = engine.KeyLogEntry{Inside: o.Client, Outside: o.Server, Session: sA, MasterKey: sA.MasterKey}
	res.KeyLog = keylog.Format(res.Entry) + "\n"
	var streams [2][]byte
	for side, s := range []*tcpcrypt.Session{sA, sB} {
		st := append([]byte(nil), init1...)
		if side == 1 {
			st = append([]byte(nil), init2...)
		}
		ring, err := tcpcrypt.NewSessionKeyRing(s)
		if err != nil {
			return nil, err
		}
		for i, d := range o.Data[side] {
			if i > 0 && i == o.RekeyAt[side] {
				if err := ring.StartRekey(); err != nil {
					return nil, err
				}
			}
			fin := i == len(o.Data[side])-1
			k, err := ring.Send(len(d), fin)
			if err != nil {
				return nil, err
			}
			h := tcpcrypt.FrameHeader{Rekey: k.Rekey, FIN: fin}
			buf := make([]byte, h.Overhead()+len(d))
			copy(buf[h.DataStart():], d)
			fr, err := k.Sealer.Seal(buf, h, len(d), uint64(len(st)))
			if err != nil {
				return nil, err
			}
			res.FrameOffsets[side] = append(res.FrameOffsets[side], uint64(len(st)))
			st = append(st, fr...)
		}
		streams[side] = st
	}

	ends := [2]netip.AddrPort{o.Client, o.Server}
	frame := func(side int, seq, ack uint32, flags uint8, opts, payload []byte) []byte {
		src, dst := ends[side], ends[1-side]
		return packettest.Frame{Src: src.Addr(), Dst: dst.Addr(), TCP: &packettest.TCP{
			SrcPort: src.Port(), DstPort: dst.Port(), Seq: seq, Ack: ack, Flags: flags,
			Window: 65535, Options: opts, Payload: payload}}.Bytes()
	}
	isn := res.ISN
	const syn, ack, psh, finF = packettest.SYN, packettest.ACK, packettest.PSH, packettest.FIN
	res.Frames = append(res.Frames,
		frame(0, isn[0], 0, syn, synOpt, nil),
		frame(1, isn[1], isn[0]+1, syn|ack, synAckOpt, nil),
		frame(0, isn[0]+1, isn[1]+1, ack, []byte{69, 2}, nil))
	var segs [2][][]byte
	for side := range streams {
		st := streams[side]
		for off := 0; off < len(st); off += o.MSS {
			end := min(off+o.MSS, len(st))
			fl := uint8(ack | psh)
			if end == len(st) {
				fl |= finF
			}
			seq := isn[side] + 1 + uint32(off)
			peerAck := isn[1-side] + 1
			segs[side] = append(segs[side], frame(side, seq, peerAck, fl, nil, st[off:end]))
		}
	}
	if o.Retransmit && len(segs[0]) >= 4 {
		s := segs[0]
		segs[0] = append([][]byte{s[0], s[1], s[3], s[2], s[1]}, s[4:]...)
	}
	// Init1, then Init2 (B answers it), then the rest of both.
	res.Frames = append(res.Frames, segs[0][0], segs[1][0])
	res.Frames = append(res.Frames, segs[0][1:]...)
	res.Frames = append(res.Frames, segs[1][1:]...)
	return res, nil
}
