package eno

import (
	"bytes"
	"testing"
)

// TEPs named as in RFC 8547 §6's figures.
const (
	tepX = TEPTcpcryptCurve25519
	tepY = TEPTcpcryptCurve448
	tepZ = TEPTcpcryptP256
)

func offers(teps ...TEP) []Offer {
	o := make([]Offer, len(teps))
	for i, t := range teps {
		o[i] = Offer{TEP: t}
	}
	return o
}

// put runs s.PutSYN into a 40-byte buffer.
func put(t *testing.T, s *Settings) []byte {
	t.Helper()
	var buf [MaxOptionLen]byte
	n, err := s.PutSYN(buf[:])
	if err != nil {
		t.Fatalf("PutSYN: %v", err)
	}
	return buf[:n:n]
}

// Resumption suboption data: 9-byte identifier half, 8-byte nonce (RFC 8548 §3.5).
var (
	idA    = rep(0xa1, 9)
	idB    = rep(0xb2, 9)
	nonceA = rep(0x0a, 8)
	nonceB = rep(0x0b, 8)
)

func TestPutSYN(t *testing.T) {
	tests := []struct {
		name string
		s    Settings
		dst  int
		want []byte
		err  error
	}{
		{"§15 A offers tcpcrypt X25519", Settings{Offers: offers(0x23)}, 40, h("45 03 23"), nil},
		{"§13 X25519 preferred over X448: most preferred last", Settings{Offers: offers(0x23, 0x24)}, 40, h("45 04 24 23"), nil},
		{"ENO-11 b=1 for simultaneous open", Settings{Offers: offers(0x23), PassiveRole: true}, 40, h("45 04 01 23"), nil},
		{"ENO-13 a=1", Settings{Offers: offers(0x23), AppAware: true}, 40, h("45 04 02 23"), nil},
		{"ENO-10 ENO-12 defaults: implicit 0x00", Settings{Offers: offers(0x23), AppAwareMandatory: true}, 40, h("45 03 23"), nil},
		{"§13 resumption proposal is 20 bytes", Settings{Offers: []Offer{{0x23, cat(idA, nonceA)}}}, 40,
			cat(h("45 14 a3"), idA, nonceA), nil},
		{"resumption plus fresh fallback TEP", Settings{Offers: []Offer{{0x23, cat(idA, nonceA)}, {TEP: 0x24}}}, 40,
			cat(h("45 15 24 a3"), idA, nonceA), nil},
		{"ENO-20 data not last gets a length byte", Settings{Offers: []Offer{{TEP: 0x24}, {0x23, idA}}}, 40,
			cat(h("45 0e 88 a3"), idA, h("24")), nil},
		{"ENO-38 no offers: vacuous", Settings{}, 40, h("45 02"), nil},
		{"ENO-38 vacuous with b=1", Settings{PassiveRole: true}, 40, h("45 03 01"), nil},
		{"§13 budget drops the least preferred", Settings{Offers: offers(0x23, 0x24, 0x21)}, 4, h("45 04 24 23"), nil},
		{"budget keeps only the most preferred", Settings{Offers: offers(0x23, 0x24, 0x21)}, 3, h("45 03 23"), nil},
		{"budget above 40 is capped", Settings{Offers: offers(0x23)}, 100, h("45 03 23"), nil},
		{"resumption drops the fresh TEP to fit 20 bytes", Settings{Offers: []Offer{{0x23, cat(idA, nonceA)}, {TEP: 0x24}}}, 20,
			cat(h("45 14 a3"), idA, nonceA), nil},
		{"resumption does not fit 19 bytes", Settings{Offers: []Offer{{0x23, cat(idA, nonceA)}}}, 19, nil, ErrNoRoom},
		{"no room for any offer", Settings{Offers: offers(0x23)}, 2, nil, ErrNoRoom},
		{"no room for a vacuous option", Settings{}, 1, nil, ErrNoRoom},
		{"TEP below 0x20", Settings{Offers: offers(0x1f)}, 40, nil, ErrBadTEP},
		{"TEP above 0x7f", Settings{Offers: offers(0x23, 0x80)}, 40, nil, ErrBadTEP},
		{"bad lower-preference TEP is an error even when it would be dropped", Settings{Offers: offers(0x23, 0x99)}, 3, nil, ErrBadTEP},
		{"ENO-D3 point 3 duplicate TEP", Settings{Offers: offers(0x23, 0x23)}, 40, nil, ErrDuplicateTEP},
		{"33 bytes of data not last", Settings{Offers: []Offer{{TEP: 0x24}, {0x23, rep(0, 33)}}}, 40, nil, ErrDataTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := make([]byte, tt.dst)
			n, err := tt.s.PutSYN(dst)
			if err != tt.err {
				t.Fatalf("PutSYN error %v, want %v", err, tt.err)
			}
			if !bytes.Equal(dst[:n], tt.want) {
				t.Fatalf("PutSYN = % x, want % x", dst[:n], tt.want)
			}
			if err != nil {
				return
			}
			o, err := ParseSYN(dst[:n]) // round trip
			if err != nil {
				t.Fatalf("own option does not parse: %v", err)
			}
			if o.Global() != tt.s.Global() {
				t.Errorf("global %#x, want %#x", o.Global(), tt.s.Global())
			}
		})
	}
}

