package tcpcrypt

import (
	"bytes"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/tcpinc/tcpinc/cryptopool"
)

// Known-answer vectors: one full fresh session per TEP x AEAD pair, from
// fixed inputs, written to testdata/vectors.json by cmd/tcpcrypt-vectors and
// checked by this package's tests (testdata/README.md describes the file).
// RFC 8548 publishes no vectors; these record this implementation's reading
// of it so that another implementation, or a later change here, can be
// compared byte for byte.

// Hex is a byte string that JSON-encodes as lower-case hex.
type Hex []byte

func (h Hex) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }

func (h *Hex) UnmarshalText(b []byte) error {
	out := make([]byte, hex.DecodedLen(len(b)))
	if _, err := hex.Decode(out, b); err != nil {
		return err
	}
	*h = out
	return nil
}

// VectorFile is the content of testdata/vectors.json.
type VectorFile struct {
	Vectors []Vector `json:"vectors"`
}

// Vector is one session: its inputs, every intermediate value of the key
// schedule, and frames sent in both directions.
type Vector struct {
	Suite     string        `json:"suite"` // "<tep>+<aead>", e.g. "x25519+aes128gcm"
	Inputs    VectorInputs  `json:"inputs"`
	Init1     Hex           `json:"init1"`
	Init2     Hex           `json:"init2"`
	ES        Hex           `json:"es"`
	PRK       Hex           `json:"prk"` // ss[0]
	SessionID Hex           `json:"session_id"`
	KAB0      Hex           `json:"k_ab0"` // K | NR
	KBA0      Hex           `json:"k_ba0"`
	MK1       Hex           `json:"mk1"`
	Frames    []VectorFrame `json:"frames"`
	Resumed   VectorResumed `json:"resumed"`
}

// VectorResumed is the next connection between the same two hosts, resumed
// from the session's ss[1] (RFC 8548 §3.5) with the roles swapped: the host
// that was B opens actively and is A now, so nonce_a (the original A's,
// U-4) arrives in the SYN-ACK and each host still sends with the keys of
// its original role (TC-38). Frames' From is the current role: "A" is the
// original B, sending with k_ba.
type VectorResumed struct {
	SS1       Hex           `json:"ss1"`        // CPRF(ss[0], CONST_NEXTK, 32)
	ResumeID  Hex           `json:"resume_id"`  // resume[1] = CPRF(ss[1], CONST_RESUME, 18)
	NonceA    Hex           `json:"nonce_a"`    // the original A's resumption nonce
	NonceB    Hex           `json:"nonce_b"`    // the original B's
	SYN       Hex           `json:"syn"`        // the original B's suboption: TEP|0x80, resume[1][9:18], nonce_b
	SYNACK    Hex           `json:"synack"`     // the original A's: TEP|0x80, resume[1][0:9], nonce_a
	SessionID Hex           `json:"session_id"` // TEP|0x80 | CPRF(ss[1], CONST_SESSID | nonce_a | nonce_b, 32)
	KAB0      Hex           `json:"k_ab0"`      // from mk[0] = CPRF(ss[1], CONST_REKEY | nonce_a | nonce_b, 32)
	KBA0      Hex           `json:"k_ba0"`
	Frames    []VectorFrame `json:"frames"`
}

// VectorInputs are the fixed inputs of a Vector.
type VectorInputs struct {
	PrivA         Hex `json:"priv_a"` // the bytes KeyAgreement.GenerateKey reads
	PrivB         Hex `json:"priv_b"`
	NA            Hex `json:"n_a"`
	NB            Hex `json:"n_b"`
	ENOSynA       Hex `json:"eno_syn_a"`       // A's SYN ENO option, kind and length included
	ENOSynAckB    Hex `json:"eno_synack_b"`    // B's SYN-ACK ENO option
	SymCipherList Hex `json:"sym_cipher_list"` // A's AEAD ids, 2 bytes each, as in Init1
	SymCipher     Hex `json:"sym_cipher"`      // B's choice, as in Init2
}

