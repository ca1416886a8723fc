// Package pcapng reads packet captures, in pcapng (the format tshark and
// Wireshark write) or the classic pcap format, and writes pcapng. It knows
// just enough for tcpinc's tools and tests: section headers of either byte
// order, interface descriptions with their link type and timestamp
// resolution, enhanced and simple packet blocks; every other block is
// skipped. Frames are returned as Ethernet frames: raw IP (LINKTYPE_RAW)
// and Linux cooked captures (SLL, SLL2) get a synthetic Ethernet header.
//
// Formats: draft-ietf-opsawg-pcapng (pcapng), draft-ietf-opsawg-pcap
// (classic pcap), https://www.tcpdump.org/linktypes.html (link types).
package pcapng

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// Link types this package turns into Ethernet frames.
const (
	LinkEthernet = 1
	LinkRaw      = 101
	LinkSLL      = 113
	LinkSLL2     = 276
)

const (
	blockSHB       = 0x0A0D0D0A
	blockIDB       = 0x00000001
	blockSPB       = 0x00000003
	blockEPB       = 0x00000006
	byteOrderMagic = 0x1A2B3C4D
	maxBlock       = 64 << 20 // a block larger than this is not believed
)

// ErrFormat is wrapped by every error about the file's contents.
var ErrFormat = errors.New("pcapng: bad capture file")

// Packet is one captured frame.
type Packet struct {
	Time time.Time
	// Data is an Ethernet frame (see the package doc); it is valid until
	// the next call to Next.
	Data []byte
	// OrigLen is the frame's length on the wire; longer than the captured
	// bytes when the capture was truncated (snaplen).
	OrigLen int
}

type iface struct {
	link  uint16
	tsDiv uint64 // timestamp units per second
}

// Reader reads packets from a pcapng or pcap stream.
type Reader struct {
	r      *bufio.Reader
	bo     binary.ByteOrder
	ifaces []iface
	legacy bool // classic pcap
	lnano  bool
	llink  uint16
	bb     bytes.Buffer
	out    []byte
}

// NewReader reads the file header from r.
func NewReader(r io.Reader) (*Reader, error) {
	rd := &Reader{r: bufio.NewReaderSize(r, 1<<16)}
	head, err := rd.r.Peek(4)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	switch binary.LittleEndian.Uint32(head) {
	case blockSHB:
		return rd, nil // read by Next with the other blocks
	case 0xa1b2c3d4, 0xa1b23c4d:
		rd.bo = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		rd.bo = binary.BigEndian
	default:
		return nil, fmt.Errorf("%w: neither pcapng nor pcap (magic %x)", ErrFormat, head)
	}
	var h [24]byte
	if _, err := io.ReadFull(rd.r, h[:]); err != nil {
		return nil, fmt.Errorf("%w: pcap header: %v", ErrFormat, err)
	}
	magic := rd.bo.Uint32(h[0:])
	rd.legacy, rd.lnano = true, magic == 0xa1b23c4d
	rd.llink = uint16(rd.bo.Uint32(h[20:]))
	return rd, nil
}

