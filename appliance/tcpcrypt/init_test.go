package tcpcrypt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"testing"

	"github.com/tcpinc/tcpinc/cryptopool"
)

// hsSentinels are the abort errors a peer can cause, in one list so tests
// can name which one an error is.
var hsSentinels = []error{
	ErrBadMagic, ErrShortMessage, ErrMessageTooLong, ErrTruncated, ErrNoCiphers,
	ErrNoCommonCipher, ErrCipherNotOffered, ErrBadPublicKey, ErrZeroSharedSecret,
}

// hsKind names the sentinel err matches: nil for nil, "other" otherwise.
func hsKind(err error) error {
	if err == nil {
		return nil
	}
	for _, s := range hsSentinels {
		if errors.Is(err, s) {
			return s
		}
	}
	return errors.New("other")
}

// TestErrorsDistinct: each abort error is its own errors.Is target and all
// of them match ErrAbort; local errors do not (U-1, TC-78).
func TestErrorsDistinct(t *testing.T) {
	for i, a := range hsSentinels {
		if !errors.Is(a, ErrAbort) {
			t.Errorf("%v does not match ErrAbort", a)
		}
		wrapped := fmt.Errorf("ctx: %w", a)
		if !errors.Is(wrapped, a) || !errors.Is(wrapped, ErrAbort) {
			t.Errorf("wrapped %v lost its identity", a)
		}
		for j, b := range hsSentinels {
			if i != j && errors.Is(a, b) {
				t.Errorf("%v matches %v", a, b)
			}
		}
	}
	for _, e := range []error{ErrUnsupportedTEP, ErrInvalidConfig, ErrNotReady} {
		if errors.Is(e, ErrAbort) {
			t.Errorf("local error %v matches ErrAbort", e)
		}
	}
}

