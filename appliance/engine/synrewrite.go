package engine

import (
	"github.com/tcpinc/tcpinc/appliance/eno"
	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

// The SYN and SYN-ACK segments the engine rewrites: the ENO option added to
// a host's (or left out), room for it, and the data and MSS of a far
// side's SYN or SYN-ACK on their way to the inside host.

// optionsWithout copies a TCP options area up to its end into dst, leaving
// out the ENO options (kind 69) and, when squeeze is set, NOPs. With
// forENO, for a segment that gets our SYN-form option, it leaves out
// non-empty Fast Open options too (a cookie the inside host grants in its
// SYN-ACK): a SYN+ENO segment must not carry one (RFC 8547 §4.7).
func optionsWithout(dst, area []byte, squeeze, forENO bool) int {
	n := 0
	for i := 0; i < len(area); {
		k := area[i]
		if k == packet.OptEOL {
			break
		}
		if k == packet.OptNOP {
			if !squeeze {
				dst[n] = k
				n++
			}
			i++
			continue
		}
		if i+1 >= len(area) || area[i+1] < 2 || i+int(area[i+1]) > len(area) {
			break // ScanOptions already vetted the area; be safe anyway
		}
		l := int(area[i+1])
		if k != eno.Kind && !(forENO && fastOpenCookie(area[i:i+l])) {
			n += copy(dst[n:], area[i:i+l])
		}
		i += l
	}
	return n
}

// fastOpenCookie reports whether option o is a non-empty TCP Fast Open
// option: kind 34 with a cookie, or kind 254 with ExID 0xF989 and a cookie
// (RFC 7413 §4.1.1), as eno.ScanOptions counts them.
func fastOpenCookie(o []byte) bool {
	return o[0] == 34 && len(o) > 2 || o[0] == 254 && len(o) > 4 && o[2] == 0xf9 && o[3] == 0x89
}

// rewriteOptions sends p to port with the given ENO option added to its
// options (after the host's own), squeezing NOPs out if needed
// (docs/protocol.md §5).
func (e *Engine) rewriteOptions(p *packet.Packet, opt []byte, to TxSink) bool {
	var area [2 * packet.MaxOptionsLen]byte
	n := optionsWithout(area[:], p.OptionBytes(), false, true)
	if n+len(opt) > packet.MaxOptionsLen {
		n = optionsWithout(area[:], p.OptionBytes(), true, true)
	}
	if n+len(opt) > packet.MaxOptionsLen {
		return false
	}
	n += copy(area[n:], opt)
	buf := to.Buffer()
	if buf == nil {
		e.c.Drops[DropTxFull].Add(1)
		return true
	}
	m, err := p.ReplaceOptions(buf, area[:n])
	if err != nil {
		e.c.Drops[DropTxFull].Add(1)
		return true
	}
	if len(p.Payload()) > 0 {
		// A SYN-ACK with the host's data (Fast Open): tcpcrypt defines
		// no SYN data, the far side would discard it (RFC 8547 §4.7),
		// and it is plaintext. Leave it out: unacknowledged, the host
		// sends it again after the handshake, framed like any data.
		if p.ResizePayload(0) != nil || !p.FixL4Checksum() {
			e.c.Drops[DropMalformed].Add(1)
			return true
		}
		m = len(p.Frame())
	}
	to.Commit(m)
	return true
}

// room is the option space left for ENO in p's options, NOPs squeezed out.
func room(p *packet.Packet) int {
	var area [2 * packet.MaxOptionsLen]byte
	return packet.MaxOptionsLen - optionsWithout(area[:], p.OptionBytes(), true, true)
}

// synWithoutData sends the far side's SYN or SYN-ACK p, which carries an
// ENO option, to the inside host without its data, clamping the MSS for f
// unless f is nil. RFC 8547 §4.7: a host that implements ENO discards the
// data of a SYN+ENO segment when ENO fails, when its SYN TEP is not the
// negotiated TEP or the negotiated TEP defines no SYN data (tcpcrypt
// defines none), and with a Fast Open cookie; it acknowledges only the ISN
// and takes data only from non-SYN segments. The inside host, which knows
// nothing of ENO, would take it: so it never sees it, and acknowledges
// only the ISN.
func (e *Engine) synWithoutData(f *flow, p *packet.Packet, to TxSink) Verdict {
	buf := to.Buffer()
	if buf == nil {
		return e.drop(DropTxFull)
	}
	if _, err := p.ReplaceOptions(buf, p.OptionBytes()); err != nil {
		return e.drop(DropMalformed)
	}
	if f != nil {
		e.clamp(f, p) // p now decodes buf
	}
	if p.ResizePayload(0) != nil || !p.FixL4Checksum() {
		return e.drop(DropMalformed)
	}
	to.Commit(len(p.Frame()))
	return Forwarded
}

// synDataCheck is v, the verdict for the far side's SYN+ENO segment p, or,
// if v lets p pass with data, p sent on without it (synWithoutData).
func (e *Engine) synDataCheck(f *flow, v Verdict, p *packet.Packet, to TxSink) Verdict {
	if v == Passthrough && len(p.Payload()) > 0 {
		return e.synWithoutData(f, p, to)
	}
	return v
}

// clamp lowers the MSS in a SYN or SYN-ACK going to the inside host by the
// frame overhead, so that a full host segment plus 20 bytes fits the wire:
// below R's MSS, and below what the outside port carries (a far side that
// announces a jumbo MSS behind a 1500-byte link would otherwise have the
// host send segments that each become two frames).
func (e *Engine) clamp(f *flow, p *packet.Packet) {
	if m := f.capped(f.mssR, Outside); m > tcpcrypt.Overhead {
		p.ClampMSS(uint16(m - tcpcrypt.Overhead))
	}
}