// Next returns the next packet, or io.EOF at the end of the file.
func (rd *Reader) Next() (Packet, error) {
	if rd.legacy {
		return rd.nextLegacy()
	}
	for {
		var h [8]byte
		if _, err := io.ReadFull(rd.r, h[:]); err != nil {
			if err == io.EOF {
				return Packet{}, io.EOF
			}
			return Packet{}, fmt.Errorf("%w: block header: %v", ErrFormat, err)
		}
		typ := binary.LittleEndian.Uint32(h[0:])
		if typ == blockSHB {
			// The byte order is in the body: read the magic first.
			var m [4]byte
			if _, err := io.ReadFull(rd.r, m[:]); err != nil {
				return Packet{}, fmt.Errorf("%w: section header: %v", ErrFormat, err)
			}
			switch binary.LittleEndian.Uint32(m[:]) {
			case byteOrderMagic:
				rd.bo = binary.LittleEndian
			case 0x4D3C2B1A:
				rd.bo = binary.BigEndian
			default:
				return Packet{}, fmt.Errorf("%w: section byte-order magic %x", ErrFormat, m)
			}
			n := rd.bo.Uint32(h[4:])
			if n < 28 || n%4 != 0 || n > maxBlock {
				return Packet{}, fmt.Errorf("%w: section header length %d", ErrFormat, n)
			}
			if _, err := rd.r.Discard(int(n) - 12); err != nil {
				return Packet{}, fmt.Errorf("%w: section header: %v", ErrFormat, err)
			}
			rd.ifaces = rd.ifaces[:0] // interface ids are per section
			continue
		}
		if rd.bo == nil {
			return Packet{}, fmt.Errorf("%w: no section header", ErrFormat)
		}
		typ = rd.bo.Uint32(h[0:])
		n := rd.bo.Uint32(h[4:])
		if n < 12 || n%4 != 0 || n > maxBlock {
			return Packet{}, fmt.Errorf("%w: block length %d", ErrFormat, n)
		}
		body, err := rd.readN(int(n) - 8)
		if err != nil {
			return Packet{}, fmt.Errorf("%w: block body: %v", ErrFormat, err)
		}
		body = body[:len(body)-4] // trailing length
		switch typ {
		case blockIDB:
			if len(body) < 8 {
				return Packet{}, fmt.Errorf("%w: short interface block", ErrFormat)
			}
			rd.ifaces = append(rd.ifaces, iface{link: rd.bo.Uint16(body[0:]), tsDiv: rd.tsresol(body[8:])})
		case blockEPB:
			if len(body) < 20 {
				return Packet{}, fmt.Errorf("%w: short packet block", ErrFormat)
			}
			id := rd.bo.Uint32(body[0:])
			if int(id) >= len(rd.ifaces) {
				return Packet{}, fmt.Errorf("%w: packet of undescribed interface %d", ErrFormat, id)
			}
			ts := uint64(rd.bo.Uint32(body[4:]))<<32 | uint64(rd.bo.Uint32(body[8:]))
			capLen, orig := rd.bo.Uint32(body[12:]), rd.bo.Uint32(body[16:])
			if int(capLen) > len(body)-20 {
				return Packet{}, fmt.Errorf("%w: captured length %d past the block", ErrFormat, capLen)
			}
			ifc := rd.ifaces[id]
			return rd.packet(ifc.link, body[20:20+capLen], int(orig), ifc.time(ts))
		case blockSPB:
			if len(rd.ifaces) == 0 || len(body) < 4 {
				return Packet{}, fmt.Errorf("%w: simple packet block without interface", ErrFormat)
			}
			orig := int(rd.bo.Uint32(body[0:]))
			data := body[4:]
			if orig < len(data) {
				data = data[:orig]
			}
			return rd.packet(rd.ifaces[0].link, data, orig, time.Time{})
		}
	}
}

// readN reads n bytes into a buffer that grows with what arrives, not with
// what a length field claims: a short file cannot make it allocate a
// maxBlock buffer.
func (rd *Reader) readN(n int) ([]byte, error) {
	rd.bb.Reset()
	m, err := rd.bb.ReadFrom(io.LimitReader(rd.r, int64(n)))
	if err != nil {
		return nil, err
	}
	if int(m) < n {
		return nil, io.ErrUnexpectedEOF
	}
	return rd.bb.Bytes(), nil
}

// tsresol reads if_tsresol (option 9) from an interface block's options;
// the default is microseconds.
func (rd *Reader) tsresol(opts []byte) uint64 {
	for len(opts) >= 4 {
		code, l := rd.bo.Uint16(opts[0:]), int(rd.bo.Uint16(opts[2:]))
		if code == 0 || 4+l > len(opts) {
			break
		}
		if code == 9 && l >= 1 {
			v := opts[4]
			div := uint64(1)
			if v&0x80 != 0 {
				for i := 0; i < int(v&0x7f) && i < 63; i++ {
					div *= 2
				}
			} else {
				for i := 0; i < int(v) && i < 19; i++ {
					div *= 10
				}
			}
			return div
		}
		opts = opts[4+(l+3)&^3:]
	}
	return 1_000_000
}

func (i iface) time(ts uint64) time.Time {
	sec := ts / i.tsDiv
	frac := ts % i.tsDiv
	return time.Unix(int64(sec), int64(frac*1_000_000_000/i.tsDiv))
}

