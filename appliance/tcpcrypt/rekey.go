package tcpcrypt

import (
	"errors"
	"fmt"

	"github.com/tcpinc/tcpinc/cryptopool"
)

// Errors of the rekey state machine.
var (
	// ErrRekeyPending: StartRekey was called while an earlier raise of the
	// local generation has not yet gone out on a frame.
	ErrRekeyPending = errors.New("tcpcrypt: a rekey is already pending")
	// ErrEmptyRekey: an empty frame would start a second rekey while an
	// earlier empty rekey frame is still unanswered (TC-58).
	ErrEmptyRekey = errors.New("tcpcrypt: second empty rekey frame while one is unanswered")
	// ErrFINSent: no frame may follow the FINp frame (TC-49).
	ErrFINSent = errors.New("tcpcrypt: frame after FINp")
	// ErrNoKey: the keys of that generation were dropped or never existed.
	ErrNoKey = errors.New("tcpcrypt: no key for that generation")
	// ErrTooManyGenerations: more than MaxGenerations generations would have
	// to be kept at once (a peer rekeying faster than frames are
	// acknowledged). Matches ErrAbort.
	ErrTooManyGenerations error = &peerError{"tcpcrypt: too many key generations kept"}
)

// MaxGenerations caps the sending keys a KeyRing keeps at once (the
// generations from the oldest one Forget kept up to the newest one sent
// with), so a peer that rekeys without end, making this side answer
// without acknowledging, cannot grow a flow's memory without bound. The
// receiving side keeps one generation whatever the peer does.
const MaxGenerations = 64

// KeyRing is the rekey state machine of one connection (RFC 8548 §3.8,
// docs/protocol.md §14, TC-53..TC-61). It derives the keys of generation j from
// mk[j] lazily, tracks the local generation (what this side sends with) and
// the remote generation (the highest seen from the peer), says when a frame
// must carry the rekey bit, and keeps old sending keys for retransmission
// until Forget drops them.
//
// Sending is in two steps so that a host can owe several rekey frames: the
// local generation is raised at once (TC-56) but each frame with rekey = 1
// moves the generation actually sent with (SendGeneration) up by exactly one,
// because that is how far the peer's remote generation moves per frame.
//
// The two directions walk the master-key chain each on its own: the
// receiving side keeps mk[remote] and the remote generation's key, the
// sending side the newest master key it derived and the sending keys still
// needed. Either may run far ahead of the other: after this side's FINp
// the peer may go on rekeying while nothing more is sent (RFC 8548 §3.8),
// and after the peer's FINp this side may go on rekeying alone.
//
// A KeyRing is not safe for concurrent use; it belongs to the flow's owner.
type KeyRing struct {
	suite   cryptopool.Suite
	sendsAB bool // this host sends with k_ab (it was A in the original session, TC-38)

	rmk  []byte  // mk[remote]: the next remote generation derives from it
	open *Opener // the remote generation's receiving key

	smk     []byte    // mk[smkGen], the newest master key the sending side derived
	smkGen  uint64    // its generation
	sealers []*Sealer // sending keys of generations sendBase..smkGen; nil once wiped

	local    uint64 // local generation (TC-53, TC-56)
	remote   uint64 // remote generation
	sendGen  uint64 // generation of the next frame that does not carry rekey = 1
	sendBase uint64 // sending keys below this generation were forgotten
	respond  bool   // a peer rekey raised local: frames are owed at once (TC-57)
	emptyGen uint64 // generation started by the last empty rekey frame, 0 if none
	finSent  bool
}

// NewKeyRing starts the rekey state at generation 0 from mk[0] for AEAD
// suite s. sendsAB says whether this host sends with k_ab (it was host A in
// the session that produced ss[0]) or with k_ba; in a resumed session the
// original role decides, not the current one (TC-38). mk0 is copied.
func NewKeyRing(mk0 []byte, s cryptopool.Suite, sendsAB bool) (*KeyRing, error) {
	if len(mk0) != SecretLen {
		return nil, fmt.Errorf("tcpcrypt: master key is %d bytes, want %d", len(mk0), SecretLen)
	}
	if !s.Valid() {
		return nil, fmt.Errorf("tcpcrypt: unsupported suite %v", s)
	}
	r := &KeyRing{suite: s, sendsAB: sendsAB, rmk: append([]byte(nil), mk0...), smk: append([]byte(nil), mk0...)}
	sl, op, err := r.keys(mk0)
	if err != nil {
		return nil, err
	}
	r.sealers, r.open = []*Sealer{sl}, op
	return r, nil
}

// NewSessionKeyRing starts the rekey state of a session from the handshake
// (or resumption): its mk[0], its AEAD, and its original role's direction
// (TC-38).
func NewSessionKeyRing(s *Session) (*KeyRing, error) {
	return NewKeyRing(s.MasterKey[:], s.Suite, s.SendsAB())
}

