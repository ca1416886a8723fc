package backend

import (
	"errors"
	"strings"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/config"
	"github.com/tcpinc/tcpinc/xsk"
)

// TestChooseBackend: auto takes AF_XDP only where both drivers offer zero
// copy (and for more than one queue, which AF_PACKET does not run), a
// configured backend is taken as it is, and every choice says why.
func TestChooseBackend(t *testing.T) {
	defer func() { zeroCopyCapable = xsk.ZeroCopyCapable }()
	for _, c := range []struct {
		name    string
		backend string
		queues  int
		zc      [2]bool
		err     error
		want    string
		reason  string
	}{
		{"veth", "auto", 1, [2]bool{false, false}, nil, AFPacket, "no zero-copy"},
		{"one side zero-copy", "auto", 1, [2]bool{true, false}, nil, AFPacket, "other port's does not"},
		{"both zero-copy", "auto", 1, [2]bool{true, true}, nil, AFXDP, "offers zero-copy AF_XDP on both"},
		{"veth, two queues", "auto", 2, [2]bool{false, false}, nil, AFPacket, "2 sockets per port in a fanout group"},
		{"both zero-copy, two queues", "auto", 2, [2]bool{true, true}, nil, AFXDP, "offers zero-copy AF_XDP on both"},
		{"forced afpacket, four queues", "afpacket", 4, [2]bool{false, false}, nil, AFPacket, "4 sockets per port"},
		{"features unreadable", "auto", 1, [2]bool{true, true}, errors.New("EOPNOTSUPP"), AFPacket, "cannot read in0's XDP features"},
		{"forced afxdp", "afxdp", 1, [2]bool{false, false}, nil, AFXDP, "in the configuration"},
		{"forced afpacket", "afpacket", 1, [2]bool{true, true}, nil, AFPacket, "in the configuration"},
	} {
		zeroCopyCapable = func(idx int) (bool, error) { return c.zc[idx-1], c.err }
		cfg := config.Default()
		cfg.Inside, cfg.Outside, cfg.Backend, cfg.Queues = "in0", "out0", c.backend, c.queues
		got, reasons := chooseBackend(cfg, [2]int{1, 2})
		if got != c.want || !strings.Contains(reasons[0], c.reason) || reasons[1] == "" {
			t.Errorf("%s: %s %q; want %s, a reason with %q", c.name, got, reasons, c.want, c.reason)
		}
	}
}

func TestCounterMap(t *testing.T) {
	m := counterMap(struct {
		RxFrames, GSOSegments uint64
		Name                  string
		TxKicks               uint32
	}{1, 2, "x", 3})
	if len(m) != 3 || m["rx_frames"] != 1 || m["gso_segments"] != 2 || m["tx_kicks"] != 3 {
		t.Fatalf("%v", m)
	}
}