func TestSYNLen(t *testing.T) {
	tests := []struct {
		s    Settings
		want int
		err  error
	}{
		{Settings{Offers: offers(0x23)}, 3, nil},
		{Settings{Offers: offers(0x23, 0x24), PassiveRole: true}, 5, nil},
		{Settings{Offers: []Offer{{0x23, cat(idA, nonceA)}}}, 20, nil},
		{Settings{Offers: []Offer{{0x23, cat(idA, nonceA)}, {TEP: 0x24}}, AppAware: true}, 22, nil},
		{Settings{Offers: []Offer{{0x23, rep(0, 32)}, {0x24, rep(0, 9)}}}, 0, ErrOptionTooLong},
		{Settings{Offers: offers(0x10)}, 0, ErrBadTEP},
	}
	for _, tt := range tests {
		if n, err := tt.s.SYNLen(); n != tt.want || err != tt.err {
			t.Errorf("%+v: SYNLen = %d, %v; want %d, %v", tt.s, n, err, tt.want, tt.err)
		}
	}
}

// resume is a tcpcrypt-like ChooseFunc for host B: it resumes when A's
// identifier half is idA and there is room, else answers fresh (TC-19, TC-21).
func resume(tep TEP, peer Suboption, room int) ([]byte, bool) {
	if peer.V() && len(peer.Data) >= 9 && bytes.Equal(peer.Data[:9], idA) && room >= 17 {
		return cat(idB, nonceB), true
	}
	return nil, true
}

// matchIDs is a tcpcrypt-like ValidFunc: a resumption answer must carry the
// other half of the identifier we proposed (TC-23).
func matchIDs(c Candidate) bool {
	if !c.Local.V() || !c.Peer.V() || len(c.Peer.Data) < 9 || len(c.Local.Data) < 9 {
		return true
	}
	l, p := c.Local.Data[:9], c.Peer.Data[:9]
	return bytes.Equal(l, idA) && bytes.Equal(p, idB) || bytes.Equal(l, idB) && bytes.Equal(p, idA)
}