// VectorFrame is one frame on the wire. Plaintext is the AEAD input: flags
// [| urgent] | data. A frame with control 01 is the first of its sender's
// next generation.
type VectorFrame struct {
	From      string `json:"from"` // "A" or "B"
	Offset    uint64 `json:"offset"`
	Control   Hex    `json:"control"`
	Plaintext Hex    `json:"plaintext"`
	Frame     Hex    `json:"frame"`
}

// vectorFrame is one frame of the script every vector follows.
type vectorFrame struct {
	fromA bool
	rekey bool // StartRekey before this frame
	fin   bool
	data  string
}

// vectorScript: A's "hello" and B's empty FINp frame are docs/protocol.md §16's
// frames; then A rekeys (a frame under generation 1) and ends with FINp. B,
// having sent FIN, raises its local generation but owes no answer (TC-57).
var vectorScript = []vectorFrame{
	{fromA: true, data: "hello"},
	{fromA: false, fin: true},
	{fromA: true, rekey: true, data: "rekeyed"},
	{fromA: true, fin: true, data: "bye"},
}

// vectorPriv returns the fixed private-key input of host ("a" or "b") for
// tep: RFC 7748 §6.1's keys for X25519 (as in docs/protocol.md §16), else the
// first bytes of SHA-512("tcpcrypt vector <tep> <host>"), made a valid
// scalar where the curve needs it.
func vectorPriv(tep TEP, host string) []byte {
	if tep == TEPX25519 {
		k := map[string]string{
			"a": "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
			"b": "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
		}[host]
		b, _ := hex.DecodeString(k)
		return b
	}
	sum := sha512.Sum512([]byte(fmt.Sprintf("tcpcrypt vector %v %s", tep, host)))
	seed := append(sum[:], bytes.Repeat([]byte{0x5a}, 8)...)
	switch tep {
	case TEPX448:
		return seed[:56]
	case TEPP256:
		s := seed[:32]
		s[0] &= 0x7f // below the group order
		return s
	case TEPP521:
		s := seed[:66]
		s[0] = 0 // 521-bit scalar below the group order
		return s
	}
	return nil
}

func countingBytes(from, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(from + i)
	}
	return b
}

// GenerateVectors computes the vector of every TEP x AEAD pair this package
// supports, in AllTEPs x cryptopool.AllSuites order, through the same code
// the appliance runs (Initiator, Responder, KeyRing, Sealer).
func GenerateVectors() (*VectorFile, error) {
	var f VectorFile
	for _, tep := range AllTEPs {
		for _, s := range cryptopool.AllSuites {
			v, err := generateVector(tep, s)
			if err != nil {
				return nil, fmt.Errorf("vector %v+%v: %w", tep, s, err)
			}
			f.Vectors = append(f.Vectors, v)
		}
	}
	return &f, nil
}

