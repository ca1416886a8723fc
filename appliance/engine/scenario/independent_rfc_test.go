package scenario

// The far side of independent_test.go: TCP-ENO (RFC 8547) and tcpcrypt
// (RFC 8548) written again from the RFC text with the standard library and
// golang.org/x/crypto/chacha20poly1305 only. It must not use packages eno,
// tcpcrypt or cryptopool, nor this package's helpers built on them (see
// TestIndependentFarSideImports): it exists to disagree with them when
// they are wrong. It covers what the tests need: X25519, the three AEADs,
// fresh key exchange, resumption and rekeying.

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// Constants of RFC 8548 §4.3, Table 1.
const (
	constNextK  = 0x01
	constSessID = 0x02
	constRekey  = 0x03
	constKeyA   = 0x04
	constKeyB   = 0x05
	constResume = 0x06
	init1Magic  = 0x15101a0e
	init2Magic  = 0x097105e0
)

// Lengths of RFC 8548 §5 (K_LEN, N_A_LEN, N_B_LEN) and of an X25519
// public key, sent without a length prefix (§5).
const (
	secretLen = 32
	nonceLen  = 32
	x25519Len = 32
)

// AEAD identifiers of RFC 8548 §7, Table 5.
const (
	aeadAES128GCM = 0x0001
	aeadAES256GCM = 0x0002
	aeadChaCha    = 0x0010
)

// The TEP byte of TCPCRYPT_ECDHE_Curve25519 (RFC 8548 §7, Table 4), and
// the same byte with v = 1 (RFC 8547 Figure 4: v is bit 7).
const (
	tepX25519      = 0x23
	tepX25519Data  = 0x80 | tepX25519
	enoKind        = 69 // RFC 8547 §4.1
	resumeHalfLen  = 9  // RFC 8548 §3.5: resume[i]{0..8} and {9..17}
	maxResumeNonce = 8
)

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// hkdfExtract is Extract(salt, IKM) = HMAC-SHA256(salt, IKM) (RFC 8548 §3.1).
func hkdfExtract(salt, ikm []byte) []byte {
	h := hmac.New(sha256.New, salt)
	h.Write(ikm)
	return h.Sum(nil)
}

// cprf is CPRF(K, CONST, L), HKDF-Expand with SHA-256 (RFC 8548 §3.1,
// Figure 1): T(n) = HMAC(K, T(n-1) | CONST | n), the first L bytes.
func cprf(key, constant []byte, n int) []byte {
	var out, prev []byte
	for i := byte(1); len(out) < n; i++ {
		prev = hkdfExtract(key, concat(prev, constant, []byte{i}))
		out = append(out, prev...)
	}
	return out[:n]
}

// freshSecret is ss[0] = PRK = Extract(N_A, eno_transcript | Init1 |
// Init2 | ES) (RFC 8548 §3.3); the transcript is A's SYN-form ENO option
// and then B's, kind and length bytes included (RFC 8547 §4.8).
func freshSecret(nonceA, optA, optB, init1, init2, es []byte) []byte {
	return hkdfExtract(nonceA, concat(optA, optB, init1, init2, es))
}

// nextSecret is ss[i+1] = CPRF(ss[i], CONST_NEXTK, K_LEN) (RFC 8548 §3.3).
func nextSecret(ss []byte) []byte { return cprf(ss, []byte{constNextK}, secretLen) }

// resumeID is resume[i] = CPRF(ss[i], CONST_RESUME, 18) (RFC 8548 §3.5):
// the original host A sends bytes 0..8, the original host B bytes 9..17.
func resumeID(ss []byte) []byte { return cprf(ss, []byte{constResume}, 2*resumeHalfLen) }

// rfcSession is one tcpcrypt session: its secret ss[i], its session nonce
// sn[i] (empty for a fresh key exchange, nonce_a | nonce_b when resumed),
// the byte B sent with the negotiated TEP, and the AEAD.
type rfcSession struct {
	ss, sn  []byte
	tepByte byte
	aead    uint16
}

// sessionID is TEP-byte | CPRF(ss[i], CONST_SESSID | sn[i], K_LEN)
// (RFC 8548 §3.4; RFC 8547 §5.1: the byte keeps B's v bit).
func (s rfcSession) sessionID() []byte {
	return concat([]byte{s.tepByte}, cprf(s.ss, concat([]byte{constSessID}, s.sn), secretLen))
}

