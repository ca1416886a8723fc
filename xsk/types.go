package xsk

import (
	"github.com/tcpinc/tcpinc/bump"
	"github.com/tcpinc/tcpinc/flow"
)

// The types xsk shares with the appliance's core are defined in portable
// packages, so the core and the in-memory port build on every system; these
// are their names here.
type (
	// Desc names one frame in a socket's UMEM: Addr is the offset of the
	// first byte of packet data, Len the number of bytes. A Desc is a plain
	// value; the frame it names is owned by exactly one party at a time (see
	// the package documentation and each method).
	Desc = bump.Desc
	// PortID names one of the bump's two ports.
	PortID = bump.PortID
	// FlowKey is one direction of a TCP flow as seen on the wire: the key
	// of the fast-path map, filled by the classifier from the headers
	// (ports converted to host byte order). The appliance inserts both
	// directions of a flow.
	FlowKey = flow.Key
)

// The bump's two ports.
const (
	Inside  = bump.Inside
	Outside = bump.Outside
)
