package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/tcpinc/tcpinc/deploy/topology"
)

// flowView is the part of the admin API's flow document (GET /api/v1/flows,
// snake_case, api/openapi.yaml) the demo checks.
type flowView struct {
	ID             string `json:"id"`
	Inside         string `json:"inside"`
	Outside        string `json:"outside"`
	State          string `json:"state"`
	Encrypted      bool   `json:"encrypted"`
	FallbackReason string `json:"fallback_reason"`
	Role           string `json:"role"`
	TEP            string `json:"tep"`
	AEAD           string `json:"aead"`
	SessionID      string `json:"session_id"`
}

// apiFlows reads every flow from a gateway's admin API (curl inside the
// gateway namespace: the API listens on that namespace's loopback).
func (d *demo) apiFlows(gw topology.Node) ([]flowView, error) {
	ctx, cancel := context.WithTimeout(d.ctx, 15*time.Second)
	defer cancel()
	out, err := d.topo.RunContext(ctx, gw, "curl", "-sS", "--fail-with-body", "--max-time", "10",
		"http://"+adminAddr+"/api/v1/flows?limit=1000")
	if err != nil {
		return nil, err
	}
	var page struct {
		Flows []flowView `json:"flows"`
	}
	if err := json.Unmarshal([]byte(out), &page); err != nil {
		return nil, fmt.Errorf("GET /api/v1/flows in %s: %w\n%s", gw, err, out)
	}
	return page.Flows, nil
}

// showFlows prints `tcpincctl flows` of both gateways and returns their
// flows as the API reports them (nil for a gateway whose API does not answer).
func (d *demo) showFlows() (a, b []flowView) {
	views := map[topology.Node][]flowView{}
	for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
		fmt.Fprintf(d.out, "    $ ip netns exec %s tcpincctl --admin %s -v flows\n", d.topo.NS(gw), adminAddr)
		if d.engineMissing == "" {
			out, err := d.ctl(gw, "-v", "flows")
			if err != nil {
				d.expect("tcpincctl flows in "+string(gw), err)
			} else {
				d.block(out)
			}
		} else {
			d.say("(skipped: engine not available)")
		}
		v, err := d.apiFlows(gw)
		if err != nil {
			if d.engineMissing == "" {
				d.engineMissing = fmt.Sprintf("the admin API in %s does not answer: %v", gw, err)
			}
			continue
		}
		views[gw] = v
	}
	return views[topology.GwA], views[topology.GwB]
}

func find(views []flowView, inside, outside netip.AddrPort) (flowView, bool) {
	for _, v := range views {
		if v.Inside == inside.String() && v.Outside == outside.String() {
			return v, true
		}
	}
	return flowView{}, false
}

