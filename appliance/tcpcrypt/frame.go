package tcpcrypt

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/tcpinc/tcpinc/cryptopool"
)

// Frame layout (RFC 8548 §4.2, docs/protocol.md §12):
//
//	control(1) | clen(2, BE) | ciphertext(clen)
//	ciphertext = AEAD(key, nonce, plaintext, AD = control|clen)
//	plaintext  = flags(1) [| urgent(2, BE) if URGp] | data
//
// A buffer handed to Sealer.Seal holds the data at DataOffset (or
// DataOffsetURG) with TagLen spare bytes after it, so the caller can put host
// payload straight where it belongs in the outgoing frame and seal in place.
const (
	HeaderLen     = 3                        // control | clen: also the AD
	TagLen        = cryptopool.TagSize       // AEAD expansion
	DataOffset    = HeaderLen + 1            // data start without URGp
	DataOffsetURG = DataOffset + 2           // data start with URGp (urgent field)
	Overhead      = DataOffset + TagLen      // 20 bytes per frame
	OverheadURG   = DataOffsetURG + TagLen   // 22 bytes per frame with URGp
	MaxClen       = 1<<16 - 1                // clen < 2^16 (TC-43)
	MinClen       = 1 + TagLen               // flags byte and tag: an empty frame
	MaxFrameLen   = HeaderLen + MaxClen      // 65538 bytes on the wire
	MaxData       = MaxClen - TagLen - 1     // 65518 data bytes per frame
	MaxDataURG    = MaxData - 2              // 65516 data bytes with URGp
	frameIDZeros  = cryptopool.NonceSize - 8 // leading zero bytes of the frame ID
	controlRekey  = 0x01                     // control bit 0
	flagFIN       = 0x01                     // flags bit 0: FINp
	flagURG       = 0x02                     // flags bit 1: URGp
)

// peerError is a framing failure the peer's bytes caused. Like the
// handshake's failures it matches ErrAbort (errors.Is): abort the connection
// with an error that is not end of file (TC-47, TC-78).
type peerError struct{ msg string }

func (e *peerError) Error() string        { return e.msg }
func (e *peerError) Is(target error) bool { return target == ErrAbort }

// Errors of the framing layer. None of them is io.EOF: an application must
// be able to tell an attack or a broken peer from a clean, authenticated end
// of stream (TC-78).
var (
	// ErrFrameAuth: the frame did not authenticate (TC-47). The receiver
	// SHOULD abort the connection. Matches ErrAbort.
	ErrFrameAuth error = &peerError{"tcpcrypt: frame authentication failed"}
	// ErrFrameMalformed: clen is too small to hold the flags byte and the
	// tag, or an authenticated plaintext has URGp set but no urgent field.
	// Matches ErrAbort.
	ErrFrameMalformed error = &peerError{"tcpcrypt: malformed frame"}
	// ErrFrameTooLarge: the data does not fit in one frame (TC-43).
	ErrFrameTooLarge = errors.New("tcpcrypt: data too large for one frame")
	// ErrFrameBuffer: the buffer is shorter than the frame it must hold, or
	// a frame passed to Open is not exactly 3 + clen bytes.
	ErrFrameBuffer = errors.New("tcpcrypt: frame buffer too short")
)

// FrameHeader is everything in a frame except the data: the rekey bit of the
// control byte and the FINp/URGp flags with the urgent field. Reserved bits
// (cres, fres) are not represented: they are sent as 0 and ignored on
// receipt (TC-67, TC-68).
type FrameHeader struct {
	Rekey  bool   // first frame under a new local generation (TC-54)
	FIN    bool   // FINp: the sender's last frame (TC-49)
	URG    bool   // URGp: Urgent is present
	Urgent uint16 // offset from the frame start to the last urgent byte (§3.7)
}

// DataStart is where the data begins in a frame with this header.
func (h FrameHeader) DataStart() int {
	if h.URG {
		return DataOffsetURG
	}
	return DataOffset
}

// Overhead is the frame's wire size minus its data.
func (h FrameHeader) Overhead() int { return h.DataStart() + TagLen }

// MaxData is the largest data length a frame with this header can carry.
func (h FrameHeader) MaxData() int { return MaxClen + HeaderLen - h.Overhead() }

func (h FrameHeader) control() byte {
	if h.Rekey {
		return controlRekey
	}
	return 0
}

func (h FrameHeader) flags() byte {
	var f byte
	if h.FIN {
		f |= flagFIN
	}
	if h.URG {
		f |= flagURG
	}
	return f
}

