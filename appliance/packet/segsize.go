package packet

// SetSegSize records that the frame is a TCP super-segment its port
// coalesced (GRO) from segments of n payload bytes each, the last one
// possibly shorter: the size its sender chose. The next Decode forgets it.
func (p *Packet) SetSegSize(n int) { p.segSize = uint16(min(max(n, 0), 0xffff)) }

// SegSize returns the segment size SetSegSize recorded, 0 if none.
func (p *Packet) SegSize() int { return int(p.segSize) }