// hsInit1 and hsInit2 build messages for tep with a fresh key.
func hsInit1(t testing.TB, tep TEP, ciphers ...cryptopool.Suite) []byte {
	t.Helper()
	m, err := AppendInit1(nil, ciphers, seq(0, 32), hsRandKey(t, tep).Public)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func hsInit2(t testing.TB, tep TEP, c cryptopool.Suite) []byte {
	t.Helper()
	m, err := AppendInit2(nil, c, seq(0x20, 32), hsRandKey(t, tep).Public)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func hsSetLen(msg []byte, l uint32) []byte {
	out := bytes.Clone(msg)
	binary.BigEndian.PutUint32(out[4:8], l)
	return out
}

func hsAddTail(msg []byte, tail []byte) []byte {
	out := append(bytes.Clone(msg), tail...)
	binary.BigEndian.PutUint32(out[4:8], uint32(len(out)))
	return out
}

func TestAppendInit(t *testing.T) {
	prefix := []byte("keep")
	m, err := AppendInit1(bytes.Clone(prefix), []cryptopool.Suite{1, 2}, seq(0, 32), seq(0x40, 32))
	if err != nil || !bytes.HasPrefix(m, prefix) || len(m) != 4+77 {
		t.Fatalf("AppendInit1 into a buffer: %x, %v", m, err)
	}
	if got := binary.BigEndian.Uint32(m[8:12]); got != 77 {
		t.Errorf("message_len %d, want 77 (73 + 2K, docs/protocol.md §8)", got)
	}
	for _, c := range []struct {
		name    string
		ciphers []cryptopool.Suite
		nonce   []byte
	}{
		{"no ciphers", nil, seq(0, 32)},
		{"256 ciphers", make([]cryptopool.Suite, 256), seq(0, 32)},
		{"short nonce", []cryptopool.Suite{1}, seq(0, 31)},
	} {
		if _, err := AppendInit1(nil, c.ciphers, c.nonce, nil); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("AppendInit1 %s: %v", c.name, err)
		}
	}
	if _, err := AppendInit2(nil, 1, seq(0, 33), nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("AppendInit2 long nonce: %v", err)
	}
}

// TestLooksLikeInit1: every TEP's Init1, whole or cut after its
// message_len, looks like one; an Init2, plain data, fewer than 8 bytes,
// nciphers 0 and a message_len no Init1 has do not.
func TestLooksLikeInit1(t *testing.T) {
	for _, tep := range []TEP{TEPX25519, TEPX448, TEPP256, TEPP521} {
		m, err := AppendInit1(nil, []cryptopool.Suite{1}, seq(0, 32), seq(0x40, PublicKeyLen(tep)))
		if err != nil {
			t.Fatal(err)
		}
		if !LooksLikeInit1(m) || !LooksLikeInit1(m[:8]) || !LooksLikeInit1(m[:9]) {
			t.Errorf("%v: Init1 %x not taken for one", tep, m)
		}
	}
	m, _ := AppendInit1(nil, []cryptopool.Suite{1}, seq(0, 32), seq(0x40, 32))
	i2, _ := AppendInit2(nil, 1, seq(0, 32), seq(0x40, 32))
	for name, b := range map[string][]byte{
		"Init2":            i2,
		"HTTP":             []byte("GET / HTTP/1.1\r\n\r\n"),
		"7 bytes":          m[:7],
		"nciphers 0":       append(bytes.Clone(m[:8]), 0),
		"message_len 74":   binary.BigEndian.AppendUint32(bytes.Clone(m[:4]), 74),
		"message_len 64 K": binary.BigEndian.AppendUint32(bytes.Clone(m[:4]), DefaultMaxInitLen+1),
	} {
		if LooksLikeInit1(b) {
			t.Errorf("%s (%x) taken for an Init1", name, b)
		}
	}
}

type hsFeeder interface {
	Feed(p []byte) (int, bool, error)
}

// hsFeedChunks feeds stream in the given chunk sizes (the last chunk takes
// the rest) and returns the total consumed, done and the error.
func hsFeedChunks(r hsFeeder, stream []byte, sizes ...int) (n int, done bool, err error) {
	for i := 0; ; i++ {
		end := len(stream)
		if i < len(sizes) {
			end = min(n+sizes[i], len(stream))
		}
		c, d, e := r.Feed(stream[n:end])
		n += c
		if e != nil || d || end == len(stream) {
			return n, d, e
		}
	}
}

func hsFeedBytewise(r hsFeeder, stream []byte) (n int, done bool, err error) {
	for i := 0; i < len(stream); i++ {
		c, d, e := r.Feed(stream[i : i+1])
		n += c
		if e != nil || d {
			return n, d, e
		}
	}
	return n, false, nil
}

// TestInitReaderSplit: every TEP's Init1 and Init2, with and without an
// ignored tail and followed by frame bytes, read whole, split in two at every
// byte position and byte by byte (TC-7, TC-64, TC-66).
func TestInitReaderSplit(t *testing.T) {
	after := []byte{0x00, 0x00, 0x11, 0xaa}
	for _, tep := range AllTEPs {
		for _, tail := range [][]byte{nil, []byte("xyz")} {
			msgs := map[string][]byte{
				"init1": hsAddTail(hsInit1(t, tep, 1, 0x10), tail),
				"init2": hsAddTail(hsInit2(t, tep, 2), tail),
			}
			for kind, msg := range msgs {
				name := fmt.Sprintf("%v/%s/tail%d", tep, kind, len(tail))
				stream := append(bytes.Clone(msg), after...)
				newR := func() *InitReader {
					var r *InitReader
					var err error
					if kind == "init1" {
						r, err = NewInit1Reader(tep, 0)
					} else {
						r, err = NewInit2Reader(tep, 0)
					}
					if err != nil {
						t.Fatal(err)
					}
					return r
				}
				check := func(how string, r *InitReader, n int, done bool, err error) {
					t.Helper()
					if err != nil || !done || n != len(msg) || !r.Done() || r.Len() != len(msg) {
						t.Fatalf("%s %s: n=%d done=%v err=%v", name, how, n, done, err)
					}
					var raw, ign []byte
					if kind == "init1" {
						m, err := r.Init1()
						if err != nil {
							t.Fatal(err)
						}
						raw, ign = m.Raw, m.Ignored()
						if m.NumCiphers() != 2 || m.Cipher(0) != 1 || m.Cipher(1) != 0x10 || !bytes.Equal(m.NA, seq(0, 32)) || len(m.Pub) != PublicKeyLen(tep) {
							t.Fatalf("%s %s: fields %+v", name, how, m)
						}
					} else {
						m, err := r.Init2()
						if err != nil {
							t.Fatal(err)
						}
						raw, ign = m.Raw, m.Ignored()
						if m.Cipher != 2 || !bytes.Equal(m.NB, seq(0x20, 32)) || len(m.Pub) != PublicKeyLen(tep) {
							t.Fatalf("%s %s: fields %+v", name, how, m)
						}
					}
					if !bytes.Equal(raw, msg) || !bytes.Equal(ign, tail) {
						t.Fatalf("%s %s: raw or tail differ", name, how)
					}
					// Done readers take nothing more.
					if c, d, e := r.Feed(after); c != 0 || !d || e != nil {
						t.Fatalf("%s %s: Feed after done = %d %v %v", name, how, c, d, e)
					}
				}
				r := newR()
				n, done, err := r.Feed(stream)
				check("whole", r, n, done, err)
				for i := 0; i <= len(stream); i++ {
					r := newR()
					n, done, err := hsFeedChunks(r, stream, i)
					check(fmt.Sprintf("split@%d", i), r, n, done, err)
				}
				r = newR()
				n, done, err = hsFeedBytewise(r, stream)
				check("bytewise", r, n, done, err)
			}
		}
	}
}

// TestInitReaderMalformed: every malformed header fails with its own
// error, whether fed whole or byte by byte, and the error is sticky (U-1).
func TestInitReaderMalformed(t *testing.T) {
	i1 := hsInit1(t, TEPX25519, 1)
	i2 := hsInit2(t, TEPX25519, 1)
	nc0 := bytes.Clone(i1)
	nc0[8] = 0
	k3 := bytes.Clone(i1) // claims 3 ciphers in a message sized for 1
	k3[8] = 3
	cases := []struct {
		name  string
		init1 bool
		msg   []byte
		max   int
		want  error
	}{
		{"init1 magic byte 0", true, append([]byte{0x16}, i1[1:]...), 0, ErrBadMagic},
		{"init1 magic byte 3", true, append(bytes.Clone(i1[:3]), append([]byte{0x0f}, i1[4:]...)...), 0, ErrBadMagic},
		{"init2 magic in init1 reader", true, i2, 0, ErrBadMagic},
		{"init1 magic in init2 reader", false, i1, 0, ErrBadMagic},
		{"init1 len 0", true, hsSetLen(i1, 0), 0, ErrShortMessage},
		{"init1 len 74 (one short)", true, hsSetLen(i1, 74), 0, ErrShortMessage},
		{"init2 len 73 (one short)", false, hsSetLen(i2, 73), 0, ErrShortMessage},
		{"init1 len 8", true, hsSetLen(i1, 8), 0, ErrShortMessage},
		{"init1 nciphers 0", true, nc0, 0, ErrNoCiphers},
		{"init1 3 ciphers in 75 bytes", true, k3, 0, ErrShortMessage},
		{"init1 len 2^32-1", true, hsSetLen(i1, 0xffffffff), 0, ErrMessageTooLong},
		{"init2 len 2^32-1", false, hsSetLen(i2, 0xffffffff), 0, ErrMessageTooLong},
		{"init1 len default cap+1", true, hsSetLen(i1, DefaultMaxInitLen+1), 0, ErrMessageTooLong},
		{"init1 len above custom cap", true, hsAddTail(i1, make([]byte, 26)), 100, ErrMessageTooLong},
		{"init2 len above custom cap", false, hsAddTail(i2, make([]byte, 27)), 100, ErrMessageTooLong},
	}
	for _, c := range cases {
		newR := func() *InitReader {
			var r *InitReader
			var err error
			if c.init1 {
				r, err = NewInit1Reader(TEPX25519, c.max)
			} else {
				r, err = NewInit2Reader(TEPX25519, c.max)
			}
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		for _, bytewise := range []bool{false, true} {
			r := newR()
			var done bool
			var err error
			if bytewise {
				_, done, err = hsFeedBytewise(r, c.msg)
			} else {
				_, done, err = r.Feed(c.msg)
			}
			if done || hsKind(err) != c.want {
				t.Errorf("%s (bytewise %v): done=%v err=%v, want %v", c.name, bytewise, done, err, c.want)
				continue
			}
			hsCheckAbort(t, err, c.want)
			if n, _, err2 := r.Feed(c.msg); n != 0 || err2 != err {
				t.Errorf("%s: error not sticky: %d %v", c.name, n, err2)
			}
			if _, err := r.Init1(); !errors.Is(err, ErrNotReady) {
				t.Errorf("%s: Init1 after failure: %v", c.name, err)
			}
		}
		// The one-shot parsers agree.
		var err error
		if c.init1 {
			_, err = ParseInit1(c.msg, TEPX25519, c.max)
		} else {
			_, err = ParseInit2(c.msg, TEPX25519, c.max)
		}
		if hsKind(err) != c.want {
			t.Errorf("%s: Parse: %v, want %v", c.name, err, c.want)
		}
	}

	// At the cap exactly is fine.
	r, _ := NewInit1Reader(TEPX25519, 100)
	if _, done, err := r.Feed(hsAddTail(i1, make([]byte, 25))); !done || err != nil {
		t.Errorf("message_len = cap: %v %v", done, err)
	}
}

// TestInitReaderGrowsWithInput: a header claiming the cap (65535 bytes)
// does not make the reader allocate the claimed length: 100 readers given
// only their header hold far less than one such message each, so a peer
// cannot pin 64 KiB per flow with 8 or 9 bytes (U-1). A message of that
// length, arriving in pieces, is still kept byte for byte (it goes into
// the PRK, TC-64).
func TestInitReaderGrowsWithInput(t *testing.T) {
	const claimed = 65535
	head1 := binary.BigEndian.AppendUint32(nil, Init1Magic)
	head1 = binary.BigEndian.AppendUint32(head1, claimed)
	head1 = append(head1, 1) // nciphers
	head2 := binary.BigEndian.AppendUint32(nil, Init2Magic)
	head2 = binary.BigEndian.AppendUint32(head2, claimed)
	for _, c := range []struct {
		name string
		head []byte
		newR func(TEP, int) (*InitReader, error)
	}{{"Init1", head1, NewInit1Reader}, {"Init2", head2, NewInit2Reader}} {
		const readers = 100
		rs := make([]*InitReader, readers)
		for i := range rs {
			rs[i], _ = c.newR(TEPX25519, 0)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for _, r := range rs {
			if n, done, err := r.Feed(c.head); n != len(c.head) || done || err != nil || r.Len() != claimed {
				t.Fatalf("%s header: %d %v %v, Len %d", c.name, n, done, err, r.Len())
			}
		}
		runtime.ReadMemStats(&after)
		if got := after.TotalAlloc - before.TotalAlloc; got > readers*1024 {
			t.Errorf("%s: %d headers claiming %d bytes allocated %d bytes (%d each), want under 1 KiB each",
				c.name, readers, claimed, got, got/readers)
		}
		for _, r := range rs {
			if cap(r.buf) > 1024 {
				t.Fatalf("%s: buffer capacity %d after the header alone", c.name, cap(r.buf))
			}
		}
	}

	msg := hsAddTail(hsInit1(t, TEPX25519, 1, 2), seq(7, claimed-77))
	r, _ := NewInit1Reader(TEPX25519, 0)
	for off := 0; off < len(msg); off += 1000 {
		if _, _, err := r.Feed(msg[off:min(off+1000, len(msg))]); err != nil {
			t.Fatal(err)
		}
	}
	m, err := r.Init1()
	if err != nil || !bytes.Equal(m.Raw, msg) || len(m.Ignored()) != claimed-77 {
		t.Fatalf("65535-byte Init1 in 1000-byte pieces: %v, raw equal %v", err, bytes.Equal(m.Raw, msg))
	}
	if cap(m.Raw) != len(m.Raw) {
		t.Errorf("Raw has %d bytes of spare capacity (appending to it would write into the reader)", cap(m.Raw)-len(m.Raw))
	}
}

// TestInitTruncated: a valid prefix is "need more" to the reader and
// ErrTruncated to the one-shot parser.
func TestInitTruncated(t *testing.T) {
	i1 := hsInit1(t, TEPX448, 1, 2)
	i2 := hsInit2(t, TEPP521, 1)
	for k := 0; k < len(i1); k++ {
		r, _ := NewInit1Reader(TEPX448, 0)
		if n, done, err := r.Feed(i1[:k]); n != k || done || err != nil {
			t.Fatalf("init1 prefix %d: %d %v %v", k, n, done, err)
		}
		if _, err := r.Init1(); !errors.Is(err, ErrNotReady) {
			t.Fatalf("init1 prefix %d: Init1() = %v", k, err)
		}
		if _, err := ParseInit1(i1[:k], TEPX448, 0); !errors.Is(err, ErrTruncated) {
			t.Fatalf("ParseInit1 prefix %d: %v", k, err)
		}
	}
	for k := 0; k < len(i2); k++ {
		if _, err := ParseInit2(i2[:k], TEPP521, 0); !errors.Is(err, ErrTruncated) {
			t.Fatalf("ParseInit2 prefix %d: %v", k, err)
		}
	}
	hsCheckAbort(t, ErrTruncated, ErrTruncated)
}

func TestInitReaderMisuse(t *testing.T) {
	if _, err := NewInit1Reader(0x20, 0); !errors.Is(err, ErrUnsupportedTEP) {
		t.Errorf("NewInit1Reader(0x20): %v", err)
	}
	if _, err := ParseInit2(nil, 0x25, 0); !errors.Is(err, ErrUnsupportedTEP) {
		t.Errorf("ParseInit2(0x25): %v", err)
	}
	r, _ := NewInit1Reader(TEPX25519, 0)
	r.Feed(hsInit1(t, TEPX25519, 1))
	if _, err := r.Init2(); !errors.Is(err, ErrNotReady) {
		t.Errorf("Init2() on an Init1 reader: %v", err)
	}
	if r.Len() != 75 {
		t.Errorf("Len = %d", r.Len())
	}
}

// TestInitBuildParseNoAllocs: building into a reused buffer and parsing
// allocate nothing.
func TestInitBuildParseNoAllocs(t *testing.T) {
	pub := hsRandKey(t, TEPX25519).Public
	nonce := seq(0, 32)
	ciphers := []cryptopool.Suite{1, 2, 0x10}
	buf := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(100, func() {
		m, _ := AppendInit1(buf[:0], ciphers, nonce, pub)
		p, err := ParseInit1(m, TEPX25519, 0)
		if err != nil || p.NumCiphers() != 3 {
			panic("parse failed")
		}
		m, _ = AppendInit2(buf[:0], 2, nonce, pub)
		if _, err := ParseInit2(m, TEPX25519, 0); err != nil {
			panic("parse failed")
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per build+parse, want 0", allocs)
	}
}

// hsFuzzReader checks the reader's invariants on data for one message kind:
// never panic; whole, split-in-two and byte-by-byte feeding agree; the
// one-shot parser agrees; a parsed message re-encodes to its raw bytes minus
// the ignored tail, and parses back to the same fields.
func hsFuzzReader(t *testing.T, init1 bool, tep TEP, data []byte, split int) {
	const maxLen = 1024
	newR := func() *InitReader {
		if init1 {
			r, _ := NewInit1Reader(tep, maxLen)
			return r
		}
		r, _ := NewInit2Reader(tep, maxLen)
		return r
	}
	r := newR()
	n, done, err := r.Feed(data)
	if done && err != nil {
		t.Fatalf("done with error %v", err)
	}
	if err != nil && hsKind(err).Error() == "other" {
		t.Fatalf("untyped error %v", err)
	}
	split %= len(data) + 1
	r2 := newR()
	n2, done2, err2 := hsFeedChunks(r2, data, split)
	r3 := newR()
	n3, done3, err3 := hsFeedBytewise(r3, data)
	if done2 != done || done3 != done || hsKind(err2) != hsKind(err) || hsKind(err3) != hsKind(err) {
		t.Fatalf("whole %v/%v, split@%d %v/%v, bytewise %v/%v", done, err, split, done2, err2, done3, err3)
	}
	var parseErr error
	var raw []byte
	if init1 {
		var m Init1
		m, parseErr = ParseInit1(data, tep, maxLen)
		raw = m.Raw
	} else {
		var m Init2
		m, parseErr = ParseInit2(data, tep, maxLen)
		raw = m.Raw
	}
	switch {
	case err != nil:
		if hsKind(parseErr) != hsKind(err) {
			t.Fatalf("parse %v, reader %v", parseErr, err)
		}
		return
	case !done:
		if n != len(data) || !errors.Is(parseErr, ErrTruncated) {
			t.Fatalf("need more after %d of %d bytes; parse %v", n, len(data), parseErr)
		}
		return
	}
	if n2 != n || n3 != n || parseErr != nil || !bytes.Equal(raw, data[:n]) {
		t.Fatalf("consumed %d/%d/%d, parse %v", n, n2, n3, parseErr)
	}
	var enc, ign []byte
	if init1 {
		m, _ := r.Init1()
		if !bytes.Equal(m.Raw, data[:n]) {
			t.Fatal("Raw differs from the input")
		}
		enc, err = m.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := ParseInit1(enc, tep, maxLen)
		if err != nil || !equalSuites(m2.Ciphers(), m.Ciphers()) || !bytes.Equal(m2.NA, m.NA) || !bytes.Equal(m2.Pub, m.Pub) || len(m2.Ignored()) != 0 {
			t.Fatalf("re-encoded Init1 parses differently: %v", err)
		}
		ign = m.Ignored()
	} else {
		m, _ := r.Init2()
		enc, err = m.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := ParseInit2(enc, tep, maxLen)
		if err != nil || m2.Cipher != m.Cipher || !bytes.Equal(m2.NB, m.NB) || !bytes.Equal(m2.Pub, m.Pub) || len(m2.Ignored()) != 0 {
			t.Fatalf("re-encoded Init2 parses differently: %v", err)
		}
		ign = m.Ignored()
	}
	want := hsSetLen(data[:len(enc)], uint32(len(enc)))
	if !bytes.Equal(enc, want) || !bytes.Equal(ign, data[len(enc):n]) {
		t.Fatalf("re-encoding %x is not the input %x minus its tail", enc, data[:n])
	}
}

func equalSuites(a, b []cryptopool.Suite) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func FuzzInit1(f *testing.F) {
	we := unhex(f, "15101a0e0000004b010001000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
	f.Add(we, uint16(0), byte(0))
	f.Add(append(bytes.Clone(we), 0, 0, 0x11), uint16(40), byte(0))
	f.Add(hsAddTail(we, []byte("tail")), uint16(9), byte(0))
	f.Add(hsInit1(f, TEPX448, 1, 2, 0x10, 0x7777), uint16(8), byte(1))
	f.Add(hsInit1(f, TEPP256, 1), uint16(77), byte(2))
	f.Add(hsInit1(f, TEPP521, 2), uint16(3), byte(3))
	f.Add(hsSetLen(we, 0xffffffff), uint16(5), byte(0))
	f.Add(hsSetLen(we, 10), uint16(5), byte(0))
	nc0 := bytes.Clone(we)
	nc0[8] = 0
	f.Add(nc0, uint16(9), byte(0))
	f.Add([]byte{0x15, 0x10, 0x1a}, uint16(1), byte(0))
	f.Fuzz(func(t *testing.T, data []byte, split uint16, tepSel byte) {
		hsFuzzReader(t, true, AllTEPs[int(tepSel)%len(AllTEPs)], data, int(split))
	})
}

func FuzzInit2(f *testing.F) {
	we := unhex(f, "097105e00000004a0001202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3fde9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
	f.Add(we, uint16(0), byte(0))
	f.Add(append(bytes.Clone(we), 0x01, 0x00, 0x11), uint16(70), byte(0))
	f.Add(hsAddTail(we, []byte("tail")), uint16(8), byte(0))
	f.Add(hsInit2(f, TEPX448, 2), uint16(8), byte(1))
	f.Add(hsInit2(f, TEPP256, 0x10), uint16(77), byte(2))
	f.Add(hsInit2(f, TEPP521, 1), uint16(4), byte(3))
	f.Add(hsSetLen(we, 0x10000), uint16(6), byte(0))
	f.Add(hsSetLen(we, 73), uint16(2), byte(0))
	f.Add([]byte{0x09, 0x71, 0x05, 0xe1}, uint16(3), byte(0))
	f.Fuzz(func(t *testing.T, data []byte, split uint16, tepSel byte) {
		hsFuzzReader(t, false, AllTEPs[int(tepSel)%len(AllTEPs)], data, int(split))
	})
}

func BenchmarkInit1BuildParse(b *testing.B) {
	pub := hsRandKey(b, TEPX25519).Public
	nonce := seq(0, 32)
	ciphers := []cryptopool.Suite{cryptopool.AES128GCM}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	b.SetBytes(75)
	for b.Loop() {
		m, _ := AppendInit1(buf[:0], ciphers, nonce, pub)
		if _, err := ParseInit1(m, TEPX25519, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkInit2BuildParse(b *testing.B) {
	pub := hsRandKey(b, TEPX25519).Public
	nonce := seq(0, 32)
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	b.SetBytes(74)
	for b.Loop() {
		m, _ := AppendInit2(buf[:0], cryptopool.AES128GCM, nonce, pub)
		if _, err := ParseInit2(m, TEPX25519, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInitReaderBytewise: the incremental reader fed one byte at a
// time (the worst split); its one allocation is the message buffer.
func BenchmarkInitReaderBytewise(b *testing.B) {
	msg := hsInit1(b, TEPX25519, 1)
	var r InitReader
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		r.init(Init1Magic, init1Head, TEPX25519, 0)
		if _, done, err := hsFeedBytewise(&r, msg); !done || err != nil {
			b.Fatal(err)
		}
	}
}

// ParseInit1 (for tests: the engine reads Init messages with InitReader)
// parses the Init1 at the start of b, which must hold the whole
// message (ErrTruncated otherwise). Bytes after message_len are not looked
// at. The result aliases b.
func ParseInit1(b []byte, tep TEP, maxLen int) (Init1, error) {
	var r InitReader
	if err := r.init(Init1Magic, init1Head, tep, maxLen); err != nil {
		return Init1{}, err
	}
	if err := r.parseWhole(b); err != nil {
		return Init1{}, err
	}
	return splitInit1(b[:r.msgLen], r.pubLen), nil
}

// ParseInit2 is ParseInit1 for Init2.
func ParseInit2(b []byte, tep TEP, maxLen int) (Init2, error) {
	var r InitReader
	if err := r.init(Init2Magic, init2Head-2, tep, maxLen); err != nil {
		return Init2{}, err
	}
	if err := r.parseWhole(b); err != nil {
		return Init2{}, err
	}
	return splitInit2(b[:r.msgLen], r.pubLen), nil
}

func (r *InitReader) parseWhole(b []byte) error {
	if err := r.check(b[:min(len(b), r.head)]); err != nil {
		return err
	}
	if len(b) < r.head || len(b) < r.msgLen {
		return ErrTruncated
	}
	return nil
}