func (rd *Reader) nextLegacy() (Packet, error) {
	var h [16]byte
	if _, err := io.ReadFull(rd.r, h[:]); err != nil {
		if err == io.EOF {
			return Packet{}, io.EOF
		}
		return Packet{}, fmt.Errorf("%w: record header: %v", ErrFormat, err)
	}
	sec, sub := rd.bo.Uint32(h[0:]), rd.bo.Uint32(h[4:])
	capLen, orig := rd.bo.Uint32(h[8:]), rd.bo.Uint32(h[12:])
	if capLen > maxBlock {
		return Packet{}, fmt.Errorf("%w: record length %d", ErrFormat, capLen)
	}
	data, err := rd.readN(int(capLen))
	if err != nil {
		return Packet{}, fmt.Errorf("%w: record: %v", ErrFormat, err)
	}
	ns := int64(sub) * 1000
	if rd.lnano {
		ns = int64(sub)
	}
	return rd.packet(rd.llink, data, int(orig), time.Unix(int64(sec), ns))
}

// packet converts data of link type link to an Ethernet frame.
func (rd *Reader) packet(link uint16, data []byte, orig int, t time.Time) (Packet, error) {
	var etherType uint16
	var l3 []byte
	switch link {
	case LinkEthernet:
		return Packet{Time: t, Data: data, OrigLen: orig}, nil
	case LinkRaw:
		if len(data) == 0 {
			return Packet{Time: t, Data: data, OrigLen: orig}, nil
		}
		etherType, l3 = 0x0800, data
		if data[0]>>4 == 6 {
			etherType = 0x86DD
		}
	case LinkSLL:
		if len(data) < 16 {
			return Packet{}, fmt.Errorf("%w: short SLL header", ErrFormat)
		}
		etherType, l3 = binary.BigEndian.Uint16(data[14:]), data[16:]
	case LinkSLL2:
		if len(data) < 20 {
			return Packet{}, fmt.Errorf("%w: short SLL2 header", ErrFormat)
		}
		etherType, l3 = binary.BigEndian.Uint16(data[0:]), data[20:]
	default:
		return Packet{}, fmt.Errorf("%w: link type %d not supported (Ethernet, raw IP, Linux cooked)", ErrFormat, link)
	}
	rd.out = append(rd.out[:0], make([]byte, 12)...)
	rd.out = binary.BigEndian.AppendUint16(rd.out, etherType)
	rd.out = append(rd.out, l3...)
	return Packet{Time: t, Data: rd.out, OrigLen: orig - len(data) + len(rd.out)}, nil
}

// Writer writes a pcapng file with one Ethernet interface.
type Writer struct {
	w   io.Writer
	err error
}

// NewWriter writes the section header and the interface description.
func NewWriter(w io.Writer) (*Writer, error) {
	wr := &Writer{w: w}
	shb := make([]byte, 0, 28)
	shb = binary.LittleEndian.AppendUint32(shb, blockSHB)
	shb = binary.LittleEndian.AppendUint32(shb, 28)
	shb = binary.LittleEndian.AppendUint32(shb, byteOrderMagic)
	shb = binary.LittleEndian.AppendUint16(shb, 1)
	shb = binary.LittleEndian.AppendUint16(shb, 0)
	shb = binary.LittleEndian.AppendUint64(shb, ^uint64(0)) // section length unknown
	shb = binary.LittleEndian.AppendUint32(shb, 28)
	idb := make([]byte, 0, 20)
	idb = binary.LittleEndian.AppendUint32(idb, blockIDB)
	idb = binary.LittleEndian.AppendUint32(idb, 20)
	idb = binary.LittleEndian.AppendUint16(idb, LinkEthernet)
	idb = binary.LittleEndian.AppendUint16(idb, 0)
	idb = binary.LittleEndian.AppendUint32(idb, 0) // no snaplen
	idb = binary.LittleEndian.AppendUint32(idb, 20)
	if _, err := w.Write(append(shb, idb...)); err != nil {
		return nil, err
	}
	return wr, nil
}

// WritePacket writes one Ethernet frame captured at t (microseconds).
func (wr *Writer) WritePacket(t time.Time, frame []byte) error {
	if wr.err != nil {
		return wr.err
	}
	pad := (4 - len(frame)%4) % 4
	n := 32 + len(frame) + pad
	b := make([]byte, 0, n)
	b = binary.LittleEndian.AppendUint32(b, blockEPB)
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	b = binary.LittleEndian.AppendUint32(b, 0)
	us := uint64(t.UnixMicro())
	b = binary.LittleEndian.AppendUint32(b, uint32(us>>32))
	b = binary.LittleEndian.AppendUint32(b, uint32(us))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(frame)))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(frame)))
	b = append(b, frame...)
	b = append(b, make([]byte, pad)...)
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	_, wr.err = wr.w.Write(b)
	return wr.err
}
