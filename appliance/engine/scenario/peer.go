package scenario

import (
	"crypto/rand"
	"fmt"
	"slices"

	"github.com/tcpinc/tcpinc/appliance/eno"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
	"github.com/tcpinc/tcpinc/cryptopool"
)

// Peer is a host-based tcpcrypt endpoint at the level of its byte streams,
// built from packages eno and tcpcrypt: it answers or makes the TCP-ENO
// options, runs the key exchange, seals its own frames wherever the test
// wants them cut, and decrypts the frames the other side sends. Tests put
// its bytes into segments themselves (Host), so a Peer can stand in for one
// appliance on the link and frame its stream differently than an appliance
// would (large frames over many segments, several frames in one segment,
// Init split across segments).
type Peer struct {
	Role     tcpcrypt.Role
	Settings eno.Settings
	Suites   []cryptopool.Suite // Init1 list (A) or preference (B)
	TEP      tcpcrypt.TEP

	SYNOpt  []byte // our SYN-form ENO option as sent
	Outcome eno.Outcome
	Session *tcpcrypt.Session
	Ring    *tcpcrypt.KeyRing
	SendOff uint64 // wire offset of our next frame
	Init    []byte // our Init message (Init1 or Init2), once known

	In     *Stream // the other side's wire stream as received
	Frames []PeerFrame
	Err    error // first error of the receive side (sticky)

	ini  *tcpcrypt.Initiator
	resp *tcpcrypt.Responder
	dec  *tcpcrypt.FrameDecoder
	fed  int
	res  *tcpcrypt.Resumption
}

// PeerFrame is one frame the Peer opened.
type PeerFrame struct {
	Offset uint64
	Data   []byte
	FIN    bool
	Rekey  bool
}

// NewPeer returns a peer in role for X25519 and AES-128-GCM. otherISN is the
// ISN of the side whose stream it receives.
func NewPeer(role tcpcrypt.Role, otherISN uint32) *Peer {
	p := &Peer{
		Role:   role,
		Suites: []cryptopool.Suite{cryptopool.AES128GCM},
		TEP:    tcpcrypt.TEPX25519,
		In:     NewStream(otherISN),
	}
	p.Settings.Offers = []eno.Offer{{TEP: eno.TEP(tcpcrypt.TEPX25519)}}
	return p
}

// SYNOption returns role A's SYN-form option (and keeps it). It panics
// only when the test configured impossible Settings.
func (p *Peer) SYNOption() []byte {
	var b [eno.MaxOptionLen]byte
	n, err := p.Settings.PutSYN(b[:])
	if err != nil {
		panic(err)
	}
	p.SYNOpt = slices.Clone(b[:n])
	return p.SYNOpt
}

// OfferResumption makes role A offer the next cached secret for key
// (RFC 8548 §3.5) instead of a fresh exchange; it reports false when the
// cache has none. Call it before SYNOption.
func (p *Peer) OfferResumption(c *tcpcrypt.Cache[string], key string) bool {
	r, ok := c.Offer(key)
	if !ok {
		return false
	}
	sub := r.AppendSuboption(nil)
	p.res = r
	p.Settings.Offers = []eno.Offer{{TEP: eno.TEP(r.TEP), Data: sub[1:]}}
	return true
}

// GotSYNACK negotiates with B's option (nil when the SYN-ACK had none) and,
// on success, starts role A: Init returns Init1 and SendOff is after it,
// or, when B accepted our resumption offer, the resumed session is ready
// at once with both streams' frames at offset 0.
func (p *Peer) GotSYNACK(opt []byte) error {
	p.Outcome = p.Settings.Negotiate(p.SYNOpt, opt)
	if !p.Outcome.OK() {
		return fmt.Errorf("ENO fallback: %v", p.Outcome.Reason)
	}
	if b := p.Outcome.Peer(); p.res != nil && b.V() {
		if !p.res.MatchReply(b.Byte, b.Data) {
			return fmt.Errorf("resumption reply does not match (TC-23)")
		}
		var err error
		if p.Session, err = p.res.Session(tcpcrypt.RoleA); err != nil {
			return err
		}
		if p.Ring, err = tcpcrypt.NewSessionKeyRing(p.Session); err != nil {
			return err
		}
		p.dec = tcpcrypt.NewFrameDecoder(p.Ring, 0)
		return nil
	}
	key, err := newKey(p.TEP)
	if err != nil {
		return err
	}
	p.ini, err = tcpcrypt.NewInitiator(tcpcrypt.InitiatorConfig{
		TEP: p.TEP, TEPByte: p.Outcome.TEPByte, Ciphers: p.Suites, Key: key,
		Transcript: p.Outcome.Transcript(),
	})
	if err != nil {
		return err
	}
	p.Init = p.ini.Init1()
	p.SendOff = uint64(len(p.Init))
	return nil
}