// masterKey is mk[j]: mk[0] = CPRF(ss[i], CONST_REKEY | sn[i], K_LEN),
// mk[j] = CPRF(mk[j-1], CONST_REKEY, K_LEN) (RFC 8548 §3.3).
func (s rfcSession) masterKey(j int) []byte {
	mk := cprf(s.ss, concat([]byte{constRekey}, s.sn), secretLen)
	for range j {
		mk = cprf(mk, []byte{constRekey}, secretLen)
	}
	return mk
}

// keys returns generation j's traffic keys: k_ab[j], which the original
// host A sends with, and k_ba[j], which the original host B sends with,
// whatever their roles in a resumed session (RFC 8548 §3.3, §3.5).
func (s rfcSession) keys(t *testing.T, j int) (kab, kba trafficKey) {
	t.Helper()
	mk := s.masterKey(j)
	return newTrafficKey(t, mk, constKeyA, s.aead), newTrafficKey(t, mk, constKeyB, s.aead)
}

// trafficKey is one direction's AEAD key K and nonce randomizer NR
// (RFC 8548 §3.6, Figure 4).
type trafficKey struct {
	aead cipher.AEAD
	nr   []byte
}

// newTrafficKey derives CPRF(mk, label, ae_key_len + ae_nonce_len) and
// splits it into K and NR (RFC 8548 §3.3, §3.6; lengths of §6, Table 3).
func newTrafficKey(t *testing.T, mk []byte, label byte, aead uint16) trafficKey {
	t.Helper()
	keyLen := map[uint16]int{aeadAES128GCM: 16, aeadAES256GCM: 32, aeadChaCha: 32}[aead]
	if keyLen == 0 {
		t.Fatalf("AEAD %#04x is not one of RFC 8548 §7", aead)
	}
	const aeNonceLen = 12
	k := cprf(mk, []byte{label}, keyLen+aeNonceLen)
	var a cipher.AEAD
	var err error
	if aead == aeadChaCha {
		a, err = chacha20poly1305.New(k[:keyLen])
	} else {
		var block cipher.Block
		if block, err = aes.NewCipher(k[:keyLen]); err == nil {
			a, err = cipher.NewGCM(block)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return trafficKey{aead: a, nr: k[keyLen:]}
}

// nonce is N = frame_ID XOR NR, the frame ID being the frame's stream
// offset as 8 big-endian bytes, zeros in front (RFC 8548 §3.6, §4.2.3).
func (k trafficKey) nonce(offset uint64) []byte {
	frameID := make([]byte, len(k.nr))
	binary.BigEndian.PutUint64(frameID[len(frameID)-8:], offset)
	for i := range frameID {
		frameID[i] ^= k.nr[i]
	}
	return frameID
}

// rfcFrame is one encryption frame's header fields and data (RFC 8548
// §4.2, §4.2.1). The tests use no urgent data.
type rfcFrame struct {
	control byte // bit 0 rekey, bits 1..7 cres (reserved)
	flags   byte // bit 0 FINp, bit 1 URGp, bits 2..7 fres (reserved)
	data    []byte
}

// seal builds the frame control | clen | ciphertext of the plaintext
// flags | data, with the associated data control | clen (RFC 8548 §4.2,
// §4.2.1, §4.2.2), for stream offset offset.
func (k trafficKey) seal(offset uint64, f rfcFrame) []byte {
	plaintext := concat([]byte{f.flags}, f.data)
	header := []byte{f.control, 0, 0}
	binary.BigEndian.PutUint16(header[1:], uint16(len(plaintext)+k.aead.Overhead()))
	return k.aead.Seal(header, k.nonce(offset), plaintext, header)
}

// open authenticates and decrypts one whole frame at stream offset offset.
func (k trafficKey) open(offset uint64, frame []byte) (rfcFrame, error) {
	const headerLen = 3
	plaintext, err := k.aead.Open(nil, k.nonce(offset), frame[headerLen:], frame[:headerLen])
	if err != nil {
		return rfcFrame{}, err
	}
	return rfcFrame{control: frame[0], flags: plaintext[0], data: plaintext[1:]}, nil
}

// openFrameAt opens the frame that starts at offset off of a received
// stream (its length from clen, RFC 8548 §4.2) and returns it with the
// offset of the next frame.
func openFrameAt(t *testing.T, k trafficKey, stream []byte, off int) (rfcFrame, int) {
	t.Helper()
	if len(stream) < off+3 {
		t.Fatalf("no frame at offset %d: the stream has %d bytes", off, len(stream))
	}
	end := off + 3 + int(binary.BigEndian.Uint16(stream[off+1:]))
	if len(stream) < end {
		t.Fatalf("frame at offset %d ends at %d, past the %d bytes received", off, end, len(stream))
	}
	f, err := k.open(uint64(off), stream[off:end])
	if err != nil {
		t.Fatalf("frame at offset %d does not open: %v", off, err)
	}
	return f, end
}

// init1Msg is host A's key-exchange message (RFC 8548 §4.1) for X25519.
type init1Msg struct {
	aeads      []uint16 // sym_cipher_list
	nonce, pub []byte   // N_A, Pub_A
	ignored    []byte   // the trailing field a receiver must ignore
}

func (m init1Msg) bytes() []byte {
	b := binary.BigEndian.AppendUint32(nil, init1Magic)
	n := 4 + 4 + 1 + 2*len(m.aeads) + len(m.nonce) + len(m.pub) + len(m.ignored)
	b = binary.BigEndian.AppendUint32(b, uint32(n)) // message_len: the whole message
	b = append(b, byte(len(m.aeads)))
	for _, id := range m.aeads {
		b = binary.BigEndian.AppendUint16(b, id)
	}
	return concat(b, m.nonce, m.pub, m.ignored)
}

// parseInit1 reads Init1 from the start of A's stream and returns its
// encoding as sent (the key schedule hashes it whole) and its fields.
func parseInit1(t *testing.T, stream []byte) ([]byte, init1Msg) {
	t.Helper()
	if len(stream) < 9 || binary.BigEndian.Uint32(stream) != init1Magic {
		t.Fatalf("A's stream does not start with INIT1_MAGIC: % x", stream)
	}
	n, k := int(binary.BigEndian.Uint32(stream[4:])), int(stream[8])
	fixed := 9 + 2*k + nonceLen + x25519Len
	if n < fixed || len(stream) < n {
		t.Fatalf("Init1: message_len %d, %d AEADs, %d bytes received", n, k, len(stream))
	}
	m := init1Msg{}
	for i := range k {
		m.aeads = append(m.aeads, binary.BigEndian.Uint16(stream[9+2*i:]))
	}
	m.nonce = stream[9+2*k : 9+2*k+nonceLen]
	m.pub = stream[9+2*k+nonceLen : fixed]
	m.ignored = stream[fixed:n]
	return stream[:n], m
}

// init2Msg is host B's key-exchange message (RFC 8548 §4.1) for X25519.
type init2Msg struct {
	aead       uint16 // sym_cipher
	nonce, pub []byte // N_B, Pub_B
	ignored    []byte
}

func (m init2Msg) bytes() []byte {
	b := binary.BigEndian.AppendUint32(nil, init2Magic)
	b = binary.BigEndian.AppendUint32(b, uint32(4+4+2+len(m.nonce)+len(m.pub)+len(m.ignored)))
	b = binary.BigEndian.AppendUint16(b, m.aead)
	return concat(b, m.nonce, m.pub, m.ignored)
}

// parseInit2 reads Init2 from the start of B's stream, as parseInit1.
func parseInit2(t *testing.T, stream []byte) ([]byte, init2Msg) {
	t.Helper()
	if len(stream) < 10 || binary.BigEndian.Uint32(stream) != init2Magic {
		t.Fatalf("B's stream does not start with INIT2_MAGIC: % x", stream)
	}
	n := int(binary.BigEndian.Uint32(stream[4:]))
	fixed := 10 + nonceLen + x25519Len
	if n < fixed || len(stream) < n {
		t.Fatalf("Init2: message_len %d, %d bytes received", n, len(stream))
	}
	return stream[:n], init2Msg{
		aead:    binary.BigEndian.Uint16(stream[8:]),
		nonce:   stream[10 : 10+nonceLen],
		pub:     stream[10+nonceLen : fixed],
		ignored: stream[fixed:n],
	}
}

// enoOptions returns a segment's kind-69 options, kind and length bytes
// included, walking the options as TCP does (kind 0 ends the list, kind 1
// is one byte, any other kind has a length byte).
func enoOptions(s Seg) [][]byte {
	var out [][]byte
	o := s.Options
	for i := 0; i < len(o) && o[i] != 0; {
		if o[i] == 1 {
			i++
			continue
		}
		if i+1 >= len(o) || o[i+1] < 2 || i+int(o[i+1]) > len(o) {
			break
		}
		if o[i] == enoKind {
			out = append(out, o[i:i+int(o[i+1])])
		}
		i += int(o[i+1])
	}
	return out
}

// onlyENO returns the segment's one ENO option (RFC 8547 §4.1: a SYN
// carries at most one).
func onlyENO(t *testing.T, what string, s Seg) []byte {
	t.Helper()
	o := enoOptions(s)
	if len(o) != 1 {
		t.Fatalf("%s: %d ENO options, want 1: %v", what, len(o), s)
	}
	return o[0]
}

// suboption is one suboption of a SYN-form ENO option: its first byte (v
// bit included) and, for a TEP with v = 1, its data.
type suboption struct {
	first byte
	data  []byte
}

// suboptions splits a SYN-form ENO option (RFC 8547 §4.1, Figure 4,
// Table 1, §4.4).
func suboptions(t *testing.T, opt []byte) []suboption {
	t.Helper()
	var out []suboption
	body := opt[2:]
	for i := 0; i < len(body); {
		switch c := body[i]; {
		case c < 0x80: // v = 0: a global suboption or a TEP without data, one byte
			out = append(out, suboption{first: c})
			i++
		case c < 0xa0: // v = 1, glt < 0x20: length byte 100nnnnn, then a TEP with v = 1 and nnnnn+1 data bytes
			n := int(c&0x1f) + 1
			if i+2+n > len(body) || body[i+1] < 0xa0 {
				t.Fatalf("ENO option % x: bad length byte at %d", opt, i)
			}
			out = append(out, suboption{first: body[i+1], data: body[i+2 : i+2+n]})
			i += 2 + n
		default: // a TEP with v = 1 and no length byte: data to the end of the option
			out = append(out, suboption{first: c, data: body[i+1:]})
			i = len(body)
		}
	}
	return out
}

// enoOption builds a SYN-form ENO option from suboptions given as bytes.
func enoOption(subs ...[]byte) []byte {
	body := concat(subs...)
	return concat([]byte{enoKind, byte(2 + len(body))}, body)
}

// TestIndependentCodecWorkedExample pins the far side's codec to the worked
// example of docs/protocol.md §16 (X25519 with RFC 7748 §6.1's keys,
// AES-128-GCM), so that it cannot drift toward the engine's reading.
func TestIndependentCodecWorkedExample(t *testing.T) {
	hexBytes := func(s string) []byte {
		b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	check := func(what string, got []byte, want string) {
		t.Helper()
		if hex.EncodeToString(got) != strings.ReplaceAll(want, " ", "") {
			t.Errorf("%s: %x, want %s", what, got, want)
		}
	}
	pubA := hexBytes("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
	pubB := hexBytes("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
	es := hexBytes("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742") // RFC 7748 §6.1
	nonceA, nonceB := make([]byte, nonceLen), make([]byte, nonceLen)
	for i := range nonceLen {
		nonceA[i], nonceB[i] = byte(i), byte(nonceLen+i)
	}
	init1Raw := init1Msg{aeads: []uint16{aeadAES128GCM}, nonce: nonceA, pub: pubA}.bytes()
	init2Raw := init2Msg{aead: aeadAES128GCM, nonce: nonceB, pub: pubB}.bytes()
	ss0 := freshSecret(nonceA, []byte{enoKind, 3, tepX25519}, []byte{enoKind, 4, 0x01, tepX25519}, init1Raw, init2Raw, es)
	check("ss[0]", ss0, "57b451fb5d9a89f812be6014167252a32a16a9b5759ae39754c372c48c7940fb")
	sess := rfcSession{ss: ss0, tepByte: tepX25519, aead: aeadAES128GCM}
	check("session ID", sess.sessionID(), "23 60583ca04231aa3be00fb3d3e878f7f5a8e610875816bebcb7cecca7780e386f")
	kab, kba := sess.keys(t, 0)
	check("A's hello", kab.seal(75, rfcFrame{data: []byte("hello")}), "00 0016 6794b1565fafcfab8afcab3f0c0960a9627c71abeeaa")
	check("B's FINp", kba.seal(74, rfcFrame{flags: 0x01}), "00 0011 96ff5826810cf4ddd5a1960111112a8322")

	ss1 := nextSecret(ss0)
	check("ss[1]", ss1, "1665859b0d79b86d0ee80780a5986c6d7524fd1f5509adbd9d06d684de6dc130")
	check("resume[1]", resumeID(ss1), "6c85ba61caecae74aa 6a92af908d78d80bac")
	sn := hexBytes("a0a1a2a3a4a5a6a7 b0b1b2b3b4b5b6b7")
	resumed := rfcSession{ss: ss1, sn: sn, tepByte: tepX25519Data, aead: aeadAES128GCM}
	check("resumed session ID", resumed.sessionID(), "a3 1f02a1dc80ff5b7c9961e672ff9b7b8fe4d208ae00ada876df6216fa879f0f11")
}