// compareSessions checks that the held connection is encrypted on both
// appliances with opposite roles and the same 33-byte session ID, and shows
// `tcpincctl session` for it at both ends.
func (d *demo) compareSessions(viewsA, viewsB []flowView, local netip.AddrPort, _ netip.Addr) {
	far := netip.AddrPortFrom(d.topo.Addr(topology.HostB).V4, echoPort)
	d.section("Session IDs of the held connection " + local.String() + " → " + far.String())
	// Each appliance is asked as its own host sees the connection: hA's
	// end at gwA (role A), hB's end at gwB (role B).
	for _, q := range []struct {
		gw       topology.Node
		src, dst netip.AddrPort
	}{{topology.GwA, local, far}, {topology.GwB, far, local}} {
		gw := q.gw
		fmt.Fprintf(d.out, "    $ ip netns exec %s tcpincctl --admin %s session %s %s\n", d.topo.NS(gw), adminAddr, q.src, q.dst)
		if d.engineMissing != "" {
			d.say("(skipped: engine not available)")
			continue
		}
		out, err := d.ctl(gw, "session", q.src.String(), q.dst.String())
		if err != nil {
			d.expect("tcpincctl session in "+string(gw), err)
			continue
		}
		d.block(out)
	}
	fa, okA := find(viewsA, local, far)
	fb, okB := find(viewsB, far, local)
	switch {
	case !okA || !okB:
		d.expect("both appliances report the held connection", fmt.Errorf("gwA: %v, gwB: %v (flows listed: %d, %d)", okA, okB, len(viewsA), len(viewsB)))
	case !fa.Encrypted || !fb.Encrypted:
		if d.engineMissing == "" && !fa.Encrypted {
			d.engineMissing = "the appliances forwarded the connection without encrypting it (" + fa.FallbackReason + ")"
		}
		d.expect("held connection encrypted at both ends", fmt.Errorf("gwA: encrypted=%v %s, gwB: encrypted=%v %s", fa.Encrypted, fa.FallbackReason, fb.Encrypted, fb.FallbackReason))
	default:
		d.say("gwA: role %s, %s, %s, session ID %s", fa.Role, fa.TEP, fa.AEAD, fa.SessionID)
		d.say("gwB: role %s, %s, %s, session ID %s", fb.Role, fb.TEP, fb.AEAD, fb.SessionID)
		var err error
		switch {
		case len(fa.SessionID) != 66:
			err = fmt.Errorf("gwA's session ID has %d hex digits, want 66 (33 bytes)", len(fa.SessionID))
		case fa.SessionID != fb.SessionID:
			err = fmt.Errorf("session IDs differ: someone is in the middle, or a bug")
		case fa.Role == fb.Role:
			err = fmt.Errorf("both appliances claim role %s", fa.Role)
		}
		d.expect("same session ID at both ends (33 bytes), opposite roles", err)
	}
}

// reportFlow checks what gwA says about a connection that may have closed
// already (it is then gone from the table after its close grace, which is
// not an error).
func (d *demo) reportFlow(views []flowView, inside, outside netip.AddrPort, wantEnc bool, name string) {
	v, ok := find(views, inside, outside)
	if !ok {
		d.say("%s: closed and no longer listed by gwA", name)
		return
	}
	if v.Encrypted != wantEnc {
		d.expect(fmt.Sprintf("gwA reports %s as encrypted=%v", name, wantEnc), fmt.Errorf("it says encrypted=%v %s", v.Encrypted, v.FallbackReason))
		return
	}
	d.expect(strings.TrimSpace(fmt.Sprintf("gwA reports %s as encrypted=%v %s", name, wantEnc, v.FallbackReason)), nil)
}

// statusPage loads the admin API's status page in headless Chromium inside
// gwA and checks that it shows the held connection's session ID. Skipped
// (with a note) when chromium is not installed.
func (d *demo) statusPage(viewsA []flowView, local netip.AddrPort) {
	far := netip.AddrPortFrom(d.topo.Addr(topology.HostB).V4, echoPort)
	fa, ok := find(viewsA, local, far)
	if !ok || !fa.Encrypted {
		return
	}
	bin := ""
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	d.section("Status page: http://" + adminAddr + "/ui/ in gwA, loaded in headless Chromium")
	if bin == "" {
		d.say("chromium is not installed: skipped (apt-get install chromium)")
		return
	}
	ctx, cancel := context.WithTimeout(d.ctx, 60*time.Second)
	defer cancel()
	out, err := d.topo.RunContext(ctx, topology.GwA, bin, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--disable-dev-shm-usage", "--user-data-dir="+filepath.Join(d.work, "chromium"),
		"--virtual-time-budget=3000", "--dump-dom", "http://"+adminAddr+"/ui/")
	if err != nil {
		d.expect("status page in Chromium", err)
		return
	}
	var missing []string
	for _, want := range []string{fa.SessionID, local.String(), `data-state="ok"`} {
		if !strings.Contains(out, want) {
			missing = append(missing, want)
		}
	}
	if len(missing) > 0 {
		d.expect("status page shows the flow and its session ID", fmt.Errorf("the page lacks %q", missing))
		return
	}
	d.expect("status page shows the flow and its session ID", nil)
}
