package engine

import "github.com/tcpinc/tcpinc/appliance/packet"

// Explicit Congestion Notification across an encrypted flow (RFC 3168).
//
// The appliances cut their own segments, so without help every segment they
// build would leave Not-ECT with ECE and CWR clear: hosts that negotiated
// ECN would never hear of congestion marked on the untrusted path, only of
// losses. So the engine carries the signals across, once the hosts'
// handshake negotiated classic ECN (ecnOn):
//
//   - the codepoint: a segment carrying new data goes out ECT as the data
//     it carries came in from its host (ECT(0) or ECT(1)); for every data
//     segment's worth of CE-marked data that comes in, a new data segment
//     the engine builds in that direction goes CE instead, so that the
//     receiving host sees the marks in proportion (DCTCP and L4S senders
//     count them) and echoes ECE; retransmissions and pure ACKs go Not-ECT
//     (§6.1.4, §6.1.5);
//   - ECE, the receiver's echo, which it repeats until it sees CWR: on
//     every segment toward the other host while the latest segment from
//     this host had it;
//   - CWR, the sender's answer: on the next new data segment toward the
//     other host.
//
// A handshake that negotiated anything else (no ECN, or AccECN, whose ACE
// field these rules would garble) gets none of this: Not-ECT, ECE and CWR
// clear, as hosts behind a path that bleaches ECN see (AccECN detects that
// and stops sending ECT).

// ecnState is a flow's ECN state, in 16 bits (the flow record is tight).
type ecnState uint16

const (
	ecnOffered ecnState = 1 << iota // the SYN asked for classic ECN
	ecnOn                           // the SYN-ACK agreed
	ecnECEToR                       // L's latest segment had ECE
	ecnECEToL                       // R's latest segment had ECE
	ecnCWRToR                       // L sent CWR: due on the next new data to R
	ecnCWRToL                       // R sent CWR: due on the next new data to L
	// Two bits each: the ECT codepoint of the latest data from L and R.
	ecnECTLShift = 8
	ecnECTRShift = 10
)

const (
	flagAE = 0x01 // TCP header byte 12, bit 0: AccECN's AE (formerly NS)
	// ecnSetup are the SYN flags of an ECN-setup SYN (RFC 3168 §6.1.1).
	ecnSetup = packet.FlagECE | packet.FlagCWR
)

// ecnSYN records whether the SYN p (toward either side) asks for classic
// ECN: ECE and CWR set, AE clear (with AE it asks for AccECN, RFC 9768).
func (f *flow) ecnSYN(p *packet.Packet) {
	f.ecn = 0
	if p.Flags()&ecnSetup == ecnSetup && p.TCPHeader()[12]&flagAE == 0 {
		f.ecn = ecnOffered
	}
}

// ecnSYNACK turns ECN on if the SYN-ACK p agrees to the SYN's classic ECN:
// ECE set, CWR and AE clear (RFC 3168 §6.1.1).
func (f *flow) ecnSYNACK(p *packet.Packet) {
	if f.ecn&ecnOffered != 0 && p.Flags()&ecnSetup == packet.FlagECE && p.TCPHeader()[12]&flagAE == 0 {
		f.ecn |= ecnOn
		return
	}
	f.ecn = 0
}

// ecnFrom takes in the ECN signals of a non-SYN segment from side from.
func (f *flow) ecnFrom(from PortID, p *packet.Packet) {
	if f.ecn&ecnOn == 0 {
		return
	}
	ece, cwr, ce, seg, shift := ecnECEToR, ecnCWRToR, &f.ceToR, f.segR(), ecnECTLShift
	if from == Outside {
		ece, cwr, ce, seg, shift = ecnECEToL, ecnCWRToL, &f.ceToL, f.segL(), ecnECTRShift
	}
	fl := p.Flags()
	f.ecn &^= ece
	if fl&packet.FlagECE != 0 {
		f.ecn |= ece
	}
	if len(p.Payload()) == 0 {
		return
	}
	if fl&packet.FlagCWR != 0 {
		f.ecn |= cwr
	}
	switch c := p.ECN(); c {
	case packet.CE:
		// The segments' worth this data makes on the other side (a
		// super-segment from GRO is many).
		n := (len(p.Payload()) + seg - 1) / max(seg, 1)
		*ce = uint16(min(int(*ce)+n, 0xffff))
		if f.ecn>>shift&3 == 0 {
			f.ecn |= ecnState(packet.ECT0) << shift // marked before any ECT was seen
		}
	case packet.ECT0, packet.ECT1:
		f.ecn = f.ecn&^(3<<shift) | ecnState(c)<<shift
	}
}

// ecnUniform reports whether ecnTo would now give every new segment toward
// side to the same signals: no CE marks owed and no CWR due. Only then may
// one super-frame's headers stand for all its segments.
func (f *flow) ecnUniform(to PortID) bool {
	if f.ecn&ecnOn == 0 {
		return true
	}
	if to == Inside {
		return f.ecn&ecnCWRToL == 0 && f.ceToL == 0
	}
	return f.ecn&ecnCWRToR == 0 && f.ceToR == 0
}

// ecnTo sets the ECN signals of a segment the engine builds toward side to:
// ECE while the other host echoes it; and for a segment with data never
// sent before (fresh), the data's ECT codepoint, or CE while marks are
// owed, and CWR if due (then no longer). Anything else leaves Not-ECT.
func (f *flow) ecnTo(to PortID, s *seg, fresh bool) {
	if f.ecn&ecnOn == 0 {
		return
	}
	ece, cwr, ce, shift := ecnECEToR, ecnCWRToR, &f.ceToR, ecnECTLShift
	if to == Inside {
		ece, cwr, ce, shift = ecnECEToL, ecnCWRToL, &f.ceToL, ecnECTRShift
	}
	if f.ecn&ece != 0 {
		s.flags |= packet.FlagECE
	}
	if !fresh {
		return
	}
	if f.ecn&cwr != 0 {
		s.flags |= packet.FlagCWR
	}
	s.ecn = uint8(f.ecn>>shift) & 3
	if *ce > 0 {
		s.ecn = packet.CE
		*ce--
	}
	f.ecn &^= cwr
}
