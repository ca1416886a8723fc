package eno

// Role is a host's TCP-ENO role (§4.3). Its values are TCP_ENO_ROLE's.
type Role uint8

// Roles: A sent b = 0, B sent b = 1 (ENO-D2).
const (
	RoleA Role = 0
	RoleB Role = 1
)

func (r Role) String() string {
	if r == RoleA {
		return "A"
	}
	return "B"
}

// Reason says why a connection was not encrypted; Success when it was.
// The admin API reports it.
type Reason uint8

// Reasons, in the order Negotiate checks them.
const (
	Success           Reason = iota // a TEP was negotiated
	NoOption                        // the peer's SYN had no ENO option (ENO-28)
	MultipleOptions                 // the peer's SYN had more than one (ENO-6)
	BadTCPOptions                   // the peer's TCP option list was malformed
	Malformed                       // the peer's option broke ENO-21/ENO-22/U-6
	BadLocalOption                  // our own option did not parse (a caller bug)
	RoleClash                       // both hosts sent the same b (ENO-30)
	AppAwareRequired                // mandatory application-aware mode, peer a = 0 (ENO-14, ENO-30)
	Vacuous                         // a SYN carried no TEP suboption (ENO-39)
	NoCommonTEP                     // B offered no TEP that A offered (ENO-29, TC-3)
	InvalidSuboptions               // every common TEP was rejected: bad data or a repeated TEP (ENO-D3)
	NoRoom                          // the option did not fit the TCP option space (docs/protocol.md §5)
	NoOptionInACK                   // the first ACK received carried no ENO option (ENO-28); for the engine
	numReasons
)

var reasonNames = [numReasons]string{
	Success:           "success",
	NoOption:          "no ENO option",
	MultipleOptions:   "more than one ENO option in a SYN",
	BadTCPOptions:     "malformed TCP options",
	Malformed:         "malformed ENO option",
	BadLocalOption:    "own ENO option malformed",
	RoleClash:         "both hosts chose the same role",
	AppAwareRequired:  "peer is not application-aware",
	Vacuous:           "vacuous ENO option",
	NoCommonTEP:       "no common TEP",
	InvalidSuboptions: "no valid TEP suboption",
	NoRoom:            "no TCP option space",
	NoOptionInACK:     "no ENO option in the first ACK",
}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown reason"
}

// Offer is one TEP a host is willing to use.
type Offer struct {
	TEP TEP
	// Data is the suboption data to send. Empty means v = 0. tcpcrypt sends
	// data only to propose resumption: TEP|0x80, a 9-byte identifier half
	// and a 0–8 byte nonce (RFC 8548 §3.5).
	Data []byte
}

// Candidate is a TEP both hosts offered, handed to a ValidFunc.
type Candidate struct {
	TEP   TEP
	Role  Role      // our role
	Local Suboption // our suboption for TEP, as sent
	Peer  Suboption // the peer's, as received
}

// ValidFunc reports whether a candidate's suboption data is valid under its
// TEP's specification and run-time constraints (ENO-D3 point 2). tcpcrypt
// uses it to ignore a resumption suboption whose identifier half does not
// match (TC-23). The suboptions alias the options being negotiated.
type ValidFunc func(c Candidate) bool

// ChooseFunc gives the data host B sends for tep in a SYN-ACK, given A's
// suboption and the room left for data. It returns ok = false to decline
// the TEP. Empty data means v = 0 (tcpcrypt: fresh key exchange, TC-21);
// non-empty data means v = 1 (tcpcrypt: the other identifier half and
// B's nonce, TC-19).
type ChooseFunc func(tep TEP, peer Suboption, room int) (data []byte, ok bool)

// Settings are one end's TCP-ENO configuration. The zero value sends a
// vacuous option with implicit global 0x00.
type Settings struct {
	// Offers lists the TEPs to offer, most preferred first. On the wire
	// they go in the reverse order, because host B's last valid TEP wins
	// (ENO-D3).
	Offers []Offer
	// PassiveRole sets b = 1 on an active open, for simultaneous open
	// (ENO-11). Its default, false, is b = 0 (ENO-10). PutSYNACK always
	// sends b = 1 (ENO-9).
	PassiveRole bool
	// AppAware sets the application-aware bit a (default 0, ENO-12/13).
	AppAware bool
	// AppAwareMandatory disables ENO when the peer sent a = 0 (ENO-14).
	AppAwareMandatory bool
	// Valid, when set, must accept a candidate for it to be valid
	// (ENO-D3 point 2). Nil accepts all.
	Valid ValidFunc
}

