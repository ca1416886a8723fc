package tcpcrypt

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"

	"github.com/tcpinc/tcpinc/cryptopool"
)

// Constants of RFC 8548 §4.3 (docs/protocol.md §10). Each is one byte of CPRF info.
const (
	constNextK  = 0x01
	constSessID = 0x02
	constRekey  = 0x03
	constKeyA   = 0x04
	constKeyB   = 0x05
	constResume = 0x06
)

// Lengths shared by all four tcpcrypt TEPs (RFC 8548 §5).
const (
	NonceLen       = 32 // N_A_LEN and N_B_LEN
	SecretLen      = 32 // K_LEN: ss[i], mk[j] and the hash part of the session ID
	SessionIDLen   = 1 + SecretLen
	ResumeLen      = 18 // resume[i]; each host sends one 9-byte half
	ResumeHalf     = ResumeLen / 2
	MaxResumeNonce = 8
)

// CPRF is HKDF-Expand with SHA-256, info = the constant (which may be longer
// than one byte, e.g. CONST_REKEY | sn[i]), output length l.
func CPRF(k, info []byte, l int) []byte {
	if len(k) >= sha256.Size && len(k) <= sha256.BlockSize && len(info) <= maxShortInfo && l <= 255*sha256.Size {
		out := make([]byte, l)
		expandShort(out, k, info)
		return out
	}
	out, err := hkdf.Expand(sha256.New, k, string(info), l)
	if err != nil {
		// Only a length above 255*32 or a short PRK fails; every caller
		// passes fixed, valid lengths and 32-byte keys.
		panic("tcpcrypt: CPRF: " + err.Error())
	}
	return out
}

// maxShortInfo bounds the info expandShort takes: every CPRF here has a
// one-byte constant, followed at most by sn[i] (two resumption nonces).
const maxShortInfo = 1 + 2*MaxResumeNonce + 15

// expandShort is HKDF-Expand with SHA-256 (RFC 5869 §2.3) for a key of at
// most one SHA-256 block, written out as HMAC (RFC 2104) over stack
// buffers: T(i) = H(K^opad | H(K^ipad | T(i-1) | info | i)). It gives the
// same bytes as crypto/hkdf (TestCPRFShort) without its allocations: a
// session's key schedule runs about ten CPRFs at each appliance, and
// hkdf.Expand's new HMAC and digests for each were most of the key
// schedule's cost and a sixth of a connection's allocations
// (BenchmarkKeySchedule).
func expandShort(out, k, info []byte) {
	const bs = sha256.BlockSize
	var inner [bs + sha256.Size + maxShortInfo + 1]byte
	var outer [bs + sha256.Size]byte
	copy(inner[:], k)
	for i := range bs {
		outer[i] = inner[i] ^ 0x5c
		inner[i] ^= 0x36
	}
	var t [sha256.Size]byte
	for c := 1; len(out) > 0; c++ {
		m := inner[bs:bs]
		if c > 1 {
			m = append(m, t[:]...)
		}
		m = append(m, info...)
		m = append(m, byte(c))
		ih := sha256.Sum256(inner[:bs+len(m)])
		copy(outer[bs:], ih[:])
		t = sha256.Sum256(outer[:])
		out = out[copy(out, t[:]):]
	}
	clear(inner[:])
	clear(outer[:])
	clear(t[:])
}

// PRK computes ss[0] = Extract(N_A, eno_transcript | Init1 | Init2 | ES)
// (TC-D3), HKDF-Extract with SHA-256: HMAC-SHA256 keyed by N_A. init1 and init2 are the messages exactly as transmitted, with any
// ignored tail a peer sent.
func PRK(nA, transcript, init1, init2, es []byte) []byte {
	m := hmac.New(sha256.New, nA)
	m.Write(transcript)
	m.Write(init1)
	m.Write(init2)
	m.Write(es)
	return m.Sum(nil)
}

// NextSecret derives ss[i+1] = CPRF(ss[i], CONST_NEXTK, K_LEN).
func NextSecret(ss []byte) []byte { return CPRF(ss, []byte{constNextK}, SecretLen) }

// MasterKey derives mk[0] = CPRF(ss[i], CONST_REKEY | sn[i], K_LEN), where sn
// is empty for a fresh session and nonce_a | nonce_b for a resumed one (TC-D4).
func MasterKey(ss, sn []byte) []byte {
	return CPRF(ss, append([]byte{constRekey}, sn...), SecretLen)
}

// NextMasterKey derives mk[j] = CPRF(mk[j-1], CONST_REKEY, K_LEN); sn is not
// included after generation 0.
func NextMasterKey(mk []byte) []byte { return CPRF(mk, []byte{constRekey}, SecretLen) }

// TrafficKey is one direction's key of one generation: K then NR.
type TrafficKey struct {
	Suite cryptopool.Suite
	Key   []byte                     // ae_key_len bytes
	NR    [cryptopool.NonceSize]byte // nonce randomizer
}

// TrafficKeys derives k_ab[j] and k_ba[j] from mk[j] for suite s (TC-D4).
func TrafficKeys(mk []byte, s cryptopool.Suite) (kab, kba TrafficKey) {
	split := func(b []byte) TrafficKey {
		k := TrafficKey{Suite: s, Key: b[:s.KeyLen()]}
		copy(k.NR[:], b[s.KeyLen():])
		return k
	}
	kab = split(CPRF(mk, []byte{constKeyA}, s.TrafficKeyLen()))
	kba = split(CPRF(mk, []byte{constKeyB}, s.TrafficKeyLen()))
	return kab, kba
}

// SessionID computes TEP-byte | CPRF(ss[i], CONST_SESSID | sn[i], K_LEN)
// (TC-D5, ENO-D7). tepByte is the negotiated TEP byte exactly as host B sent
// it, v bit included.
func SessionID(tepByte byte, ss, sn []byte) [SessionIDLen]byte {
	var id [SessionIDLen]byte
	id[0] = tepByte
	copy(id[1:], CPRF(ss, append([]byte{constSessID}, sn...), SecretLen))
	return id
}

// ResumeID computes resume[i] = CPRF(ss[i], CONST_RESUME, 18) (TC-D6). The
// host that was A in the original session sends bytes 0..8, the one that was
// B sends bytes 9..17.
func ResumeID(ss []byte) [ResumeLen]byte {
	var r [ResumeLen]byte
	copy(r[:], CPRF(ss, []byte{constResume}, ResumeLen))
	return r
}