func TestPutSYNACK(t *testing.T) {
	tests := []struct {
		name   string
		s      Settings
		syn    []byte
		choose ChooseFunc
		dst    int
		want   []byte
		reason Reason
	}{
		{"§15 success: ENO-17 explicit b=1, ENO-24 one TEP", Settings{Offers: offers(0x23)}, h("45 03 23"), nil, 40,
			h("45 04 01 23"), Success},
		{"Fig. 9: B answers <b=1,Y>", Settings{Offers: offers(tepY, tepX)}, h("45 04 23 24"), nil, 40,
			h("45 04 01 24"), Success},
		{"highest local preference wins over A's order", Settings{Offers: offers(0x21, 0x24, 0x23)}, h("45 04 24 23"), nil, 40,
			h("45 04 01 24"), Success},
		{"ENO-9 b=1 even when PassiveRole is false; a copied", Settings{Offers: offers(0x23), AppAware: true}, h("45 04 02 23"), nil, 40,
			h("45 04 03 23"), Success},
		{"ENO-15 ENO-16 A's z bits ignored, not echoed", Settings{Offers: offers(0x23)}, h("45 04 1c 23"), nil, 40,
			h("45 04 01 23"), Success},
		{"ENO-15 ENO-16 A's z bits and a=1: b=1 alone", Settings{Offers: offers(0x23)}, h("45 04 1e 23"), nil, 40,
			h("45 04 01 23"), Success},
		{"ENO-14 mandatory app-aware, A has a=1", Settings{Offers: offers(0x23), AppAwareMandatory: true}, h("45 04 02 23"), nil, 40,
			h("45 04 01 23"), Success},
		{"§15 mandatory app-aware at B, A has implicit a=0", Settings{Offers: offers(0x23), AppAwareMandatory: true}, h("45 03 23"), nil, 40,
			nil, AppAwareRequired},
		{"ENO-40 SYN without ENO gets no option", Settings{Offers: offers(0x23)}, nil, nil, 40, nil, NoOption},
		{"ENO-21 malformed SYN option ignored", Settings{Offers: offers(0x23)}, h("45 05 81 a3 00"), nil, 40, nil, Malformed},
		{"ENO-30 SYN with b=1 clashes", Settings{Offers: offers(0x23)}, h("45 04 01 23"), nil, 40, nil, RoleClash},
		{"ENO-39 vacuous SYN", Settings{Offers: offers(0x23)}, h("45 02"), nil, 40, nil, Vacuous},
		{"ENO-29 Fig. 10 case 2: no common TEP", Settings{Offers: offers(0x21, 0x22)}, h("45 04 24 23"), nil, 40, nil, NoCommonTEP},
		{"no local offers", Settings{}, h("45 03 23"), nil, 40, nil, NoCommonTEP},
		{"ENO-D3 point 3: A repeated the only common TEP", Settings{Offers: offers(0x23)}, h("45 04 23 23"), nil, 40, nil, InvalidSuboptions},
		{"repeated TEP skipped, next preference used", Settings{Offers: offers(0x23, 0x24)}, h("45 05 23 24 23"), nil, 40,
			h("45 04 01 24"), Success},
		{"§13 resumption answer is 21 bytes (TC-19)", Settings{Offers: offers(0x23)}, cat(h("45 14 a3"), idA, nonceA), resume, 40,
			cat(h("45 15 01 a3"), idB, nonceB), Success},
		{"TC-21 unknown identifier: fresh answer, same TEP", Settings{Offers: offers(0x23)}, cat(h("45 14 a3"), idB, nonceA), resume, 40,
			h("45 04 01 23"), Success},
		{"TC-22 short v=1 data is a fresh offer", Settings{Offers: offers(0x23)}, h("45 05 a3 01 02"), resume, 40,
			h("45 04 01 23"), Success},
		{"resumption answer needs 21 bytes; 20 gives fresh", Settings{Offers: offers(0x23)}, cat(h("45 14 a3"), idA, nonceA), resume, 20,
			h("45 04 01 23"), Success},
		{"choose declines a TEP: next one", Settings{Offers: offers(0x23, 0x24)}, h("45 04 24 23"),
			func(tep TEP, _ Suboption, _ int) ([]byte, bool) { return nil, tep != 0x23 }, 40, h("45 04 01 24"), Success},
		{"choose declines all", Settings{Offers: offers(0x23)}, h("45 03 23"),
			func(TEP, Suboption, int) ([]byte, bool) { return nil, false }, 40, nil, InvalidSuboptions},
		{"choose returns more data than room", Settings{Offers: offers(0x23)}, h("45 03 23"),
			func(TEP, Suboption, int) ([]byte, bool) { return rep(0, 40), true }, 40, nil, NoRoom},
		{"ENO-25 Valid rejects: not sent", Settings{Offers: offers(0x23), Valid: func(Candidate) bool { return false }}, h("45 03 23"), nil, 40,
			nil, InvalidSuboptions},
		{"no room for 4 bytes", Settings{Offers: offers(0x23)}, h("45 03 23"), nil, 3, nil, NoRoom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := make([]byte, tt.dst)
			n, r := tt.s.PutSYNACK(dst, tt.syn, tt.choose)
			if r != tt.reason || !bytes.Equal(dst[:n], tt.want) {
				t.Fatalf("PutSYNACK = % x, %v; want % x, %v", dst[:n], r, tt.want, tt.reason)
			}
			if r != Success {
				return
			}
			// ENO-25: what B sends is valid, so negotiation succeeds with
			// the one TEP it sent, from both ends.
			o, err := ParseSYN(dst[:n])
			if err != nil || o.Len() != 1 || !o.ExplicitGlobal() || !o.Global().B() {
				t.Fatalf("SYN-ACK option % x: %v", dst[:n], err)
			}
			b := tt.s.Negotiate(dst[:n], tt.syn)
			if !b.OK() || b.Role != RoleB || b.TEPByte != o.At(0).Byte {
				t.Errorf("B's outcome %v role %v TEP byte %#x", b.Reason, b.Role, b.TEPByte)
			}
			a := (&Settings{Valid: matchIDs}).Negotiate(tt.syn, dst[:n])
			if !a.OK() || a.Role != RoleA || a.TEPByte != b.TEPByte || !bytes.Equal(a.Transcript(), b.Transcript()) {
				t.Errorf("A's outcome %v role %v TEP byte %#x", a.Reason, a.Role, a.TEPByte)
			}
		})
	}
}