// AnswerSYN builds role B's SYN-ACK option for A's option and starts role
// B; Init is set once Init1 has been received.
func (p *Peer) AnswerSYN(opt []byte) ([]byte, error) {
	var b [eno.MaxOptionLen]byte
	n, r := p.Settings.PutSYNACK(b[:], opt, nil)
	if r != eno.Success {
		return nil, fmt.Errorf("ENO fallback: %v", r)
	}
	p.SYNOpt = slices.Clone(b[:n])
	p.Outcome = p.Settings.Negotiate(p.SYNOpt, opt)
	if !p.Outcome.OK() {
		return nil, fmt.Errorf("ENO fallback: %v", p.Outcome.Reason)
	}
	key, err := newKey(p.TEP)
	if err != nil {
		return nil, err
	}
	p.resp, err = tcpcrypt.NewResponder(tcpcrypt.ResponderConfig{
		TEP: p.TEP, TEPByte: p.Outcome.TEPByte, Prefs: p.Suites, Key: key,
		Transcript: p.Outcome.Transcript(),
	})
	return p.SYNOpt, err
}

func newKey(tep tcpcrypt.TEP) (*tcpcrypt.KeyPair, error) {
	ka, err := tcpcrypt.KeyAgreementFor(tep)
	if err != nil {
		return nil, err
	}
	return ka.GenerateKey(rand.Reader)
}

// Receive adds a wire segment of the other side's stream and processes the
// bytes that became contiguous: the other side's Init message first, then
// its frames. Errors are sticky in p.Err and returned.
func (p *Peer) Receive(s Seg) error {
	if p.Err != nil {
		return p.Err
	}
	if err := p.In.AddSeg(s); err != nil {
		p.Err = err
		return err
	}
	all := p.In.Contiguous()
	if p.fed == len(all) {
		return nil
	}
	chunk := slices.Clone(all[p.fed:])
	p.fed = len(all)
	if p.dec == nil {
		var n int
		var done bool
		var err error
		if p.Role == tcpcrypt.RoleA {
			n, done, err = p.ini.Feed(chunk)
		} else {
			n, done, err = p.resp.Feed(chunk)
		}
		if err != nil {
			p.Err = err
			return err
		}
		if !done {
			return nil
		}
		if err := p.startSession(); err != nil {
			p.Err = err
			return err
		}
		chunk = chunk[n:]
	}
	if len(chunk) == 0 {
		return nil
	}
	if err := p.dec.Feed(chunk); err != nil {
		p.Err = err
		return err
	}
	for {
		f, ok, err := p.dec.Next()
		if err != nil {
			p.Err = err
			return err
		}
		if !ok {
			return nil
		}
		p.Frames = append(p.Frames, PeerFrame{Offset: f.Offset, Data: slices.Clone(f.Data), FIN: f.FIN, Rekey: f.Rekey})
	}
}

func (p *Peer) startSession() error {
	var err error
	if p.Role == tcpcrypt.RoleA {
		p.Session, err = p.ini.Session()
	} else {
		p.Init = p.resp.Init2()
		p.SendOff = uint64(len(p.Init))
		p.Session, err = p.resp.Session()
	}
	if err != nil {
		return err
	}
	if p.Ring, err = tcpcrypt.NewSessionKeyRing(p.Session); err != nil {
		return err
	}
	p.dec = tcpcrypt.NewFrameDecoder(p.Ring, p.Session.RecvOffset)
	return nil
}

// Ready reports whether keys exist.
func (p *Peer) Ready() bool { return p.Ring != nil }

// Seal returns the next frame of our stream, carrying data (FINp if fin),
// at SendOff, and moves SendOff past it. It panics when the test seals
// what tcpcrypt forbids (after FINp, too much data): a bug in the test.
func (p *Peer) Seal(data []byte, fin bool) []byte {
	k, err := p.Ring.Send(len(data), fin)
	if err != nil {
		panic(err)
	}
	h := tcpcrypt.FrameHeader{Rekey: k.Rekey, FIN: fin}
	buf := make([]byte, h.Overhead()+len(data))
	copy(buf[h.DataStart():], data)
	f, err := k.Sealer.Seal(buf, h, len(data), p.SendOff)
	if err != nil {
		panic(err)
	}
	p.SendOff += uint64(len(f))
	return f
}

// Data returns the plaintext of every frame opened so far.
func (p *Peer) Data() []byte {
	var b []byte
	for _, f := range p.Frames {
		b = append(b, f.Data...)
	}
	return b
}

// FIN reports whether a FINp frame was opened.
func (p *Peer) FIN() bool { return len(p.Frames) > 0 && p.Frames[len(p.Frames)-1].FIN }
