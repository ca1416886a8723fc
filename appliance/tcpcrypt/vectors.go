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
		if step.rekey {
			if err := x.ring.StartRekey(); err != nil {
				return Vector{}, err
			}
		}
		k, err := x.ring.Send(len(step.data), step.fin)
		if err != nil {
			return Vector{}, err
		}
		h := FrameHeader{Rekey: k.Rekey, FIN: step.fin}
		buf := make([]byte, h.Overhead()+len(step.data))
		copy(buf[h.DataStart():], step.data)
		plaintext := append([]byte{h.flags()}, step.data...)
		frame, err := k.Sealer.Seal(buf, h, len(step.data), x.offset)
		if err != nil {
			return Vector{}, err
		}
		v.Frames = append(v.Frames, VectorFrame{
			From: x.name, Offset: x.offset, Control: Hex{frame[0]},
			Plaintext: plaintext, Frame: bytes.Clone(frame),
		})
		// The peer must open it: the vector is of a working session.
		if _, data, err := x.peer.Open(frame, x.offset); err != nil || string(data) != step.data {
			return Vector{}, fmt.Errorf("%s's frame at %d does not open at the peer: %v", x.name, x.offset, err)
		}
		x.offset += uint64(len(frame))
	}
	return v, nil
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
