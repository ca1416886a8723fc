package tcpcrypt

import (
	"crypto/rand"
	"fmt"
	"slices"

	"github.com/tcpinc/tcpinc/cryptopool"
)

// Role is a host's TCP-ENO role: A (normally the active opener) or B. The
// values match the API draft's TCP_ENO_ROLE (0 = A, 1 = B).
type Role uint8

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

// Session is what a completed handshake or resumption gives the framing
// layer: the suite, the session ID and the generation-0 keys of each
// direction, and the stream offsets where each side's first frame starts.
type Session struct {
	TEP     TEP  // negotiated TEP, v bit clear
	Resumed bool // keys came from a cached secret (RFC 8548 §3.5)
	Role    Role // this host's role in this connection
	// OrigRole is this host's role in the session that produced ss[0]. It,
	// not Role, decides the send key: k_ab if it was A, k_ba if it was B
	// (TC-38). For a fresh session it equals Role.
	OrigRole Role
	Suite    cryptopool.Suite

	// ID is session_id[i]: the TEP byte as B sent it (v bit set when
	// resumed), then CPRF(ss[i], CONST_SESSID | sn[i], 32) (TC-D5).
	ID [SessionIDLen]byte
	// MasterKey is mk[0]; mk[j+1] = NextMasterKey(mk[j]) and Keys(mk[j])
	// gives generation j (rekeying, RFC 8548 §3.8).
	MasterKey [SecretLen]byte
	// Send and Recv are the generation-0 traffic keys: Send encrypts this
	// host's frames, Recv opens the peer's.
	Send, Recv TrafficKey

	// SendOffset is the stream offset of this host's first frame: the
	// length of the Init message it sent, or 0 when resumed. RecvOffset is
	// the same for the peer's frames: the peer's message_len as received
	// (ignored tail included), or 0 when resumed (RFC 8548 §3.6).
	SendOffset, RecvOffset uint64

	// next is ss[i+1], kept for the resumption cache; ss[i] itself is not
	// kept (TC-30).
	next [SecretLen]byte
}

// Wipe zeroes the session's secrets: mk[0], the generation-0 keys and
// ss[i+1]. Call it once the KeyRing (NewSessionKeyRing) and the cache
// (Cache.Store) have taken their copies: the KeyRing drops the old
// generations' keys as it rekeys (RFC 8548 §3.8, TC-60), the cache erases
// ss[i+1] when it is used (TC-30), and neither can if the session keeps
// them. What names the session (ID, TEP, suite, roles) stays. A nil
// session is left alone.
func (s *Session) Wipe() {
	if s == nil {
		return
	}
	clear(s.MasterKey[:])
	for _, k := range []*TrafficKey{&s.Send, &s.Recv} {
		clear(k.Key[:cap(k.Key)]) // the CPRF output: K and NR
		clear(k.NR[:])
	}
	clear(s.next[:])
}

// SendsAB reports whether this host encrypts with k_ab (it was A in the
// original session) rather than k_ba (TC-38).
func (s *Session) SendsAB() bool { return s.OrigRole == RoleA }

// Keys returns this host's send and receive keys of the generation whose
// master key is mk, by original role (TC-38).
func (s *Session) Keys(mk []byte) (send, recv TrafficKey) {
	kab, kba := TrafficKeys(mk, s.Suite)
	if s.OrigRole == RoleA {
		return kab, kba
	}
	return kba, kab
}

// newSession derives everything from ss[i] and sn[i] (empty when fresh).
// tepByte is session ID byte 0: the TEP byte as host B sent it. The caller
// erases ss.
func newSession(tep TEP, tepByte byte, resumed bool, role, orig Role, suite cryptopool.Suite, ss, sn []byte) *Session {
	s := &Session{TEP: tep, Resumed: resumed, Role: role, OrigRole: orig, Suite: suite}
	s.ID = SessionID(tepByte, ss, sn)
	mk := MasterKey(ss, sn)
	copy(s.MasterKey[:], mk)
	s.Send, s.Recv = s.Keys(mk)
	clear(mk)
	next := NextSecret(ss)
	copy(s.next[:], next)
	clear(next)
	return s
}