func generateVector(tep TEP, s cryptopool.Suite) (Vector, error) {
	ka, err := KeyAgreementFor(tep)
	if err != nil {
		return Vector{}, err
	}
	in := VectorInputs{
		PrivA:      vectorPriv(tep, "a"),
		PrivB:      vectorPriv(tep, "b"),
		NA:         countingBytes(0x00, NonceLen),
		NB:         countingBytes(0x20, NonceLen),
		ENOSynA:    Hex{0x45, 0x03, byte(tep)},
		ENOSynAckB: Hex{0x45, 0x04, 0x01, byte(tep)},
		SymCipher:  binary.BigEndian.AppendUint16(nil, uint16(s)),
	}
	// The §11 pair advertises AES-128-GCM alone; every other vector has A
	// offer all suites and B pick one, so Init1 carries a list.
	offer := []cryptopool.Suite{s}
	if !(tep == TEPX25519 && s == cryptopool.AES128GCM) {
		offer = cryptopool.AllSuites
	}
	for _, c := range offer {
		in.SymCipherList = binary.BigEndian.AppendUint16(in.SymCipherList, uint16(c))
	}
	keyA, err := ka.GenerateKey(bytes.NewReader(in.PrivA))
	if err != nil {
		return Vector{}, err
	}
	keyB, err := ka.GenerateKey(bytes.NewReader(in.PrivB))
	if err != nil {
		return Vector{}, err
	}
	transcript := append(bytes.Clone(in.ENOSynA), in.ENOSynAckB...)
	a, err := NewInitiator(InitiatorConfig{TEP: tep, Ciphers: offer, NA: in.NA, Key: keyA, Transcript: transcript})
	if err != nil {
		return Vector{}, err
	}
	b, err := NewResponder(ResponderConfig{TEP: tep, Prefs: []cryptopool.Suite{s}, NB: in.NB, Key: keyB, Transcript: transcript})
	if err != nil {
		return Vector{}, err
	}
	if _, done, err := b.Feed(a.Init1()); !done || err != nil {
		return Vector{}, fmt.Errorf("B reading Init1: done %v, %v", done, err)
	}
	if _, done, err := a.Feed(b.Init2()); !done || err != nil {
		return Vector{}, fmt.Errorf("A reading Init2: done %v, %v", done, err)
	}
	sa, err := a.Session()
	if err != nil {
		return Vector{}, err
	}
	sb, err := b.Session()
	if err != nil {
		return Vector{}, err
	}
	if sa.ID != sb.ID || sa.MasterKey != sb.MasterKey {
		return Vector{}, fmt.Errorf("A and B disagree on the session")
	}
	es, err := ka.SharedSecret(keyA, keyB.Public)
	if err != nil {
		return Vector{}, err
	}
	prk := PRK(in.NA, transcript, a.Init1(), b.Init2(), es)
	v := Vector{
		Suite:     tep.String() + "+" + s.String(),
		Inputs:    in,
		Init1:     a.Init1(),
		Init2:     b.Init2(),
		ES:        es,
		PRK:       prk,
		SessionID: sa.ID[:],
		KAB0:      append(bytes.Clone(sa.Send.Key), sa.Send.NR[:]...),
		KBA0:      append(bytes.Clone(sa.Recv.Key), sa.Recv.NR[:]...),
		MK1:       NextMasterKey(sa.MasterKey[:]),
	}

	ringA, err := NewSessionKeyRing(sa)
	if err != nil {
		return Vector{}, err
	}
	ringB, err := NewSessionKeyRing(sb)
	if err != nil {
		return Vector{}, err
	}
	type side struct {
		name   string
		ring   *KeyRing
		offset uint64
		peer   *KeyRing
	}
	sideA := &side{name: "A", ring: ringA, offset: sa.SendOffset, peer: ringB}
	sideB := &side{name: "B", ring: ringB, offset: sb.SendOffset, peer: ringA}
	for _, step := range vectorScript {
		x := sideB
		if step.fromA {
			x = sideA
		}
		f, err := vectorSeal(x.ring, x.peer, step, x.offset)
		if err != nil {
			return Vector{}, fmt.Errorf("%s: %w", x.name, err)
		}
		f.From = x.name
		v.Frames = append(v.Frames, f)
		x.offset += uint64(len(f.Frame))
	}
	v.Resumed, err = generateResumed(sa, sb)
	return v, err
}

