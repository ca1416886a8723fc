package tcpcrypt

import "errors"

// Errors of the receive direction.
var (
	// ErrDataAfterFIN: bytes follow the frame that carried FINp. The sender
	// MUST set FINp on its last frame only (TC-49), so this is a protocol
	// error, not a clean end of stream.
	// Matches ErrAbort.
	ErrDataAfterFIN error = &peerError{"tcpcrypt: data after the FINp frame"}
	// ErrFeedPending: Feed was called before Next had consumed the
	// previous chunk.
	ErrFeedPending = errors.New("tcpcrypt: previous chunk not consumed")
)

// Frame is one authenticated frame of the receive direction.
type Frame struct {
	FrameHeader
	Offset  uint64 // stream offset of the frame's first byte (its frame ID)
	WireLen int    // HeaderLen + clen: bytes the frame occupies in the stream
	Data    []byte // the application data; valid until the next Feed or Next
}

// FrameDecoder cuts the received byte stream into frames and opens them in
// order (RFC 8548 §3.6). It accepts the stream split anywhere: several frames
// per chunk, and frames of up to MaxFrameLen bytes spanning many chunks
// (a host-based peer may send large frames). It keeps at most one partial
// frame, in a buffer it reuses, so steady-state decoding does not allocate.
//
// Frames that lie wholly inside a fed chunk are decrypted in place, in the
// caller's chunk; a frame that spans chunks is assembled in the decoder's
// buffer first. Keys come from a KeyRing, which also applies rekey bits
// (TC-56): after each frame check KeyRing.Owed.
//
// Errors are sticky: after ErrFrameAuth (TC-47), ErrFrameMalformed,
// ErrDataAfterFIN or a KeyRing error the connection is to be aborted, and
// Offset is the stream offset of the frame that failed. No data of a frame
// that failed authentication is ever returned. A FrameDecoder is not safe
// for concurrent use.
type FrameDecoder struct {
	keys   *KeyRing
	offset uint64 // stream offset of the next frame
	in     []byte // the part of the fed chunk not yet consumed
	part   []byte // a frame begun in an earlier chunk (len = bytes so far)
	fin    bool   // the FINp frame has been opened
	err    error
}

// NewFrameDecoder decodes frames opened with keys, the first of which starts
// at stream offset offset: message_len of the peer's Init message after a
// fresh key exchange, 0 after resumption.
func NewFrameDecoder(keys *KeyRing, offset uint64) *FrameDecoder {
	return &FrameDecoder{keys: keys, offset: offset}
}

// Feed hands the decoder the next chunk of the stream, in order. The chunk
// is read, and decrypted in place, by the following Next calls; it must not
// be changed until Next reports that it needs more.
func (d *FrameDecoder) Feed(chunk []byte) error {
	if d.err != nil {
		return d.err
	}
	if len(d.in) != 0 {
		return ErrFeedPending
	}
	d.in = chunk
	return nil
}

// Next returns the next frame. ok = false with a nil error means the fed
// bytes are used up (a partial frame may be kept): Feed more. Frame.Data
// stays valid until the next call of Next or Feed.
func (d *FrameDecoder) Next() (f Frame, ok bool, err error) {
	return d.NextInto(nil)
}

// NextInto is Next with the frame's plaintext written to dst where it fits
// (KeyRing.OpenTo): Frame.Data then lies in dst, at dst[DataStart() -
// HeaderLen:], and dst[0] holds the frame's flags byte. Where it does not
// fit, the frame is opened in place as by Next. dst must not overlap the
// fed chunk.
func (d *FrameDecoder) NextInto(dst []byte) (f Frame, ok bool, err error) {
	if d.err != nil {
		return Frame{}, false, d.err
	}
	if len(d.in) == 0 {
		return Frame{}, false, nil
	}
	if d.fin {
		return d.fail(ErrDataAfterFIN)
	}
	var frame []byte
	if len(d.part) == 0 {
		n, ok := FrameLen(d.in)
		if ok && n-HeaderLen < MinClen {
			return d.fail(ErrFrameMalformed)
		}
		if !ok || len(d.in) < n {
			d.stash(d.in)
			d.in = nil
			return Frame{}, false, nil
		}
		frame, d.in = d.in[:n], d.in[n:]
	} else {
		if len(d.part) < HeaderLen {
			take := min(HeaderLen-len(d.part), len(d.in))
			d.stash(d.in[:take])
			d.in = d.in[take:]
			if len(d.part) < HeaderLen {
				return Frame{}, false, nil
			}
		}
		n, _ := FrameLen(d.part)
		if n-HeaderLen < MinClen {
			return d.fail(ErrFrameMalformed)
		}
		take := min(n-len(d.part), len(d.in))
		d.stash(d.in[:take])
		d.in = d.in[take:]
		if len(d.part) < n {
			return Frame{}, false, nil
		}
		frame = d.part
		d.part = d.part[:0]
	}
	h, data, err := d.keys.OpenTo(dst, frame, d.offset)
	if err != nil {
		return d.fail(err)
	}
	f = Frame{FrameHeader: h, Offset: d.offset, WireLen: len(frame), Data: data}
	d.offset += uint64(len(frame))
	d.fin = h.FIN
	return f, true, nil
}