// keys derives both directions' keys of the generation whose master key
// is mk (TC-D4).
func (r *KeyRing) keys(mk []byte) (*Sealer, *Opener, error) {
	kab, kba := TrafficKeys(mk, r.suite)
	sendKey, recvKey := kab, kba
	if !r.sendsAB {
		sendKey, recvKey = kba, kab
	}
	s, err := NewSealer(sendKey)
	var o *Opener
	if err == nil {
		o, err = NewOpener(recvKey)
	}
	clear(kab.Key[:cap(kab.Key)]) // the CPRF output: K and NR
	clear(kba.Key[:cap(kba.Key)])
	return s, o, err
}

// sealer returns the sending key of generation g, deriving it (and any
// generation between) from the sending side's master-key chain when needed.
func (r *KeyRing) sealer(g uint64) (*Sealer, error) {
	if g < r.sendBase || r.smk == nil {
		return nil, ErrNoKey
	}
	for r.smkGen < g {
		if len(r.sealers) >= MaxGenerations {
			return nil, ErrTooManyGenerations
		}
		old := r.smk
		r.smk = NextMasterKey(old)
		clear(old)
		r.smkGen++
		s, o, err := r.keys(r.smk)
		if o != nil {
			o.wipe() // the receiving side derives its own
		}
		if err != nil {
			return nil, err
		}
		r.sealers = append(r.sealers, s)
	}
	if s := r.sealers[g-r.sendBase]; s != nil {
		return s, nil
	}
	return nil, ErrNoKey
}

// MasterKey returns a copy of mk[g], for the debugging key log: derived
// from the nearest master key the KeyRing still holds at or below g (the
// receiving side's mk[remote], the sending side's newest), so nothing is
// kept for it. It fails with ErrNoKey for a generation above Local, below
// both of those, or after Wipe.
func (r *KeyRing) MasterKey(g uint64) ([]byte, error) {
	var base []byte
	var from uint64
	if r.rmk != nil && r.remote <= g {
		base, from = r.rmk, r.remote
	}
	if r.smk != nil && r.smkGen <= g && (base == nil || r.smkGen > from) {
		base, from = r.smk, r.smkGen
	}
	if base == nil || g > r.local {
		return nil, ErrNoKey
	}
	mk := append([]byte(nil), base...)
	for ; from < g; from++ {
		next := NextMasterKey(mk)
		clear(mk)
		mk = next
	}
	return mk, nil
}

// Suite is the connection's AEAD suite.
func (r *KeyRing) Suite() cryptopool.Suite { return r.suite }

// Local is the local generation: the generation this host has raised itself
// to, either on its own (StartRekey) or to match the peer (TC-56).
func (r *KeyRing) Local() uint64 { return r.local }

// Remote is the remote generation: the number of rekey frames received.
func (r *KeyRing) Remote() uint64 { return r.remote }

// SendGeneration is the generation of the frames sent so far; it lags Local
// while rekey frames are still to be sent.
func (r *KeyRing) SendGeneration() uint64 { return r.sendGen }

// RekeyPending reports whether the next frame sent will carry rekey = 1.
func (r *KeyRing) RekeyPending() bool { return r.sendGen < r.local && !r.finSent }

// Owed reports whether the peer started a rekey that this host must answer
// at once with a frame carrying rekey = 1, empty if there is no data to send
// (TC-57). It is never true after the FINp frame went out.
func (r *KeyRing) Owed() bool { return r.respond && r.RekeyPending() }

// EmptyRekeyAllowed reports whether an empty frame may start a rekey now
// (StartRekey, then Send with n = 0): not while an earlier empty rekey
// frame is unanswered (TC-58), as after the peer's FINp, when the peer
// can answer nothing.
func (r *KeyRing) EmptyRekeyAllowed() bool {
	return r.local+1 <= r.remote || r.emptyGen <= r.remote
}

// FINSent reports whether the FINp frame has gone out.
func (r *KeyRing) FINSent() bool { return r.finSent }

// StartRekey raises the local generation by one (TC-53); the next frame sent
// carries rekey = 1 under the new keys (TC-54). Policy (bytes, frames, time,
// liveness checks per TC-61) is the caller's. It fails with ErrRekeyPending
// while an earlier raise has not gone out yet, and with ErrFINSent after the
// FINp frame, since no frame could announce the new generation.
func (r *KeyRing) StartRekey() error {
	if r.finSent {
		return ErrFINSent
	}
	if r.RekeyPending() {
		return ErrRekeyPending
	}
	if _, err := r.sealer(r.local + 1); err != nil {
		return err
	}
	r.local++
	return nil
}

// SendKey is what a new frame is sealed with.
type SendKey struct {
	Sealer     *Sealer
	Generation uint64 // keep it with the frame: a retransmission uses the same key (TC-59)
	Rekey      bool   // set the control byte's rekey bit (TC-54, TC-55)
}