// Global returns the global suboption a SYN under s carries.
func (s *Settings) Global() Global {
	var g Global
	if s.PassiveRole {
		g |= GlobalB
	}
	if s.AppAware {
		g |= GlobalA
	}
	return g
}

// offerLen is the encoded size of offer i. Offers[0] (the most preferred)
// goes last on the wire and so needs no length byte (§4.4).
func (s *Settings) offerLen(i int) (int, error) {
	o := s.Offers[i]
	if !o.TEP.Valid() {
		return 0, ErrBadTEP
	}
	for _, p := range s.Offers[:i] {
		if p.TEP == o.TEP {
			return 0, ErrDuplicateTEP
		}
	}
	return subLen(o.suboption(), i == 0)
}

func (o Offer) suboption() Suboption {
	if len(o.Data) == 0 {
		return Suboption{Byte: byte(o.TEP)}
	}
	return Suboption{Byte: byte(o.TEP) | 0x80, Data: o.Data}
}

// SYNLen returns the size of the SYN-form option PutSYN writes when
// there is room for every offer.
func (s *Settings) SYNLen() (int, error) {
	n, _, err := s.fit(1 << 16)
	if err != nil {
		return 0, err
	}
	if n > MaxOptionLen {
		return 0, ErrOptionTooLong
	}
	return n, nil
}

// fit checks every offer, then returns the option size with the longest
// run of offers, most preferred first, that fits in budget bytes, and the
// length of that run.
func (s *Settings) fit(budget int) (n, kept int, err error) {
	for i := range s.Offers {
		if _, err := s.offerLen(i); err != nil {
			return 0, 0, err
		}
	}
	n = 2
	if s.Global() != 0 {
		n++
	}
	for i := range s.Offers {
		l, _ := s.offerLen(i)
		if n+l > budget {
			break
		}
		n += l
		kept++
	}
	return n, kept, nil
}

// PutSYN writes the SYN-form option of an active open (or of both SYN and
// SYN-ACK of a simultaneous open, ENO-31) into dst and returns its size.
// It drops the least preferred offers until the option fits in len(dst)
// bytes (at most MaxOptionLen), and fails with ErrNoRoom when not even the
// most preferred fits. The global suboption is explicit only when not 0x00
// (ENO-D1). With no offers it writes a vacuous option (ENO-38). Keep the
// bytes: retransmissions must repeat them (ENO-31) and the transcript
// needs them (ENO-D6). PutSYN does not allocate.
func (s *Settings) PutSYN(dst []byte) (int, error) {
	budget := min(len(dst), MaxOptionLen)
	n, kept, err := s.fit(budget)
	if err != nil {
		return 0, err
	}
	if n > budget || (kept == 0 && len(s.Offers) > 0) {
		return 0, ErrNoRoom
	}
	dst[0], dst[1] = Kind, byte(n)
	i := 2
	if g := s.Global(); g != 0 {
		dst[i] = byte(g)
		i++
	}
	for j := kept - 1; j >= 0; j-- { // increasing preference on the wire
		i += putSub(dst[i:], s.Offers[j].suboption(), j == 0)
	}
	return n, nil
}

