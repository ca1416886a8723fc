package afxdp

import (
	"fmt"
	"net"

	"github.com/tcpinc/tcpinc/appliance/config"
	"github.com/tcpinc/tcpinc/bump"
	"github.com/tcpinc/tcpinc/xsk"
)

// SegmentMTU is the largest IP packet the appliance may send or expect on
// a port of cfg whose interface has MTU mtu: that MTU, and no more than a
// TX frame holds after an Ethernet header and one VLAN tag. No segment the
// engine builds toward the port is larger (engine.Deps.MTU), and the
// outside port's bounds the MSS inside hosts are told.
func SegmentMTU(cfg config.Config, mtu int) int {
	return min(cfg.FrameSize-xsk.Headroom-14-4, mtu)
}

// MaxLinkFrame is the longest frame, other than a TCP super-segment, that
// either of cfg's ports carries: the larger interface MTU behind an
// Ethernet header and two VLAN tags (a double-tagged frame fills the MTU
// once the ports' MTU was raised for its second tag, docs/architecture.md
// §1). An AF_PACKET socket hands over frames that long (appliance.Options
// MaxFrame); an AF_XDP socket none longer than a UMEM frame.
func MaxLinkFrame(cfg config.Config) (int, error) {
	n := 0
	for i, name := range []string{cfg.Inside, cfg.Outside} {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return 0, fmt.Errorf("%s interface %q: %w", bump.PortID(i), name, ErrNoInterface)
		}
		n = max(n, ifi.MTU+14+8)
	}
	return n, nil
}