// stash appends b to the partial frame. The buffer grows only when a frame
// larger than any before arrives, to at most MaxFrameLen bytes.
func (d *FrameDecoder) stash(b []byte) {
	need := len(d.part) + len(b)
	if n, ok := FrameLen(d.part); ok {
		need = max(need, n)
	} else if n, ok := FrameLen(b); ok && len(d.part) == 0 {
		need = n
	}
	if cap(d.part) < need {
		grown := make([]byte, len(d.part), min(max(need, 2*cap(d.part), minPartial), MaxFrameLen))
		copy(grown, d.part)
		d.part = grown
	}
	d.part = append(d.part, b...)
}

// minPartial is the smallest partial-frame buffer: a typical segment's worth,
// so a frame cut at its header does not grow the buffer twice.
const minPartial = 2048

func (d *FrameDecoder) fail(err error) (Frame, bool, error) {
	d.err = err
	d.in = nil
	return Frame{}, false, err
}

// Offset is the stream offset of the next frame: every byte before it
// belonged to a frame that was opened. After an error it is the offset of
// the frame that failed.
func (d *FrameDecoder) Offset() uint64 { return d.offset }

// Trim frees the partial-frame buffer when no frame is partial: an idle
// connection gives back what a large frame made it grow to.
func (d *FrameDecoder) Trim() {
	if len(d.part) == 0 {
		d.part = nil
	}
}

// Feedable returns how many of chunk's bytes, the next to be fed, may be fed
// so that every frame they complete finds room for its data: fits(n, k)
// says whether the k frames completed so far, n data bytes at most
// together, fit.
// The frame that does not fit is fed but for its last byte, which stays
// with the caller until there is room. A frame not yet whole, a header
// that claims too little (Next reports it) or a decoder that failed or saw
// FINp take the rest.
func (d *FrameDecoder) Feedable(chunk []byte, fits func(n int64, k int) bool) int {
	if d.err != nil || d.fin {
		return len(chunk)
	}
	start, need := -len(d.part), int64(0) // the current frame's first byte, relative to chunk
	for k := 1; ; k++ {
		var h [HeaderLen]byte
		for i := range h {
			switch j := start + i; {
			case j < 0:
				h[i] = d.part[len(d.part)+j]
			case j < len(chunk):
				h[i] = chunk[j]
			default:
				return len(chunk) // no header yet: nothing more completes
			}
		}
		n, _ := FrameLen(h[:])
		end := start + n
		if n-HeaderLen < MinClen || end > len(chunk) {
			return len(chunk)
		}
		need += int64(n - HeaderLen - MinClen)
		if !fits(need, k) {
			return end - 1
		}
		start = end
	}
}

// Buffered is the number of bytes of a partial frame held from earlier chunks.
func (d *FrameDecoder) Buffered() int { return len(d.part) }

// BufferSize is the size of the partial-frame buffer: what the decoder
// holds in memory (up to MaxFrameLen), for the caller's accounting.
func (d *FrameDecoder) BufferSize() int { return cap(d.part) }

// Partial returns the wire length (3 + clen) of the frame being assembled
// from earlier chunks, starting at Offset, once its header is in; ok is
// false while fewer than 3 of its bytes arrived or no frame is partial. A
// receiver that acknowledges the bytes of a frame it cannot open yet uses
// it to keep the frame's end back.
func (d *FrameDecoder) Partial() (n int, ok bool) { return FrameLen(d.part) }

// FIN reports whether the frame with FINp has been opened: the one and only
// moment to report end of stream (TC-50).
func (d *FrameDecoder) FIN() bool { return d.fin }

// Err is the sticky error, if any.
func (d *FrameDecoder) Err() error { return d.err }