// PutSYNACK builds host B's SYN-ACK option for a passive open, answering
// the option of A's SYN (nil if the SYN had none), into dst. The option has
// an explicit global suboption with b = 1 (ENO-9, ENO-17) and exactly one
// TEP (ENO-24): the most preferred local offer that A also offered, that
// choose accepts (nil choose answers v = 0) and that Valid accepts, so it
// is valid (ENO-25). It returns the size and Success, or 0 and the reason
// not to send any ENO option: PutSYNACK never writes a vacuous option, so
// ENO-40 holds. Offer.Data is not used here. It does not allocate.
func (s *Settings) PutSYNACK(dst, syn []byte, choose ChooseFunc) (int, Reason) {
	if len(syn) == 0 {
		return 0, NoOption
	}
	var a SYNOption
	if a.parse(syn) != nil {
		return 0, Malformed
	}
	if r := s.checkGlobals(GlobalB, a.global); r != Success {
		return 0, r
	}
	if a.Vacuous() {
		return 0, Vacuous
	}
	budget := min(len(dst), MaxOptionLen)
	const head = 4 // kind, length, global, TEP byte
	reason := NoCommonTEP
	for _, o := range s.Offers {
		c := a.Count(o.TEP)
		if c == 0 {
			continue
		}
		if reason == NoCommonTEP {
			reason = InvalidSuboptions
		}
		if c > 1 || !o.TEP.Valid() { // repetition is undefined for our TEPs (ENO-D3 point 3)
			continue
		}
		if budget < head {
			return 0, NoRoom
		}
		peer, _ := a.Find(o.TEP)
		local := Suboption{Byte: byte(o.TEP)}
		if choose != nil {
			data, ok := choose(o.TEP, peer, budget-head)
			if !ok {
				continue
			}
			if len(data) > budget-head {
				reason = NoRoom
				continue
			}
			if len(data) > 0 {
				local = Suboption{Byte: byte(o.TEP) | 0x80, Data: data}
			}
		}
		if s.Valid != nil && !s.Valid(Candidate{TEP: o.TEP, Role: RoleB, Local: local, Peer: peer}) {
			continue
		}
		g := GlobalB
		if s.AppAware {
			g |= GlobalA
		}
		n := head + len(local.Data)
		dst[0], dst[1], dst[2] = Kind, byte(n), byte(g)
		putSub(dst[3:], local, true)
		return n, Success
	}
	return 0, reason
}

// checkGlobals applies §4.6 case 3 (ENO-30): same b, or mandatory
// application-aware mode against a = 0.
func (s *Settings) checkGlobals(local, peer Global) Reason {
	if local.B() == peer.B() {
		return RoleClash
	}
	if s.AppAwareMandatory && !peer.A() {
		return AppAwareRequired
	}
	return Success
}

// Outcome is the result of TCP-ENO negotiation. It holds copies of both
// options, so it stays valid after the packets are gone; slices returned
// by its methods point into it.
type Outcome struct {
	Reason Reason
	// Role is our role, from our own b bit (ENO-D2). It is set whenever
	// both options parsed, and is a real role only if the b bits differ,
	// that is for Success and every reason after RoleClash.
	Role Role
	// LocalGlobal and PeerGlobal are the global suboptions that count
	// (implicit 0x00 when absent, ENO-D1), as sent: PeerGlobal is
	// TCP_ENO_PEER_GOPT. Set whenever both options parsed.
	LocalGlobal, PeerGlobal Global
	// TEPByte is the negotiated TEP with host B's v bit, exactly as B sent
	// it: session ID byte 0 (ENO-D7) and TCP_ENO_NEGTEP. 0 on fallback.
	TEPByte byte

	transcript  [2 * MaxOptionLen]byte
	lenA, lenB  uint8
	local, peer subRef // negotiated suboptions; off is into transcript
}

// OK reports whether a TEP was negotiated.
func (o *Outcome) OK() bool { return o.Reason == Success }

// TEP returns the negotiated TEP identifier (0 on fallback).
func (o *Outcome) TEP() TEP { return TEP(o.TEPByte & 0x7f) }

// PeerAppAware reports the peer's a bit (ENO-13).
func (o *Outcome) PeerAppAware() bool { return o.PeerGlobal.A() }

// Transcript returns the negotiation transcript: host A's option, then
// host B's, each with kind and length, exactly as on the wire (ENO-D6,
// ENO-56). Nil on fallback.
func (o *Outcome) Transcript() []byte {
	if o.Reason != Success {
		return nil
	}
	return o.transcript[:int(o.lenA)+int(o.lenB)]
}

// OptionA and OptionB return each host's option inside the transcript.
func (o *Outcome) OptionA() []byte { return o.Transcript()[:o.lenA:o.lenA] }

// OptionB returns host B's option inside the transcript.
func (o *Outcome) OptionB() []byte {
	t := o.Transcript()
	if t == nil {
		return nil
	}
	return t[o.lenA:]
}