// vectorSeal seals step's frame at offset with ring's sending key (rekeying
// first if the step says so) and checks that peer opens it: a vector is of
// a working session.
func vectorSeal(ring, peer *KeyRing, step vectorFrame, offset uint64) (VectorFrame, error) {
	if step.rekey {
		if err := ring.StartRekey(); err != nil {
			return VectorFrame{}, err
		}
	}
	k, err := ring.Send(len(step.data), step.fin)
	if err != nil {
		return VectorFrame{}, err
	}
	h := FrameHeader{Rekey: k.Rekey, FIN: step.fin}
	buf := make([]byte, h.Overhead()+len(step.data))
	copy(buf[h.DataStart():], step.data)
	plaintext := append([]byte{h.flags()}, step.data...)
	frame, err := k.Sealer.Seal(buf, h, len(step.data), offset)
	if err != nil {
		return VectorFrame{}, err
	}
	f := VectorFrame{Offset: offset, Control: Hex{frame[0]}, Plaintext: plaintext, Frame: bytes.Clone(frame)}
	// Open works in place: it gets the frame after the copy.
	if _, data, err := peer.Open(frame, offset); err != nil || string(data) != step.data {
		return VectorFrame{}, fmt.Errorf("the frame at %d does not open at the peer: %v", offset, err)
	}
	return f, nil
}

// resumedScript: the resumed connection's frames, by current role (the
// original B is A now). Both streams start at offset 0: no Init messages.
var resumedScript = []vectorFrame{
	{fromA: true, data: "again"},
	{fromA: false, fin: true, data: "ok"},
}

// generateResumed resumes the session sa (the original A's) and sb (the
// original B's) through the resumption cache, as the appliance does, with
// fixed nonces: 8 bytes a0..a7 for the original A, 8 bytes b0..b7 for B.
func generateResumed(sa, sb *Session) (VectorResumed, error) {
	var r VectorResumed
	origA := NewCache[string](CacheConfig{Rand: bytes.NewReader(countingBytes(0xa0, MaxResumeNonce))})
	origB := NewCache[string](CacheConfig{Rand: bytes.NewReader(countingBytes(0xb0, MaxResumeNonce))})
	origA.Store("b", sa)
	origB.Store("a", sb)
	r.SS1 = bytes.Clone(sa.next[:])
	id := ResumeID(r.SS1)
	r.ResumeID = id[:]
	offer, ok := origB.Offer("a")
	if !ok {
		return r, fmt.Errorf("nothing to resume")
	}
	r.SYN = offer.AppendSuboption(nil)
	answer, ok := origA.Accept("b", r.SYN[0], r.SYN[1:])
	if !ok {
		return r, fmt.Errorf("the original A does not accept %x", r.SYN)
	}
	r.SYNACK = answer.AppendSuboption(nil)
	if !offer.MatchReply(r.SYNACK[0], r.SYNACK[1:]) {
		return r, fmt.Errorf("the original B does not take %x", r.SYNACK)
	}
	r.NonceA, r.NonceB = bytes.Clone(answer.Nonce()), bytes.Clone(offer.Nonce())
	nowA, err := offer.Session(RoleA)
	if err != nil {
		return r, err
	}
	nowB, err := answer.Session(RoleB)
	if err != nil {
		return r, err
	}
	if nowA.ID != nowB.ID {
		return r, fmt.Errorf("the hosts disagree on the resumed session")
	}
	r.SessionID = nowA.ID[:]
	r.KAB0 = append(bytes.Clone(nowB.Send.Key), nowB.Send.NR[:]...)
	r.KBA0 = append(bytes.Clone(nowA.Send.Key), nowA.Send.NR[:]...)
	ringA, err := NewSessionKeyRing(nowA)
	if err != nil {
		return r, err
	}
	ringB, err := NewSessionKeyRing(nowB)
	if err != nil {
		return r, err
	}
	var offA, offB uint64
	for _, step := range resumedScript {
		name, ring, peer, off := "B", ringB, ringA, &offB
		if step.fromA {
			name, ring, peer, off = "A", ringA, ringB, &offA
		}
		f, err := vectorSeal(ring, peer, step, *off)
		if err != nil {
			return r, fmt.Errorf("resumed: %s: %w", name, err)
		}
		f.From = name
		r.Frames = append(r.Frames, f)
		*off += uint64(len(f.Frame))
	}
	return r, nil
}

// MarshalVectors is the exact byte form of testdata/vectors.json: indented
// JSON with a final newline.
func MarshalVectors(f *VectorFile) ([]byte, error) {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