func TestNegotiate(t *testing.T) {
	resumeA := cat(h("45 14 a3"), idA, nonceA)
	tests := []struct {
		name    string
		s       Settings // our settings (only mandatory mode and Valid matter)
		local   []byte
		peer    []byte
		reason  Reason
		role    Role
		tepByte byte
		trans   []byte
	}{
		{"§15 success seen by A; transcript 45 03 23 45 04 01 23 (ENO-D6)", Settings{}, h("45 03 23"), h("45 04 01 23"),
			Success, RoleA, 0x23, h("45 03 23 45 04 01 23")},
		{"§15 success seen by B: same transcript, A's option first", Settings{}, h("45 04 01 23"), h("45 03 23"),
			Success, RoleB, 0x23, h("45 03 23 45 04 01 23")},
		{"Fig. 9 <X,Y> answered by <b=1,Y>", Settings{}, h("45 04 23 24"), h("45 04 01 24"),
			Success, RoleA, byte(tepY), h("45 04 23 24 45 04 01 24")},
		{"Fig. 10/11 SYN-ACK without ENO (ENO-28)", Settings{}, h("45 04 23 24"), nil, NoOption, 0, 0, nil},
		{"ENO-D3 last TEP in B's option wins, A's order ignored", Settings{}, h("45 04 23 24"), h("45 05 01 24 23"),
			Success, RoleA, 0x23, h("45 04 23 24 45 05 01 24 23")},
		{"ENO-30 simultaneous open, both b=0", Settings{}, h("45 03 23"), h("45 03 23"), RoleClash, RoleA, 0, nil},
		{"ENO-30 both b=1", Settings{}, h("45 04 01 23"), h("45 04 01 23"), RoleClash, RoleB, 0, nil},
		{"ENO-30 active opener set b=1, passive opener has b=1", Settings{}, h("45 04 01 23"), h("45 04 01 23"), RoleClash, RoleB, 0, nil},
		{"§8.1 middlebox echoes A's own option (b=0 both)", Settings{}, resumeA, resumeA, RoleClash, RoleA, 0, nil},
		{"ENO-14 mandatory app-aware, peer a=0", Settings{AppAwareMandatory: true}, h("45 04 02 23"), h("45 04 01 23"),
			AppAwareRequired, RoleA, 0, nil},
		{"ENO-14 mandatory app-aware, peer a=1", Settings{AppAwareMandatory: true}, h("45 04 02 23"), h("45 04 03 23"),
			Success, RoleA, 0x23, h("45 04 02 23 45 04 03 23")},
		{"ENO-39 peer vacuous", Settings{}, h("45 03 23"), h("45 03 01"), Vacuous, RoleA, 0, nil},
		{"ENO-39 own option vacuous", Settings{}, h("45 02"), h("45 04 01 23"), Vacuous, RoleA, 0, nil},
		{"ENO-21 malformed peer option", Settings{}, h("45 03 23"), h("45 06 01 81 a3 00"), Malformed, 0, 0, nil},
		{"ENO-22 malformed peer option", Settings{}, h("45 03 23"), h("45 06 01 80 23 00"), Malformed, 0, 0, nil},
		{"U-6 length byte last in peer option", Settings{}, h("45 03 23"), h("45 05 01 23 80"), Malformed, 0, 0, nil},
		{"own option malformed", Settings{}, h("45 03 80"), h("45 04 01 23"), BadLocalOption, 0, 0, nil},
		{"ENO-29 TC-3 no common TEP", Settings{}, h("45 03 23"), h("45 04 01 24"), NoCommonTEP, RoleA, 0, nil},
		{"ENO-8 later global ignored: first says b=1", Settings{}, h("45 03 23"), h("45 05 01 00 23"),
			Success, RoleA, 0x23, h("45 03 23 45 05 01 00 23")},
		{"ENO-8 later global ignored: first says b=0", Settings{}, h("45 03 23"), h("45 05 00 01 23"), RoleClash, RoleA, 0, nil},
		{"ENO-16 z bits ignored", Settings{}, h("45 03 23"), h("45 04 1d 23"),
			Success, RoleA, 0x23, h("45 03 23 45 04 1d 23")},
		{"TC-D1 v bits ignored when choosing: A resumes, B fresh", Settings{}, resumeA, h("45 04 01 23"),
			Success, RoleA, 0x23, cat(resumeA, h("45 04 01 23"))},
		{"ENO-D7 B's v bit is kept in the TEP byte", Settings{Valid: matchIDs}, resumeA, cat(h("45 15 01 a3"), idB, nonceB),
			Success, RoleA, 0xa3, cat(resumeA, h("45 15 01 a3"), idB, nonceB)},
		{"TC-23/TC-24 wrong identifier half: ignored, no other TEP", Settings{Valid: matchIDs}, resumeA, cat(h("45 15 01 a3"), idA, nonceB),
			InvalidSuboptions, RoleA, 0, nil},
		{"TC-23 wrong identifier half ignored, earlier valid TEP used", Settings{Valid: matchIDs},
			cat(h("45 15 24 a3"), idA, nonceA), cat(h("45 16 01 24 a3"), idA, nonceB),
			Success, RoleA, 0x24, cat(h("45 15 24 a3"), idA, nonceA, h("45 16 01 24 a3"), idA, nonceB)},
		{"ENO-D3 point 3 TEP repeated in B's option is not valid", Settings{}, h("45 04 24 23"), h("45 06 01 24 23 23"),
			Success, RoleA, 0x24, h("45 04 24 23 45 06 01 24 23 23")},
		{"ENO-D3 point 3 TEP repeated in A's option is not valid", Settings{}, h("45 04 01 23"), h("45 04 23 23"),
			InvalidSuboptions, RoleB, 0, nil},
		{"length bytes copied into the transcript as sent", Settings{}, h("45 08 82 a4 01 02 03 23"), h("45 04 01 24"),
			Success, RoleA, 0x24, h("45 08 82 a4 01 02 03 23 45 04 01 24")},
		{"ENO-21 peer's length byte overruns", Settings{}, h("45 03 23"), h("45 05 01 84 a3"), Malformed, 0, 0, nil},
		{"length-byte encoding of the last suboption kept verbatim", Settings{}, h("45 03 23"), h("45 07 01 81 a3 aa bb"),
			Success, RoleA, 0xa3, h("45 03 23 45 07 01 81 a3 aa bb")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := tt.s.Negotiate(tt.local, tt.peer)
			if out.Reason != tt.reason {
				t.Fatalf("reason %v, want %v", out.Reason, tt.reason)
			}
			if out.TEPByte != tt.tepByte || !bytes.Equal(out.Transcript(), tt.trans) {
				t.Errorf("TEP byte %#x transcript % x; want %#x % x", out.TEPByte, out.Transcript(), tt.tepByte, tt.trans)
			}
			if out.OK() != (tt.reason == Success) {
				t.Errorf("OK() = %v", out.OK())
			}
			switch tt.reason {
			case NoOption, Malformed, BadLocalOption:
			default:
				if out.Role != tt.role {
					t.Errorf("role %v, want %v", out.Role, tt.role)
				}
			}
			if tt.reason != Success {
				if out.Local().Byte != 0 || out.Peer().Byte != 0 || out.OptionA() != nil || out.OptionB() != nil {
					t.Errorf("fallback outcome exposes suboptions")
				}
				return
			}
			if out.TEP() != TEP(tt.tepByte&0x7f) {
				t.Errorf("TEP() = %#x", out.TEP())
			}
			a, b := out.OptionA(), out.OptionB()
			if !bytes.Equal(cat(a, b), tt.trans) || a[0] != Kind || b[0] != Kind || int(a[1]) != len(a) {
				t.Errorf("OptionA % x OptionB % x", a, b)
			}
			l, p := out.Local(), out.Peer()
			if l.TEP() != out.TEP() || p.TEP() != out.TEP() {
				t.Errorf("suboptions %+v %+v for TEP %#x", l, p, out.TEP())
			}
			if (tt.role == RoleB && l.Byte != out.TEPByte) || (tt.role == RoleA && p.Byte != out.TEPByte) {
				t.Errorf("B's suboption byte differs from TEPByte")
			}
		})
	}
}