// ResumedSession derives the session of a resumed connection (RFC 8548
// §3.5): sn = nonceA | nonceB, where nonceA is the resumption nonce of the
// host that was A in the ORIGINAL session (U-4), whatever the roles now;
// mk[0] = MasterKey(ss, sn); the session ID starts with tep|0x80; keys
// follow origRole (TC-38); there are no Init messages, so both first frames
// are at offset 0. suite is the AEAD of the original session, the only one
// the two hosts agreed on. Cache users get this from Resumption.Session.
func ResumedSession(tep TEP, suite cryptopool.Suite, role, origRole Role, ss, nonceA, nonceB []byte) (*Session, error) {
	if !tep.Valid() {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedTEP, tep)
	}
	if !suite.Valid() || len(ss) != SecretLen || len(nonceA) > MaxResumeNonce || len(nonceB) > MaxResumeNonce {
		return nil, fmt.Errorf("%w: resumption inputs", ErrInvalidConfig)
	}
	var snBuf [2 * MaxResumeNonce]byte
	sn := append(append(snBuf[:0], nonceA...), nonceB...)
	return newSession(tep, byte(tep)|ResumeBit, true, role, origRole, suite, ss, sn), nil
}

// InitiatorConfig is what host A needs for a fresh key exchange.
type InitiatorConfig struct {
	TEP TEP
	// TEPByte is the negotiated TEP byte exactly as host B sent it in its
	// SYN (eno.Outcome.TEPByte), v bit included: session ID byte 0 (RFC
	// 8547 §5.1, RFC 8548 §3.4). Zero means TEP with v = 0. It has v = 1
	// when B sent a resumption suboption yet the hosts do a fresh exchange,
	// as in a simultaneous open where A offered the TEP with v = 0.
	TEPByte byte
	// Ciphers are the AEADs to advertise in Init1, in this order (TC-12,
	// the API draft's TCP_CRYPT_ACONF). All must be supported suites.
	Ciphers []cryptopool.Suite
	// NA is N_A (32 bytes); nil draws it from crypto/rand (TC-81).
	NA  []byte
	Key *KeyPair // ephemeral pair for TEP
	// Transcript is eno_transcript: A's SYN ENO option, then B's, each
	// with kind and length bytes (RFC 8547 §4.8). It is copied.
	Transcript []byte
	// MaxInitLen caps the peer's message_len (0: DefaultMaxInitLen).
	MaxInitLen int
}

// Initiator runs role A of a fresh key exchange, with no I/O: send Init1(),
// Feed the peer's stream until Init2 is complete, then call Session. Session
// does the public-key work and may run on another goroutine, as long as
// nothing else uses the Initiator meanwhile.
type Initiator struct {
	tep        TEP
	tepByte    byte
	ka         KeyAgreement
	key        *KeyPair
	ciphers    []cryptopool.Suite
	nA         [NonceLen]byte
	transcript []byte
	init1      []byte
	reader     InitReader
}

// NewInitiator checks cfg and builds Init1.
func NewInitiator(cfg InitiatorConfig) (*Initiator, error) {
	ka, err := KeyAgreementFor(cfg.TEP)
	if err != nil {
		return nil, err
	}
	if err := checkPair(cfg.Key, cfg.TEP); err != nil {
		return nil, err
	}
	if err := checkSuites(cfg.Ciphers); err != nil {
		return nil, err
	}
	tepByte, err := sessionTEPByte(cfg.TEP, cfg.TEPByte)
	if err != nil {
		return nil, err
	}
	a := &Initiator{
		tep:        cfg.TEP,
		tepByte:    tepByte,
		ka:         ka,
		key:        cfg.Key,
		ciphers:    slices.Clone(cfg.Ciphers),
		transcript: slices.Clone(cfg.Transcript),
	}
	if err := fillNonce(a.nA[:], cfg.NA); err != nil {
		return nil, err
	}
	if a.init1, err = AppendInit1(nil, a.ciphers, a.nA[:], cfg.Key.Public); err != nil {
		return nil, err
	}
	if err := a.reader.init(Init2Magic, init2Head-2, cfg.TEP, cfg.MaxInitLen); err != nil {
		return nil, err
	}
	return a, nil
}

