package pcapng

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
	"time"
)

// FuzzReader: any file is read to an error or the end, never a panic, with
// memory bounded by the input (a length field alone does not allocate).
func FuzzReader(f *testing.F) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf)
	_ = w.WritePacket(time.Unix(1, 0), []byte("0123456789abcdef"))
	_ = w.WritePacket(time.Unix(2, 0), make([]byte, 61))
	f.Add(buf.Bytes())
	f.Add([]byte{0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 113, 0, 0, 0,
		1, 0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0x45, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytes.NewReader(b))
		if err != nil {
			return
		}
		for i := 0; i < 1000; i++ {
			p, err := r.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, ErrFormat) {
					t.Fatalf("error %v is neither EOF nor ErrFormat", err)
				}
				return
			}
			if len(p.Data) > len(b)+14 {
				t.Fatalf("a %d-byte frame from a %d-byte file", len(p.Data), len(b))
			}
		}
	})
}

// A block claiming 60 MiB in a tiny file fails without allocating it.
func TestHugeLengthSmallFile(t *testing.T) {
	var buf bytes.Buffer
	if _, err := NewWriter(&buf); err != nil {
		t.Fatal(err)
	}
	b := append(buf.Bytes(), 6, 0, 0, 0, 0, 0, 0xc0, 3) // EPB, length 0x03c00000
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); !errors.Is(err, ErrFormat) {
		t.Fatalf("err %v, want ErrFormat", err)
	}
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 8<<20 {
		t.Fatalf("reading a 60 MiB claim allocated %d bytes", d)
	}
}