// The outcome carries copies: it stays right when the packets are reused.
func TestOutcomeOwnsItsBytes(t *testing.T) {
	local := cat(h("45 14 a3"), idA, nonceA)
	peer := cat(h("45 15 01 a3"), idB, nonceB)
	out := (&Settings{Valid: matchIDs}).Negotiate(local, peer)
	if !out.OK() {
		t.Fatal(out.Reason)
	}
	want := cat(local, peer)
	clear(local)
	clear(peer)
	if !bytes.Equal(out.Transcript(), want) {
		t.Errorf("transcript changed with the packets: % x", out.Transcript())
	}
	if l, p := out.Local(), out.Peer(); !bytes.Equal(l.Data, cat(idA, nonceA)) || !bytes.Equal(p.Data, cat(idB, nonceB)) {
		t.Errorf("suboption data changed: % x / % x", l.Data, p.Data)
	}
	if out.PeerAppAware() {
		t.Error("peer sent a=0, PeerAppAware() is true")
	}
}

// ENO-13: the peer's a bit can be read back, whatever the outcome.
func TestPeerAppAware(t *testing.T) {
	for _, tt := range []struct {
		peer []byte
		ok   bool
		a    bool
	}{
		{h("45 04 03 23"), true, true},
		{h("45 04 01 23"), true, false},
		{h("45 04 03 24"), false, true}, // no common TEP, a still reported
	} {
		out := (&Settings{}).Negotiate(h("45 03 23"), tt.peer)
		if out.OK() != tt.ok || out.PeerAppAware() != tt.a || out.LocalGlobal != 0 {
			t.Errorf("peer % x: ok %v a %v local %#x", tt.peer, out.OK(), out.PeerAppAware(), out.LocalGlobal)
		}
	}
}

