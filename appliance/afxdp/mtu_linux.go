package afxdp

import (
	"fmt"
	"net"

	"github.com/tcpinc/tcpinc/appliance/config"
	"github.com/tcpinc/tcpinc/bump"
	"github.com/tcpinc/tcpinc/xsk"
)

// PortMTU is the largest IP packet the appliance may send or expect on
// cfg's ports: the smaller of the two interfaces' MTUs, and no more than a TX
// frame holds after an Ethernet header and one VLAN tag. No segment the
// engine builds is larger (engine.Deps.MTU).
func PortMTU(cfg config.Config) (int, error) {
	mtu := cfg.FrameSize - xsk.Headroom - 14 - 4
	for i, name := range []string{cfg.Inside, cfg.Outside} {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return 0, fmt.Errorf("%s interface %q: %w", bump.PortID(i), name, ErrNoInterface)
		}
		mtu = min(mtu, ifi.MTU)
	}
	return mtu, nil
}
