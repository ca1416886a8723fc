package packet

// Error is the type of every error returned by this package. It is a small
// integer so that returning one never allocates; compare with == or errors.Is.
type Error uint8

const (
	// ErrTruncated: the frame ends before a fixed-size header does.
	ErrTruncated Error = iota + 1
	// ErrTooManyTags: more than two VLAN tags (802.1Q/802.1ad) are stacked.
	ErrTooManyTags
	// ErrBadIPVersion: the IP version nibble does not match the EtherType.
	ErrBadIPVersion
	// ErrBadIHL: the IPv4 header length is below 20 bytes or beyond the frame.
	ErrBadIHL
	// ErrLengthMismatch: an IP length field claims more bytes than the frame
	// holds, or less than the header it describes.
	ErrLengthMismatch
	// ErrBadDataOffset: the TCP data offset is below 5 words or runs past
	// the end of the IP datagram.
	ErrBadDataOffset
	// ErrBadUDPLength: the UDP length field is below 8 or beyond the datagram.
	ErrBadUDPLength
	// ErrBadOption: a TCP option has a length byte below 2 or running past
	// the end of the options region.
	ErrBadOption
	// ErrNotTCP: a TCP-only operation was asked of a packet without a TCP header.
	ErrNotTCP
	// ErrFragment: the operation cannot be done on an IP fragment.
	ErrFragment
	// ErrOptionsTooLong: a new options block does not fit in 40 bytes.
	ErrOptionsTooLong
	// ErrNoRoom: the destination buffer is too small for the rewritten frame.
	ErrNoRoom
	// ErrTooBig: the rewritten datagram would exceed the 16-bit IP length field.
	ErrTooBig
	// ErrOutOfRange: a patch does not lie inside the TCP header.
	ErrOutOfRange
)

var errText = [...]string{
	ErrTruncated:      "packet: truncated header",
	ErrTooManyTags:    "packet: more than two VLAN tags",
	ErrBadIPVersion:   "packet: IP version does not match EtherType",
	ErrBadIHL:         "packet: bad IPv4 header length",
	ErrLengthMismatch: "packet: IP length does not match frame",
	ErrBadDataOffset:  "packet: bad TCP data offset",
	ErrBadUDPLength:   "packet: bad UDP length",
	ErrBadOption:      "packet: malformed TCP option",
	ErrNotTCP:         "packet: not a TCP segment",
	ErrFragment:       "packet: IP fragment",
	ErrOptionsTooLong: "packet: TCP options longer than 40 bytes",
	ErrNoRoom:         "packet: destination buffer too small",
	ErrTooBig:         "packet: datagram too big",
	ErrOutOfRange:     "packet: patch outside the TCP header",
}

func (e Error) Error() string {
	if int(e) < len(errText) && errText[e] != "" {
		return errText[e]
	}
	return "packet: unknown error"
}
