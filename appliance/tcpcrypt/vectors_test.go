package tcpcrypt

import (
	"bytes"
	"crypto/ecdh"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/cloudflare/circl/dh/x448"

	"github.com/tcpinc/tcpinc/cryptopool"
)

const vectorsPath = "testdata/vectors.json"

func loadVectors(t *testing.T) *VectorFile {
	t.Helper()
	b, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	var f VectorFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		t.Fatal(err)
	}
	return &f
}

// TestVectorsUpToDate regenerates the vectors in memory and compares them
// with the committed file byte for byte, so neither can drift. After an
// intended change: go run ./cmd/tcpcrypt-vectors
func TestVectorsUpToDate(t *testing.T) {
	f, err := GenerateVectors()
	if err != nil {
		t.Fatal(err)
	}
	got, err := MarshalVectors(f)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale or the code changed its output; if intended, run: go run ./cmd/tcpcrypt-vectors", vectorsPath)
	}
	if n := len(AllTEPs) * len(cryptopool.AllSuites); len(f.Vectors) != n {
		t.Fatalf("%d vectors, want %d (every TEP x AEAD pair)", len(f.Vectors), n)
	}
}

// TestVectorsWorkedExample: the X25519 + AES-128-GCM vector is docs/protocol.md
// §16 (its Init messages, key schedule and both frames).
func TestVectorsWorkedExample(t *testing.T) {
	v := loadVectors(t).Vectors[0]
	want := map[string]string{
		"suite":   "x25519+aes128gcm",
		"prk":     "57b451fb5d9a89f812be6014167252a32a16a9b5759ae39754c372c48c7940fb",
		"sid":     "2360583ca04231aa3be00fb3d3e878f7f5a8e610875816bebcb7cecca7780e386f",
		"mk1":     "f94c952748af78c3d8ed778ff7c033f6a844b4a4fbbfc01deebc0698abfd7a7a",
		"frame A": "0000166794b1565fafcfab8afcab3f0c0960a9627c71abeeaa",
		"frame B": "00001196ff5826810cf4ddd5a1960111112a8322",
	}
	got := map[string]string{
		"suite":   v.Suite,
		"prk":     hex.EncodeToString(v.PRK),
		"sid":     hex.EncodeToString(v.SessionID),
		"mk1":     hex.EncodeToString(v.MK1),
		"frame A": hex.EncodeToString(v.Frames[0].Frame),
		"frame B": hex.EncodeToString(v.Frames[1].Frame),
	}
	for k := range want {
		if got[k] != want[k] {
			t.Errorf("%s = %s, want %s", k, got[k], want[k])
		}
	}
	if v.Frames[0].Offset != 75 || v.Frames[1].Offset != 74 {
		t.Errorf("offsets %d, %d; want 75, 74", v.Frames[0].Offset, v.Frames[1].Offset)
	}
}