// Fig. 12: A sends <Y,X> in SYN and SYN-ACK, B sends <b=1,X,Y,Z> in both.
// Z is not offered by A, so the last valid TEP in B's option is Y.
func TestSimultaneousOpenFig12(t *testing.T) {
	a := Settings{Offers: offers(tepX, tepY)}                          // prefers X: wire <Y,X>
	b := Settings{Offers: offers(tepZ, tepY, tepX), PassiveRole: true} // ENO-11: wire <b=1,X,Y,Z>
	synA, synB := put(t, &a), put(t, &b)
	if want := []byte{Kind, 4, byte(tepY), byte(tepX)}; !bytes.Equal(synA, want) {
		t.Fatalf("A's option % x, want % x", synA, want)
	}
	if want := []byte{Kind, 6, 0x01, byte(tepX), byte(tepY), byte(tepZ)}; !bytes.Equal(synB, want) {
		t.Fatalf("B's option % x, want % x", synB, want)
	}
	// ENO-31: each SYN-ACK repeats its SYN, so either received copy gives
	// the same answer.
	oa, ob := a.Negotiate(synA, synB), b.Negotiate(synB, synA)
	for _, o := range []Outcome{oa, ob} {
		if !o.OK() || o.TEP() != tepY || o.TEPByte != byte(tepY) {
			t.Fatalf("outcome %v TEP %#x, want Y", o.Reason, o.TEP())
		}
	}
	if oa.Role != RoleA || ob.Role != RoleB || !bytes.Equal(oa.Transcript(), ob.Transcript()) ||
		!bytes.Equal(oa.Transcript(), cat(synA, synB)) {
		t.Errorf("roles %v/%v transcripts % x / % x", oa.Role, ob.Role, oa.Transcript(), ob.Transcript())
	}
	// Both keep the default b = 0: roles clash and both fall back.
	b.PassiveRole = false
	if o := b.Negotiate(put(t, &b), synA); o.Reason != RoleClash {
		t.Errorf("both b=0: %v", o.Reason)
	}
}