// sessionTEPByte checks a configured TEP byte against tep; zero means tep
// with v = 0.
func sessionTEPByte(tep TEP, b byte) (byte, error) {
	if b == 0 {
		return byte(tep), nil
	}
	if TEP(b&^ResumeBit) != tep {
		return 0, fmt.Errorf("%w: TEP byte 0x%02x is not %v", ErrInvalidConfig, b, tep)
	}
	return b, nil
}

func checkSuites(s []cryptopool.Suite) error {
	if len(s) == 0 || len(s) > 255 {
		return fmt.Errorf("%w: need 1..255 AEADs, got %d", ErrInvalidConfig, len(s))
	}
	for _, c := range s {
		if !c.Valid() {
			return fmt.Errorf("%w: unsupported AEAD %v", ErrInvalidConfig, c)
		}
	}
	return nil
}

func fillNonce(dst, given []byte) error {
	if given == nil {
		_, err := rand.Read(dst)
		return err
	}
	if len(given) != len(dst) {
		return fmt.Errorf("%w: nonce is %d bytes, want %d", ErrInvalidConfig, len(given), len(dst))
	}
	copy(dst, given)
	return nil
}

// Init1 is the message to send first on A's stream, as it goes on the wire.
func (a *Initiator) Init1() []byte { return a.init1 }

// Feed consumes B's stream until Init2 is complete; see InitReader.Feed.
// When Init2 is complete it also checks that B chose an AEAD from A's
// list (TC-14).
func (a *Initiator) Feed(p []byte) (n int, done bool, err error) {
	n, done, err = a.reader.Feed(p)
	if !done || err != nil {
		return n, done, err
	}
	m, _ := a.reader.Init2()
	if !slices.Contains(a.ciphers, m.Cipher) {
		a.reader.err = fmt.Errorf("%w: %v", ErrCipherNotOffered, m.Cipher)
		return n, false, a.reader.err
	}
	return n, true, nil
}

// Session computes ES, the PRK and the session once Init2 is complete.
func (a *Initiator) Session() (*Session, error) {
	if a.reader.err != nil {
		return nil, a.reader.err
	}
	m, err := a.reader.Init2()
	if err != nil {
		return nil, err
	}
	es, err := a.ka.SharedSecret(a.key, m.Pub)
	if err != nil {
		return nil, err
	}
	ss0 := PRK(a.nA[:], a.transcript, a.init1, m.Raw, es)
	clear(es)
	s := newSession(a.tep, a.tepByte, false, RoleA, RoleA, m.Cipher, ss0, nil)
	clear(ss0)
	s.SendOffset, s.RecvOffset = uint64(len(a.init1)), uint64(len(m.Raw))
	return s, nil
}

// ResponderConfig is what host B needs for a fresh key exchange.
type ResponderConfig struct {
	TEP     TEP
	TEPByte byte // as InitiatorConfig.TEPByte
	// Prefs is B's AEAD preference, MOST preferred first (TC-12). Note the
	// API draft's TCP_CRYPT_BCONF lists them in increasing preference;
	// reverse such a list before passing it here.
	Prefs []cryptopool.Suite
	// NB is N_B (32 bytes); nil draws it from crypto/rand.
	NB []byte
	// Key is B's ephemeral pair. Nil: SetKey gives it later, before Init2
	// and Session (B has no use for it until Init1 is in, and making one
	// costs a public-key operation a peer could ask for and never use).
	Key        *KeyPair
	Transcript []byte // eno_transcript, as for InitiatorConfig
	MaxInitLen int
}

// Responder runs role B of a fresh key exchange: Feed A's stream until
// Init1 is complete (which also chooses the AEAD and builds Init2), send
// Init2(), and call Session (which may run on another goroutine).
type Responder struct {
	tep        TEP
	tepByte    byte
	ka         KeyAgreement
	key        *KeyPair
	prefs      []cryptopool.Suite
	nB         [NonceLen]byte
	transcript []byte
	suite      cryptopool.Suite
	init2      []byte
	reader     InitReader
}

