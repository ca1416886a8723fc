package backend

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/config"
	"github.com/tcpinc/tcpinc/deploy/netns"
	"github.com/tcpinc/tcpinc/deploy/netns/netnstest"
	"github.com/tcpinc/tcpinc/xsk"
)

// TestChooseBackend: auto takes AF_XDP only where both drivers offer zero
// copy (and for more than one queue, which AF_PACKET does not run), a
// configured backend is taken as it is, and every choice says why.
func TestChooseBackend(t *testing.T) {
	defer func() { zeroCopyCapable, rxQueues = xsk.ZeroCopyCapable, rxQueuesOf }()
	for _, c := range []struct {
		name    string
		backend string
		queues  int
		zc      [2]bool
		err     error
		want    string
		reason  string
		rx      int // the ports' receive queues (0: as many as queues)
	}{
		{"veth", "auto", 1, [2]bool{false, false}, nil, AFPacket, "no zero-copy", 0},
		{"one side zero-copy", "auto", 1, [2]bool{true, false}, nil, AFPacket, "other port's does not", 0},
		{"both zero-copy", "auto", 1, [2]bool{true, true}, nil, AFXDP, "offers zero-copy AF_XDP on both", 0},
		{"veth, two queues", "auto", 2, [2]bool{false, false}, nil, AFPacket, "2 sockets per port in a fanout group", 0},
		{"both zero-copy, two queues", "auto", 2, [2]bool{true, true}, nil, AFXDP, "offers zero-copy AF_XDP on both", 0},
		{"forced afpacket, four queues", "afpacket", 4, [2]bool{false, false}, nil, AFPacket, "4 sockets per port", 0},
		{"features unreadable", "auto", 1, [2]bool{true, true}, errors.New("EOPNOTSUPP"), AFPacket, "cannot read in0's XDP features", 0},
		{"forced afxdp", "afxdp", 1, [2]bool{false, false}, nil, AFXDP, "in the configuration", 0},
		{"forced afpacket", "afpacket", 1, [2]bool{true, true}, nil, AFPacket, "in the configuration", 0},
		// More receive queues than queues: AF_XDP would drop what the
		// others get; AF_PACKET reads them all.
		{"zero-copy, 8 receive queues", "auto", 1, [2]bool{true, true}, nil, AFPacket, "but in0 has 8 receive queues and queues: is 1", 8},
		{"zero-copy, 8 receive queues, 8 queues", "auto", 8, [2]bool{true, true}, nil, AFXDP, "offers zero-copy AF_XDP on both", 8},
		{"forced afpacket, 8 receive queues", "afpacket", 2, [2]bool{false, false}, nil, AFPacket, "in the configuration", 8},
		{"forced afxdp, 4 receive queues", "afxdp", 2, [2]bool{true, true}, nil, "", "in0 has 4 receive queues and queues: is 2", 4},
	} {
		zeroCopyCapable = func(idx int) (bool, error) { return c.zc[idx-1], c.err }
		rxQueues = func(int) (int, error) { return max(c.rx, c.queues), nil }
		cfg := config.Default()
		cfg.Inside, cfg.Outside, cfg.Backend, cfg.Queues = "in0", "out0", c.backend, c.queues
		got, reasons, err := chooseBackend(cfg, [2]int{1, 2})
		if c.want == "" {
			if err == nil || !strings.Contains(err.Error(), c.reason) || !strings.Contains(err.Error(), "ethtool -L in0 combined 2") {
				t.Errorf("%s: %s, %v; want an error with %q", c.name, got, err, c.reason)
			}
			continue
		}
		if err != nil || got != c.want || !strings.Contains(reasons[0], c.reason) || reasons[1] == "" {
			t.Errorf("%s: %s %q %v; want %s, a reason with %q", c.name, got, reasons, err, c.want, c.reason)
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

// TestRxQueuesOf reads a veth's receive queues as the kernel uses them.
func TestRxQueuesOf(t *testing.T) {
	netnstest.RequireRoot(t, "network namespaces")
	const pfx = "bkrq-"
	ns := pfx + "a"
	netnstest.New(t, pfx, ns)
	netnstest.Sh(t, "ip", "-n", ns, "link", "add", "q3", "numtxqueues", "3", "numrxqueues", "3", "type", "veth", "peer", "name", "q1", "numtxqueues", "1", "numrxqueues", "1")
	for name, want := range map[string]int{"q3": 3, "q1": 1} {
		var got int
		err := netns.Do(ns, func() error {
			ifi, err := net.InterfaceByName(name)
			if err != nil {
				return err
			}
			got, err = rxQueuesOf(ifi.Index)
			return err
		})
		if err != nil || got != want {
			t.Errorf("%s: %d receive queues (%v), want %d", name, got, err, want)
		}
	}
}
