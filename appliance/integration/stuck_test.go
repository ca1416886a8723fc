package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/tcpinc/tcpinc/deploy/netns"
	"github.com/tcpinc/tcpinc/deploy/topology"
)

// stuckReport says where a failed transfer stands: the brief (stuckBrief),
// then what the links and the appliances' ports dropped or still hold.
func (e *encEnv) stuckReport(src topology.Node) (brief, rest string) {
	var b strings.Builder
	for _, n := range []topology.Node{topology.GwA, topology.GwB} {
		fmt.Fprintf(&b, "%s port counters (non-zero):\n%s\n", n,
			e.runIn(n, "sh", "-c", "curl -sS --max-time 5 http://"+adminAddr+"/metrics | grep -E '^tcpinc_(drops_total|port_backend_events_total|ring_used_slots|path_frames_total|port_frames_total)' | grep -v ' 0$'"))
	}
	for _, n := range []topology.Node{topology.GwA, topology.Router, topology.GwB} {
		fmt.Fprintf(&b, "%s links:\n%s\n", n, e.runIn(n, "ip", "-s", "link"))
	}
	if e.link != nil {
		ns := netns.ExecArgs(e.link.NS, "ip", "-s", "link")
		out, _ := exec.Command(ns[0], ns[1:]...).CombinedOutput()
		fmt.Fprintf(&b, "impairment bump links:\n%s\n", out)
	}
	return e.stuckBrief(src), b.String()
}

// stuckBrief is what a reader of a stuck transfer needs first, a few
// lines long so that it can end the failure's output (CI shows its tail):
// each gateway's encrypted flows with their stream offsets (the admin
// API's flow detail), its non-zero drop and event counters, the hosts'
// TCP sockets (ss: rto, backoff, retransmissions, what was acknowledged)
// and timeout counters, and the impairment bump's counters.
func (e *encEnv) stuckBrief(src topology.Node) string {
	var b strings.Builder
	for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
		var page struct {
			Flows []flowDoc `json:"flows"`
		}
		if err := e.admin(gw, "/api/v1/flows?encrypted=true&limit=8", &page); err != nil {
			fmt.Fprintf(&b, "%s: %v\n", gw, err)
			continue
		}
		for _, f := range page.Flows {
			var doc map[string]any
			if err := e.admin(gw, "/api/v1/flows/"+f.ID, &doc); err != nil {
				fmt.Fprintf(&b, "%s flow %s: %v\n", gw, f.ID, err)
				continue
			}
			delete(doc, "transcript")
			j, _ := json.Marshal(doc)
			fmt.Fprintf(&b, "%s flow: %s\n", gw, j)
		}
		if c, err := e.counters(gw); err == nil {
			fmt.Fprintf(&b, "%s drops %v events %v\n", gw, nonZero(c.Drops), nonZero(c.Events))
		}
	}
	for _, h := range []topology.Node{src, topology.HostB} {
		ss := strings.ReplaceAll(strings.TrimSpace(e.runIn(h, "ss", "-tinoH")), "\n\t", " ")
		nstat := strings.Join(strings.Fields(e.runIn(h, "nstat", "-asz", "TcpRetransSegs", "TcpExtTCPTimeouts",
			"TcpExtTCPSpuriousRTOs", "TcpExtTCPLossUndo", "TcpExtTCPLostRetransmit", "TcpExtTCPDSACKRecv",
			"TcpExtPAWSEstab", "TcpExtTCPACKSkippedPAWS", "TcpExtTCPRcvQDrop", "TcpExtTCPOFODrop", "TcpExtTCPZeroWindowDrop", "TcpInErrs", "TcpInCsumErrors")), " ")
		fmt.Fprintf(&b, "%s sockets: %s\n%s nstat: %s\n", h, ss, h, nstat)
	}
	if p := e.bump; p != nil && p.Signal(syscall.SIGUSR1) == nil {
		time.Sleep(100 * time.Millisecond)
		out := p.Output()
		if i := strings.LastIndex(out, "counters now: "); i >= 0 {
			fmt.Fprintf(&b, "impairment bump %s\n", strings.TrimSpace(out[i:]))
		}
	}
	return b.String()
}

// runIn runs a short command in n and returns its output, or the error.
func (e *encEnv) runIn(n topology.Node, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := e.topo.Command(ctx, n, args...).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("%v: %v %s", args, err, out)
	}
	return string(out)
}

// portCounters is a gateway's non-zero drop, engine event and port backend
// counters (/metrics).
func (e *encEnv) portCounters(gw topology.Node) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := e.topo.Command(ctx, gw, "sh", "-c", "curl -sS --max-time 5 http://"+adminAddr+"/metrics | grep -E '^tcpinc_(drops_total|port_backend_events_total|engine_events_total)' | grep -v ' 0$'").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("%v: %s", err, out)
	}
	return string(out)
}

// nonZero keeps a counter map's non-zero entries (for logs).
func nonZero(m map[string]uint64) map[string]uint64 {
	r := map[string]uint64{}
	for k, v := range m {
		if v != 0 {
			r[k] = v
		}
	}
	return r
}