// NewResponder checks cfg.
func NewResponder(cfg ResponderConfig) (*Responder, error) {
	ka, err := KeyAgreementFor(cfg.TEP)
	if err != nil {
		return nil, err
	}
	if cfg.Key != nil {
		if err := checkPair(cfg.Key, cfg.TEP); err != nil {
			return nil, err
		}
	}
	if err := checkSuites(cfg.Prefs); err != nil {
		return nil, err
	}
	tepByte, err := sessionTEPByte(cfg.TEP, cfg.TEPByte)
	if err != nil {
		return nil, err
	}
	b := &Responder{
		tep:        cfg.TEP,
		tepByte:    tepByte,
		ka:         ka,
		key:        cfg.Key,
		prefs:      slices.Clone(cfg.Prefs),
		transcript: slices.Clone(cfg.Transcript),
	}
	if err := fillNonce(b.nB[:], cfg.NB); err != nil {
		return nil, err
	}
	if err := b.reader.init(Init1Magic, init1Head, cfg.TEP, cfg.MaxInitLen); err != nil {
		return nil, err
	}
	return b, nil
}

// Feed consumes A's stream until Init1 is complete; see InitReader.Feed.
// On completion it picks the first of B's preferences that A offered
// (unknown ids in A's list never match, U-1) and builds Init2.
func (b *Responder) Feed(p []byte) (n int, done bool, err error) {
	n, done, err = b.reader.Feed(p)
	if !done || err != nil || b.init2 != nil {
		return n, done, err
	}
	m, _ := b.reader.Init1()
	for _, s := range b.prefs {
		if m.Offers(s) {
			b.suite = s
			break
		}
	}
	if b.suite == 0 {
		b.reader.err = ErrNoCommonCipher
		return n, false, b.reader.err
	}
	if b.key != nil {
		b.init2, err = AppendInit2(nil, b.suite, b.nB[:], b.key.Public)
	}
	return n, true, err
}

// TEP is the responder's TEP.
func (b *Responder) TEP() TEP { return b.tep }

// NeedsKey reports whether B's pair is still to be given (SetKey).
func (b *Responder) NeedsKey() bool { return b.key == nil }

// SetKey gives B's ephemeral pair to a Responder made without one. Init2 is
// built at once if Init1 is in.
func (b *Responder) SetKey(kp *KeyPair) error {
	if b.key != nil {
		return fmt.Errorf("%w: key pair given twice", ErrInvalidConfig)
	}
	if err := checkPair(kp, b.tep); err != nil {
		return err
	}
	b.key = kp
	if b.suite != 0 && b.init2 == nil {
		var err error
		b.init2, err = AppendInit2(nil, b.suite, b.nB[:], kp.Public)
		return err
	}
	return nil
}

// Init2 is the message to send first on B's stream, nil until Init1 is in
// and B has its pair.
func (b *Responder) Init2() []byte { return b.init2 }

// Suite is the chosen AEAD, 0 until Init1 is in.
func (b *Responder) Suite() cryptopool.Suite { return b.suite }

// Session computes ES, the PRK and the session once Init1 is complete.
func (b *Responder) Session() (*Session, error) {
	if b.reader.err != nil {
		return nil, b.reader.err
	}
	if b.init2 == nil {
		return nil, ErrNotReady
	}
	m, _ := b.reader.Init1()
	es, err := b.ka.SharedSecret(b.key, m.Pub)
	if err != nil {
		return nil, err
	}
	ss0 := PRK(m.NA, b.transcript, m.Raw, b.init2, es)
	clear(es)
	s := newSession(b.tep, b.tepByte, false, RoleB, RoleB, b.suite, ss0, nil)
	clear(ss0)
	s.SendOffset, s.RecvOffset = uint64(len(b.init2)), uint64(len(m.Raw))
	return s, nil
}
