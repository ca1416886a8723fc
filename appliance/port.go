package appliance

import "github.com/tcpinc/tcpinc/bump"

// The vocabulary the core shares with the port backends (package bump),
// under the names the core and its users have always used.
type (
	// Desc names one frame of a port's buffer memory.
	Desc = bump.Desc
	// PortID says which side of the bump a port is on.
	PortID = bump.PortID
	// Port is one queue of one port as a worker sees it (bump.Port).
	Port = bump.Port
	// FastPath is the kernel fast path's flow map (bump.FastPath).
	FastPath = bump.FastPath
)

// Inside and Outside are the two ports. Inside faces the enclave's hosts,
// outside the untrusted network.
const (
	Inside  = bump.Inside
	Outside = bump.Outside
)