// FrameLen returns the wire length of the frame whose first bytes are b
// (3 + clen), or ok = false if b is shorter than the 3-byte header.
func FrameLen(b []byte) (n int, ok bool) {
	if len(b) < HeaderLen {
		return 0, false
	}
	return HeaderLen + int(binary.BigEndian.Uint16(b[1:3])), true
}

// FrameNonce computes the AEAD nonce of the frame at stream offset:
// frame ID (4 zero bytes | offset as 8 bytes BE) XOR NR (TC-D7).
func FrameNonce(nr *[cryptopool.NonceSize]byte, offset uint64) [cryptopool.NonceSize]byte {
	n := *nr
	binary.BigEndian.PutUint64(n[frameIDZeros:], binary.BigEndian.Uint64(n[frameIDZeros:])^offset)
	return n
}

// frameKey is one traffic key (K and NR) with its AEAD ready to use. The
// nonce scratch lives here, not on the stack, because a slice passed to an
// interface method escapes: keeping it in the struct keeps Seal and Open
// allocation-free, at the price of not being safe for concurrent use.
type frameKey struct {
	suite cryptopool.Suite
	aead  cipher.AEAD
	nr    [cryptopool.NonceSize]byte
	nonce [cryptopool.NonceSize]byte
}

func newFrameKey(k TrafficKey) (frameKey, error) {
	aead, err := cryptopool.NewAEAD(k.Suite, k.Key)
	if err != nil {
		return frameKey{}, fmt.Errorf("tcpcrypt: traffic key: %w", err)
	}
	if aead.NonceSize() != cryptopool.NonceSize || aead.Overhead() != TagLen {
		return frameKey{}, fmt.Errorf("tcpcrypt: suite %v: nonce %d, tag %d bytes, want %d and %d",
			k.Suite, aead.NonceSize(), aead.Overhead(), cryptopool.NonceSize, TagLen)
	}
	return frameKey{suite: k.Suite, aead: aead, nr: k.NR}, nil
}

func (k *frameKey) setNonce(offset uint64) []byte {
	k.nonce = FrameNonce(&k.nr, offset)
	return k.nonce[:]
}

// Suite is the AEAD suite of this key.
func (k *frameKey) Suite() cryptopool.Suite { return k.suite }

// AEAD returns the key's AEAD, for callers that batch the AEAD work
// themselves (with FrameNonce and the header bytes as AD). A cipher.AEAD from
// the standard library is safe for concurrent use.
func (k *frameKey) AEAD() cipher.AEAD { return k.aead }

// NR returns the key's nonce randomizer.
func (k *frameKey) NR() [cryptopool.NonceSize]byte { return k.nr }

// wipe drops the AEAD and zeroes NR (TC-60). The expanded key inside the
// AEAD cannot be reached from Go; dropping the reference is all we can do.
func (k *frameKey) wipe() {
	k.aead = nil
	clear(k.nr[:])
	clear(k.nonce[:])
}

// Sealer builds frames under one sending traffic key (k_ab[j] for the host
// that was A in the original session, k_ba[j] for B; TC-38). A Sealer is not
// safe for concurrent use.
type Sealer struct{ frameKey }

// NewSealer returns a Sealer for traffic key k.
func NewSealer(k TrafficKey) (*Sealer, error) {
	fk, err := newFrameKey(k)
	if err != nil {
		return nil, err
	}
	return &Sealer{fk}, nil
}

// Seal turns buf into one frame, in place, and returns it (buf[:n+h.Overhead()]).
//
// The caller has already put n data bytes at buf[h.DataStart():]; buf must
// have h.Overhead() + n bytes of length, i.e. TagLen spare bytes after the
// data. Seal writes control, clen, flags and the urgent field in front of the
// data and encrypts flags..data in place, appending the tag. offset is the
// frame's position in this side's TCP stream, the Init message included
// (TC-D7). The reserved bits are sent as 0 (TC-67, TC-68).
//
// Seal never encrypts twice at one offset by itself; not doing so under one
// key is the caller's job (TC-44, TC-45): keep the frame, never re-seal.
func (s *Sealer) Seal(buf []byte, h FrameHeader, n int, offset uint64) ([]byte, error) {
	if n < 0 || n > h.MaxData() {
		return nil, ErrFrameTooLarge
	}
	end := h.Overhead() + n
	if len(buf) < end {
		return nil, ErrFrameBuffer
	}
	ptLen := end - HeaderLen - TagLen
	buf[0] = h.control()
	binary.BigEndian.PutUint16(buf[1:3], uint16(ptLen+TagLen))
	buf[3] = h.flags()
	if h.URG {
		binary.BigEndian.PutUint16(buf[4:6], h.Urgent)
	}
	pt := buf[HeaderLen : HeaderLen+ptLen]
	s.aead.Seal(pt[:0], s.setNonce(offset), pt, buf[:HeaderLen])
	return buf[:end], nil
}