// §15 row 1 end to end: A's SYN, B's answer, both outcomes, A's third
// segment option.
func TestThreeWayHandshake(t *testing.T) {
	a := Settings{Offers: offers(0x23)}
	b := Settings{Offers: offers(0x23)}
	syn := put(t, &a)
	var ack [MaxOptionLen]byte
	n, r := b.PutSYNACK(ack[:], syn, nil)
	if r != Success {
		t.Fatal(r)
	}
	oa, ob := a.Negotiate(syn, ack[:n]), b.Negotiate(ack[:n], syn)
	want := h("45 03 23 45 04 01 23")
	if !oa.OK() || !ob.OK() || !bytes.Equal(oa.Transcript(), want) || !bytes.Equal(ob.Transcript(), want) {
		t.Fatalf("A %v % x, B %v % x", oa.Reason, oa.Transcript(), ob.Reason, ob.Transcript())
	}
	var third [2]byte
	if n, _ := PutNonSYN(third[:]); !bytes.Equal(third[:n], h("45 02")) { // ENO-27
		t.Errorf("third segment option % x", third[:n])
	}
}

// ENO-6 and ENO-28 through the whole options area.
func TestNegotiateOptions(t *testing.T) {
	s := Settings{Offers: offers(0x23)}
	local := h("45 03 23")
	tests := []struct {
		name string
		area []byte
		want Reason
	}{
		{"one option among others", cat(linuxSYN, h("45 04 01 23")), Success},
		{"ENO-6 two options: as if none, disable", cat(h("45 04 01 23 45 04 01 23")), MultipleOptions},
		{"ENO-28 no option", linuxSYN, NoOption},
		{"legacy 253/0x454E only", h("fd 06 45 4e 01 23"), NoOption},
		{"malformed option list", h("45 04 01 23 02 00"), BadTCPOptions},
		{"malformed ENO option", h("45 04 01 80"), Malformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if o := s.NegotiateOptions(local, tt.area); o.Reason != tt.want {
				t.Errorf("reason %v, want %v", o.Reason, tt.want)
			}
		})
	}
}

func TestReasonString(t *testing.T) {
	seen := map[string]bool{}
	for r := Success; r < numReasons; r++ {
		s := r.String()
		if s == "" || s == "unknown reason" || seen[s] {
			t.Errorf("Reason(%d).String() = %q", r, s)
		}
		seen[s] = true
	}
	if Reason(200).String() != "unknown reason" {
		t.Error("out-of-range reason")
	}
	if RoleA.String() != "A" || RoleB.String() != "B" {
		t.Error("role names")
	}
}