// vectorDH recomputes a vector's public keys (in wire form) and ES straight
// from the private inputs with the primitives, not through kex.go.
func vectorDH(t *testing.T, tep TEP, privA, privB []byte) (pubA, pubB, es []byte) {
	t.Helper()
	switch tep {
	case TEPX448:
		var a, b, pa, pb, s x448.Key
		copy(a[:], privA)
		copy(b[:], privB)
		x448.KeyGen(&pa, &a)
		x448.KeyGen(&pb, &b)
		if !x448.Shared(&s, &a, &pb) {
			t.Fatal("x448: low-order point")
		}
		return pa[:], pb[:], s[:]
	}
	curve := map[TEP]ecdh.Curve{TEPX25519: ecdh.X25519(), TEPP256: ecdh.P256(), TEPP521: ecdh.P521()}[tep]
	a, err := curve.NewPrivateKey(privA)
	if err != nil {
		t.Fatal(err)
	}
	b, err := curve.NewPrivateKey(privB)
	if err != nil {
		t.Fatal(err)
	}
	es, err = a.ECDH(b.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	wire := func(p *ecdh.PublicKey) []byte {
		if tep == TEPX25519 {
			return p.Bytes()
		}
		// pubkey_len (whole structure, U-2) | compressed point.
		u := p.Bytes()
		n := (len(u) - 1) / 2
		out := binary.BigEndian.AppendUint16(nil, uint16(2+1+n))
		out = append(out, 0x02|u[len(u)-1]&1)
		return append(out, u[1:1+n]...)
	}
	return wire(a.PublicKey()), wire(b.PublicKey()), es
}

// TestVectorsIndependent checks every committed vector from its inputs
// alone: the Init messages byte by byte (TC-63, TC-65), ES, PRK, session ID,
// k_ab[0], k_ba[0], mk[1], and every frame, opened with a bare AEAD and the
// nonce rule of TC-D7 under the key of its generation.
func TestVectorsIndependent(t *testing.T) {
	for _, v := range loadVectors(t).Vectors {
		t.Run(v.Suite, func(t *testing.T) {
			tepName, suiteName, _ := strings.Cut(v.Suite, "+")
			suite, err := cryptopool.ParseSuite(suiteName)
			if err != nil {
				t.Fatal(err)
			}
			var tep TEP
			for _, c := range AllTEPs {
				if c.String() == tepName {
					tep = c
				}
			}
			in := v.Inputs
			if !bytes.Equal(in.SymCipher, binary.BigEndian.AppendUint16(nil, uint16(suite))) ||
				!bytes.Contains(in.SymCipherList, in.SymCipher) || in.ENOSynA[2] != byte(tep) {
				t.Fatalf("inputs do not name %v", v.Suite)
			}
			pubA, pubB, es := vectorDH(t, tep, in.PrivA, in.PrivB)

			init1 := binary.BigEndian.AppendUint32(nil, 0x15101a0e)
			init1 = binary.BigEndian.AppendUint32(init1, uint32(9+len(in.SymCipherList)+32+len(pubA)))
			init1 = append(init1, byte(len(in.SymCipherList)/2))
			init1 = append(append(append(init1, in.SymCipherList...), in.NA...), pubA...)
			init2 := binary.BigEndian.AppendUint32(nil, 0x097105e0)
			init2 = binary.BigEndian.AppendUint32(init2, uint32(10+32+len(pubB)))
			init2 = append(append(append(init2, in.SymCipher...), in.NB...), pubB...)

			transcript := append(bytes.Clone(in.ENOSynA), in.ENOSynAckB...)
			prk := PRK(in.NA, transcript, init1, init2, es)
			sid := SessionID(byte(tep), prk, nil)
			mk0 := MasterKey(prk, nil)
			mk1 := NextMasterKey(mk0)
			kab0, kba0 := TrafficKeys(mk0, suite)
			for _, c := range []struct {
				name      string
				got, want []byte
			}{
				{"init1", v.Init1, init1},
				{"init2", v.Init2, init2},
				{"es", v.ES, es},
				{"prk", v.PRK, prk},
				{"session_id", v.SessionID, sid[:]},
				{"k_ab0", v.KAB0, append(bytes.Clone(kab0.Key), kab0.NR[:]...)},
				{"k_ba0", v.KBA0, append(bytes.Clone(kba0.Key), kba0.NR[:]...)},
				{"mk1", v.MK1, mk1},
			} {
				if !bytes.Equal(c.got, c.want) {
					t.Errorf("%s = %x, want %x", c.name, c.got, c.want)
				}
			}

			// Frames: each sender's stream starts after its Init message;
			// a control byte of 01 moves that sender to the next generation.
			next := map[string]uint64{"A": uint64(len(init1)), "B": uint64(len(init2))}
			gen := map[string][]byte{"A": mk0, "B": mk0}
			var sawRekey, sawFIN bool
			for i, fr := range v.Frames {
				if fr.Offset != next[fr.From] {
					t.Fatalf("frame %d from %s at offset %d, want %d", i, fr.From, fr.Offset, next[fr.From])
				}
				next[fr.From] += uint64(len(fr.Frame))
				if len(fr.Control) != 1 || fr.Frame[0] != fr.Control[0] {
					t.Fatalf("frame %d: control %x vs frame %x", i, fr.Control, fr.Frame[:1])
				}
				if fr.Control[0]&1 == 1 {
					gen[fr.From] = NextMasterKey(gen[fr.From])
					sawRekey = true
				}
				kab, kba := TrafficKeys(gen[fr.From], suite)
				k := kab
				if fr.From == "B" {
					k = kba
				}
				if clen := binary.BigEndian.Uint16(fr.Frame[1:3]); int(clen) != len(fr.Frame)-3 || int(clen) != len(fr.Plaintext)+16 {
					t.Fatalf("frame %d: clen %d for %d bytes", i, clen, len(fr.Frame))
				}
				aead, err := cryptopool.NewAEAD(suite, k.Key)
				if err != nil {
					t.Fatal(err)
				}
				var nonce [12]byte
				binary.BigEndian.PutUint64(nonce[4:], fr.Offset)
				for j := range nonce {
					nonce[j] ^= k.NR[j]
				}
				pt, err := aead.Open(nil, nonce[:], fr.Frame[3:], fr.Frame[:3])
				if err != nil || !bytes.Equal(pt, fr.Plaintext) {
					t.Fatalf("frame %d does not open to its plaintext: %v", i, err)
				}
				sawFIN = sawFIN || pt[0]&1 == 1
				// And through this package's Opener.
				if _, data, err := mustOpener(t, k).Open(bytes.Clone(fr.Frame), fr.Offset); err != nil || !bytes.Equal(data, pt[1:]) {
					t.Fatalf("frame %d: Opener: %v", i, err)
				}
			}
			if !sawRekey || !sawFIN {
				t.Fatalf("vector lacks a rekey (%v) or FINp (%v) frame", sawRekey, sawFIN)
			}
		})
	}
}

// TestVectorsCrossCheck has a second implementation recompute every vector,
// resumption included: testdata/crosscheck.py, written in Python from the
// RFC text with the `cryptography` package, none of this package's code. A
// misreading of the RFC shared by the appliance and the host mode (which
// uses this package) interoperates with itself; it would not pass here.
func TestVectorsCrossCheck(t *testing.T) {
	py := pythonWithCryptography(t)
	out, err := exec.Command(py, "testdata/crosscheck.py", vectorsPath).CombinedOutput()
	if err != nil {
		t.Fatalf("crosscheck.py: %v\n%s", err, out)
	}
	want := fmt.Sprintf("%d of %d vectors agree", len(loadVectors(t).Vectors), len(loadVectors(t).Vectors))
	if !strings.Contains(string(out), want) {
		t.Fatalf("crosscheck.py did not report %q:\n%s", want, out)
	}
}

// pythonWithCryptography returns a Python 3 that imports `cryptography`:
// the one on PATH, else Debian's, where scripts/deps.sh installs
// python3-cryptography.
func pythonWithCryptography(t *testing.T) string {
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		if p, err := exec.LookPath(py); err == nil && exec.Command(p, "-c", "import cryptography").Run() == nil {
			return p
		}
	}
	t.Fatal("no python3 with the cryptography package (Debian python3-cryptography; scripts/deps.sh test installs it)")
	return ""
}