// SealTo is Seal with the frame written to dst rather than sealed in place,
// so that the data need not be copied first. src holds the data after
// h.DataStart()-HeaderLen bytes of room (one byte, three with URGp), which
// SealTo overwrites with the flags byte and urgent field: the frame's
// plaintext must be one piece for the AEAD. A received TCP segment's
// payload has the last byte of its header in front; a caller that seals
// from there puts that byte back afterwards. dst must have h.Overhead() + n
// bytes of length (n data bytes) and must not overlap src. The frame is
// the same as Seal's for the same data, header and offset.
func (s *Sealer) SealTo(dst []byte, h FrameHeader, src []byte, offset uint64) ([]byte, error) {
	room := h.DataStart() - HeaderLen
	n := len(src) - room
	if n < 0 || n > h.MaxData() {
		return nil, ErrFrameTooLarge
	}
	end := h.Overhead() + n
	if len(dst) < end {
		return nil, ErrFrameBuffer
	}
	dst[0] = h.control()
	binary.BigEndian.PutUint16(dst[1:3], uint16(room+n+TagLen))
	src[0] = h.flags()
	if h.URG {
		binary.BigEndian.PutUint16(src[1:3], h.Urgent)
	}
	s.aead.Seal(dst[HeaderLen:HeaderLen], s.setNonce(offset), src, dst[:HeaderLen])
	return dst[:end], nil
}

// Opener reads frames under one receiving traffic key. An Opener is not safe
// for concurrent use.
type Opener struct{ frameKey }

// NewOpener returns an Opener for traffic key k.
func NewOpener(k TrafficKey) (*Opener, error) {
	fk, err := newFrameKey(k)
	if err != nil {
		return nil, err
	}
	return &Opener{fk}, nil
}

// Open authenticates and decrypts frame, which must be exactly one whole
// frame (3 + clen bytes) that started at stream offset offset. It decrypts in
// place: data aliases frame. On failure it returns ErrFrameAuth (TC-47) and
// the frame's ciphertext bytes are unspecified (the AEAD may have cleared
// them); no plaintext is ever returned from a frame that failed.
func (o *Opener) Open(frame []byte, offset uint64) (h FrameHeader, data []byte, err error) {
	return o.OpenTo(nil, frame, offset)
}

// PlaintextLen is the length of a whole frame's plaintext (flags, the
// urgent field if any, and the data): what OpenTo writes to dst.
func PlaintextLen(frame []byte) int { return len(frame) - HeaderLen - TagLen }

// OpenTo is Open with the plaintext written to dst (the flags byte, the
// urgent field with URGp, then the data) rather than over the frame, so
// that the data need not be copied again: it lands at dst[h.DataStart() -
// HeaderLen:]. dst must not overlap frame. With a dst shorter than
// PlaintextLen(frame) (nil, say), it decrypts in place as Open does. On
// failure dst's first PlaintextLen(frame) bytes are unspecified.
func (o *Opener) OpenTo(dst, frame []byte, offset uint64) (h FrameHeader, data []byte, err error) {
	n, ok := FrameLen(frame)
	if !ok || n != len(frame) {
		return FrameHeader{}, nil, ErrFrameBuffer
	}
	if n-HeaderLen < MinClen {
		return FrameHeader{}, nil, ErrFrameMalformed
	}
	ct := frame[HeaderLen:]
	out := ct[:0]
	if ptLen := PlaintextLen(frame); len(dst) >= ptLen {
		out = dst[:0:ptLen] // the AEAD appends exactly ptLen bytes: no allocation
	}
	pt, err := o.aead.Open(out, o.setNonce(offset), ct, frame[:HeaderLen])
	if err != nil {
		return FrameHeader{}, nil, ErrFrameAuth
	}
	// Only bit 0 of control and bits 0-1 of flags mean anything (TC-67, TC-68).
	h.Rekey = frame[0]&controlRekey != 0
	h.FIN = pt[0]&flagFIN != 0
	h.URG = pt[0]&flagURG != 0
	if !h.URG {
		return h, pt[1:], nil
	}
	if len(pt) < 3 {
		return FrameHeader{}, nil, ErrFrameMalformed
	}
	h.Urgent = binary.BigEndian.Uint16(pt[1:3])
	return h, pt[3:], nil
}
