package topology

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tcpinc/tcpinc/deploy/netns"
)

// The untrusted network's controls on rtr: loss and NAT.

const (
	lossTable = "tcpinc_loss"
	natTable  = "tcpinc_nat"
)

// SetLoss makes rtr drop pct percent (0..100, resolution 0.01) of the packets
// it forwards between side A and side B in direction dir, at random
// (nftables `numgen random`; this kernel has no netem). 0 removes the drop
// rules. VLAN sub-interfaces count as their side. Counters restart from zero.
func (t *Topology) SetLoss(pct float64, dir LossDir) error {
	if pct < 0 || pct > 100 {
		return fmt.Errorf("topology: loss %v%% out of range 0..100", pct)
	}
	var matches []string
	a, b := `{ "toA", "toA.100" }`, `{ "toB", "toB.100" }`
	switch dir {
	case LossBoth, "":
		matches = []string{"iifname " + a + " oifname " + b, "iifname " + b + " oifname " + a}
	case LossAtoB:
		matches = []string{"iifname " + a + " oifname " + b}
	case LossBtoA:
		matches = []string{"iifname " + b + " oifname " + a}
	default:
		return fmt.Errorf("topology: unknown loss direction %q (both, a2b, b2a)", dir)
	}
	// Threshold out of 10000 for 0.01 % resolution.
	thr := int(pct*100 + 0.5)
	var sb strings.Builder
	fmt.Fprintf(&sb, "table inet %s {}\ndelete table inet %s\ntable inet %s {\n", lossTable, lossTable, lossTable)
	sb.WriteString("  chain forward {\n    type filter hook forward priority -10; policy accept;\n")
	for _, m := range matches {
		switch {
		case thr >= 10000:
			fmt.Fprintf(&sb, "    %s counter drop\n", m)
		case thr > 0:
			fmt.Fprintf(&sb, "    %s numgen random mod 10000 < %d counter drop\n", m, thr)
		}
	}
	sb.WriteString("  }\n}\n")
	return netns.Nft(t.NS(Router), sb.String())
}

// LossDropped returns how many packets the current loss rules have dropped.
func (t *Topology) LossDropped() (uint64, error) { return t.RouterCounted(lossTable) }

// RouterCounted returns the packets counted by every counter of rtr's inet
// table (a test's own rules on the untrusted network).
func (t *Topology) RouterCounted(table string) (uint64, error) {
	out, err := t.Run(Router, "nft", "-j", "list", "table", "inet", table)
	if err != nil {
		return 0, err
	}
	return sumNftCounters([]byte(out))
}

// sumNftCounters adds up the packet counts of every counter in `nft -j` output.
func sumNftCounters(js []byte) (uint64, error) {
	var doc struct {
		Nftables []struct {
			Rule *struct {
				Expr []map[string]json.RawMessage `json:"expr"`
			} `json:"rule"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(js, &doc); err != nil {
		return 0, fmt.Errorf("parse nft json: %w", err)
	}
	var sum uint64
	for _, item := range doc.Nftables {
		if item.Rule == nil {
			continue
		}
		for _, ex := range item.Rule.Expr {
			raw, ok := ex["counter"]
			if !ok {
				continue
			}
			var c struct {
				Packets uint64 `json:"packets"`
			}
			if err := json.Unmarshal(raw, &c); err != nil {
				return 0, fmt.Errorf("parse nft counter: %w", err)
			}
			sum += c.Packets
		}
	}
	return sum, nil
}

// SetNAT turns masquerading of side A toward side B on rtr on or off: with it
// on, hB sees hA's connections (IPv4 and IPv6, VLAN included) coming from
// rtr's address on side B (RouterAddr(HostB)), with rewritten ports.
func (t *Topology) SetNAT(on bool) error {
	script := fmt.Sprintf("table inet %s {}\ndelete table inet %s\n", natTable, natTable)
	if on {
		script += fmt.Sprintf(`table inet %s {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    iifname { "toA", "toA.100" } oifname { "toB", "toB.100" } counter masquerade
  }
}
`, natTable)
	}
	if err := netns.Nft(t.NS(Router), script); err != nil {
		return err
	}
	t.mu.Lock()
	t.nat = on
	t.mu.Unlock()
	return nil
}

// NAT reports whether NAT is on.
func (t *Topology) NAT() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.nat
}