// Send returns the key and rekey bit for the next new frame, carrying n data
// bytes and FINp if fin. Call it once per frame, in stream order, and send
// the frame: it commits the rekey bit. Frames owed to the peer (Owed) go out
// this way too, with n = 0 when there is no data. Errors: ErrFINSent after
// the FINp frame (TC-49); ErrEmptyRekey for an empty frame that would start a
// second rekey while an earlier empty rekey frame is unanswered (TC-58).
func (r *KeyRing) Send(n int, fin bool) (SendKey, error) {
	if r.finSent {
		return SendKey{}, ErrFINSent
	}
	g, rekey := r.sendGen, false
	if r.sendGen < r.local {
		g, rekey = r.sendGen+1, true
		// A frame that takes this side above the remote generation starts a
		// rekey; an empty one may not while the last empty one is unanswered.
		if n == 0 && g > r.remote && r.emptyGen > r.remote {
			return SendKey{}, ErrEmptyRekey
		}
	}
	sl, err := r.sealer(g)
	if err != nil {
		return SendKey{}, err
	}
	if rekey {
		r.sendGen = g
		if n == 0 && g > r.remote {
			r.emptyGen = g
		}
		if r.sendGen == r.local {
			r.respond = false
		}
	}
	if fin {
		r.finSent = true
		r.respond = false
	}
	return SendKey{Sealer: sl, Generation: g, Rekey: rekey}, nil
}

// Sealer returns the sending key of generation g, for retransmitting a frame
// first sent under g (TC-59): re-sealing the same data at the same offset
// with the same key and header gives the same bytes. It fails with ErrNoKey
// for a generation not yet used to send or already forgotten.
func (r *KeyRing) Sealer(g uint64) (*Sealer, error) {
	if g > r.sendGen || g < r.sendBase || r.smk == nil {
		return nil, ErrNoKey
	}
	return r.sealer(g)
}

// Forget drops, and zeroes, the sending keys of every generation below g
// except the current one: call it when no frame still to be sent or
// retransmitted needs them (TC-60), e.g. when the peer's cumulative ACK
// passes the last frame of a generation.
func (r *KeyRing) Forget(g uint64) {
	if g > r.sendGen {
		g = r.sendGen
	}
	if g <= r.sendBase {
		return
	}
	n := min(g-r.sendBase, uint64(len(r.sealers)))
	for _, sl := range r.sealers[:n] {
		if sl != nil {
			sl.wipe()
		}
	}
	m := copy(r.sealers, r.sealers[n:])
	clear(r.sealers[m:]) // no stale pointers behind the new end
	r.sealers = r.sealers[:m]
	r.sendBase = g
}

// Open authenticates and decrypts one whole frame received at stream offset
// offset (see Opener.Open), choosing the key by its rekey bit: a frame with
// rekey = 1 is opened with the keys of remote generation + 1, and only once
// it authenticates does the remote generation move; the local generation is
// then raised to match and, unless the FINp frame is already sent, a rekey
// frame is owed at once (TC-56, TC-57; see Owed). A forged rekey bit fails
// authentication (the control byte is in the AD) and changes nothing.
func (r *KeyRing) Open(frame []byte, offset uint64) (FrameHeader, []byte, error) {
	return r.OpenTo(nil, frame, offset)
}

// OpenTo is Open with the plaintext written to dst (see Opener.OpenTo).
func (r *KeyRing) OpenTo(dst, frame []byte, offset uint64) (FrameHeader, []byte, error) {
	if len(frame) < HeaderLen {
		return FrameHeader{}, nil, ErrFrameBuffer
	}
	if r.open == nil || r.rmk == nil {
		return FrameHeader{}, nil, ErrNoKey
	}
	if frame[0]&controlRekey == 0 {
		return r.open.OpenTo(dst, frame, offset)
	}
	// The frames are opened once, in stream order: the previous remote
	// generation's key is not needed again once this one authenticates.
	mk := NextMasterKey(r.rmk)
	sl, op, err := r.keys(mk)
	if sl != nil {
		sl.wipe() // the sending side derives its own
	}
	if err != nil {
		clear(mk)
		return FrameHeader{}, nil, err
	}
	h, data, err := op.OpenTo(dst, frame, offset)
	if err != nil {
		op.wipe()
		clear(mk)
		return h, data, err
	}
	r.open.wipe()
	clear(r.rmk)
	r.open, r.rmk = op, mk
	r.remote++
	if r.remote > r.local {
		r.local = r.remote
		if !r.finSent {
			r.respond = true
		}
	}
	return h, data, nil
}

// Wipe zeroes and drops every key; the KeyRing cannot be used afterwards.
func (r *KeyRing) Wipe() {
	for _, sl := range r.sealers {
		if sl != nil {
			sl.wipe()
		}
	}
	clear(r.sealers)
	r.sealers = nil
	if r.open != nil {
		r.open.wipe()
		r.open = nil
	}
	clear(r.rmk)
	clear(r.smk)
	r.rmk, r.smk = nil, nil // sealer and Open now fail with ErrNoKey
	r.respond = false
}