func (o *Outcome) sub(r subRef) Suboption {
	if o.Reason != Success {
		return Suboption{}
	}
	if r.b&0x80 == 0 {
		return Suboption{Byte: r.b}
	}
	end := int(r.off) + int(r.n)
	return Suboption{Byte: r.b, Data: o.transcript[r.off:end:end]}
}

// Local returns our suboption for the negotiated TEP, as we sent it.
func (o *Outcome) Local() Suboption { return o.sub(o.local) }

// Peer returns the peer's suboption for the negotiated TEP, as received.
// With Local it lets tcpcrypt tell fresh key exchange from resumption
// (TC-D1).
func (o *Outcome) Peer() Suboption { return o.sub(o.peer) }

// Negotiate computes the outcome of TCP-ENO from our SYN-form option as
// sent (local) and the peer's as received (peer; nil when its SYN had
// none). It serves every kind of open: the roles come from the b bits
// alone (ENO-D2). Active open: local is our SYN's option, peer the
// SYN-ACK's. Passive open: local is what PutSYNACK wrote, peer the SYN's.
// Simultaneous open: both SYN options (each SYN-ACK repeats its SYN's,
// ENO-31). The negotiated TEP is the last TEP in B's option that A also
// offered, chosen without regard to v bits (TC-D1), whose TEP appears
// once in each option (ENO-D3 point 3) and that s.Valid accepts (ENO-D3
// point 2). Negotiate does not allocate.
func (s *Settings) Negotiate(local, peer []byte) Outcome {
	var out Outcome
	if len(peer) == 0 {
		out.Reason = NoOption
		return out
	}
	var l, p SYNOption
	if l.parse(local) != nil {
		out.Reason = BadLocalOption
		return out
	}
	if p.parse(peer) != nil {
		out.Reason = Malformed
		return out
	}
	out.LocalGlobal, out.PeerGlobal = l.global, p.global
	if l.global.B() {
		out.Role = RoleB
	}
	if r := s.checkGlobals(l.global, p.global); r != Success {
		out.Reason = r
		return out
	}
	if l.Vacuous() || p.Vacuous() {
		out.Reason = Vacuous
		return out
	}
	optA, optB := &l, &p
	if out.Role == RoleB {
		optA, optB = &p, &l
	}
	out.Reason = NoCommonTEP
	for i := int(optB.n) - 1; i >= 0; i-- {
		t := TEP(optB.subs[i].b & 0x7f)
		ca := optA.Count(t)
		if ca == 0 {
			continue
		}
		out.Reason = InvalidSuboptions
		if ca > 1 || optB.Count(t) > 1 {
			continue
		}
		li, pi := l.index(t), p.index(t)
		if s.Valid != nil && !s.Valid(Candidate{TEP: t, Role: out.Role, Local: l.At(li), Peer: p.At(pi)}) {
			continue
		}
		out.Reason = Success
		out.TEPByte = optB.subs[i].b
		out.lenA = uint8(copy(out.transcript[:], optA.raw))
		out.lenB = uint8(copy(out.transcript[out.lenA:], optB.raw))
		lbase, pbase := out.lenA, uint8(0)
		if out.Role == RoleA {
			lbase, pbase = 0, out.lenA
		}
		out.local, out.peer = l.subs[li], p.subs[pi]
		out.local.off += lbase
		out.peer.off += pbase
		return out
	}
	return out
}

// index returns the position of the first suboption with TEP t.
func (o *SYNOption) index(t TEP) int {
	for i, r := range o.subs[:o.n] {
		if TEP(r.b&0x7f) == t {
			return i
		}
	}
	return -1
}

// NegotiateOptions is Negotiate with the peer's whole TCP options area
// instead of its ENO option: it finds the option first, so a SYN with no
// usable option falls back with NoOption, MultipleOptions (ENO-6) or
// BadTCPOptions.
func (s *Settings) NegotiateOptions(local, peerArea []byte) Outcome {
	sc := ScanOptions(peerArea)
	opt, r := sc.SYNOption(peerArea)
	if r != Success {
		return Outcome{Reason: r}
	}
	return s.Negotiate(local, opt)
}
