package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tcpinc/tcpinc/appliance/admin"
)

// shortSessionID is how many hex digits of a session ID the flows screen
// shows without -v: the TEP byte and 7 bytes of the CPRF output, enough to
// tell sessions apart and to compare with the other side at a glance.
const shortSessionID = 16

func writeStatus(w io.Writer, s *admin.StatusDoc) {
	for _, m := range s.Warnings {
		fmt.Fprintf(w, "WARNING: %s\n", m)
	}
	fmt.Fprintf(w, "tcpincd %s, up %s (since %s)\n", s.Version, age(s.UptimeSeconds), s.Started.UTC().Format("2006-01-02 15:04:05 MST"))
	fmt.Fprintf(w, "fast path: %s, workers: %d\n", onOff(s.FastPath), s.Workers)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "port\tinterface\tbackend\txdp\tbind\tqueues\tcpus\tpath\tmtu")
	for _, p := range s.Ports {
		cpus := "-"
		if len(p.CPUs) > 0 {
			cpus = joinInts(p.CPUs)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", p.Name, p.Interface, orNone(p.Backend), p.XDPMode, orNone(p.BindMode), p.Queues, cpus, orNone(p.Path), portMTU(p))
	}
	tw.Flush()
	for _, p := range s.Ports {
		if p.BackendReason != "" {
			fmt.Fprintf(w, "%s backend: %s\n", p.Name, p.BackendReason)
		}
		if p.PathReason != "" {
			fmt.Fprintf(w, "%s path: %s\n", p.Name, p.PathReason)
		}
	}
	fmt.Fprintf(w, "aead preference: %s (%s)\n", orNone(strings.Join(s.AEADPreference, ", ")), aeadOrigin(s))
	fmt.Fprintf(w, "policy: %s (%d prefix %s), teps: %s, aeads: %s, resumption: %s\n",
		s.Config.DefaultPolicy, s.Config.Policies, plural(s.Config.Policies, "rule", "rules"),
		strings.Join(s.Config.TEPs, ", "), strings.Join(s.Config.AEADs, ", "), onOff(s.Config.Resumption))
	fmt.Fprintf(w, "flows: %d (%d encrypted)", s.Flows.Total, s.Flows.Encrypted)
	if s.Flows.FastPath != nil {
		// Plain connections the engines forgot while they last are among them.
		fmt.Fprintf(w, "; on the kernel fast path: %d", *s.Flows.FastPath)
	}
	fmt.Fprintln(w)

	c := &s.Counters
	fmt.Fprintln(w, "traffic:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, p := range c.Ports {
		fmt.Fprintf(tw, "  %s %s\t%d frames\t%s\n", p.Port, p.Direction, p.Frames, size(p.Bytes))
	}
	for _, name := range slices.Sorted(maps.Keys(c.Paths)) {
		p := c.Paths[name]
		b := "bytes not counted" // the fast path's XDP program counts frames only
		if p.Bytes != nil {
			b = size(*p.Bytes)
		}
		fmt.Fprintf(tw, "  path %s\t%d frames\t%s\n", name, p.Frames, b)
	}
	tw.Flush()
	fmt.Fprintf(w, "handshakes: %s\n", counts(c.Handshakes))
	fmt.Fprintf(w, "fallbacks: %s\n", counts(c.Fallbacks))
	fmt.Fprintf(w, "drops: %s\n", counts(c.Drops))
	fmt.Fprintf(w, "flows by state: %s\n", counts(c.FlowsByState))
	fmt.Fprintf(w, "auth failures: %d, rekeys: %d, resumptions: %d, init retransmissions: %d, dup acks sent: %d\n",
		c.AuthFailures, c.Rekeys, c.Resumptions, c.InitRetransmit, c.DupACKs)
	fmt.Fprintf(w, "frames sealed: %d, opened: %d, resumption cache: %d %s\n",
		c.FramesSealed, c.FramesOpened, c.CacheEntries, plural(int(c.CacheEntries), "far side", "far sides"))
	fmt.Fprintf(w, "negotiated set: %d %s (overflows %d, store errors %d), stray resets: %d\n",
		c.NegEntries, plural(int(c.NegEntries), "tuple", "tuples"), c.NegOverflows, c.NegStoreErrors, c.StrayResets)
	if len(c.Workers) > 0 {
		var parts []string
		for _, wk := range c.Workers {
			parts = append(parts, fmt.Sprintf("%d %.1f%% busy", wk.Worker, 100*wk.BusyRatio))
		}
		fmt.Fprintf(w, "workers: %s\n", strings.Join(parts, ", "))
	}
}

// writeFlows is the flows screen, after `wg show`: one block per flow that
// answers at a glance whether it is encrypted, and if not why.
func writeFlows(w io.Writer, flows []admin.FlowDoc, verbose bool) {
	if len(flows) == 0 {
		fmt.Fprintln(w, "no flows")
		return
	}
	enc := 0
	for _, f := range flows {
		if f.Encrypted {
			enc++
		}
	}
	fmt.Fprintf(w, "%d %s, %d encrypted, %d not\n", len(flows), plural(len(flows), "flow", "flows"), enc, len(flows)-enc)
	for i := range flows {
		fmt.Fprintln(w)
		writeFlowLines(w, &flows[i], verbose)
	}
}

// writeFlow is one flow's detail: the flows screen's lines, then, for an
// encrypted flow, where each direction stands.
func writeFlow(w io.Writer, f *admin.FlowDoc) {
	writeFlowLines(w, f, true)
	s := f.Stream
	if s == nil {
		return
	}
	o, in := &s.Out, &s.In
	fmt.Fprintf(w, "  inside -> far side (stream offsets, bytes):\n")
	fmt.Fprintf(w, "    host: %d taken in, %d acknowledged by the far side\n", o.HostNext, o.HostAcked)
	fmt.Fprintf(w, "    wire: %d framed, %d sent, %d acknowledged; %d frames kept; far side's window %d\n",
		o.WireNext, o.WireSent, o.WireAcked, o.Frames, o.WindowR)
	fmt.Fprintf(w, "  far side -> inside (stream offsets, bytes):\n")
	fmt.Fprintf(w, "    wire: %d in order", in.WireNext)
	if in.WireHeldSpans > 0 {
		fmt.Fprintf(w, ", %d out-of-order %s held up to %d", in.WireHeldSpans, plural(in.WireHeldSpans, "range", "ranges"), in.WireHeldEnd)
	}
	fmt.Fprintf(w, ", %d acknowledged to the far side\n", in.WireAckSent)
	fmt.Fprintf(w, "    host: %d opened, %d sent, %d acknowledged by the host; host's window %d\n",
		in.HostOpened, in.HostSent, in.HostAcked, in.WindowL)
	if in.HostSent < in.HostOpened {
		fmt.Fprintf(w, "    %d bytes opened wait for the host's window\n", in.HostOpened-in.HostSent)
	}
}

func writeFlowLines(w io.Writer, f *admin.FlowDoc, verbose bool) {
	fmt.Fprintf(w, "flow %s: %s -> %s\n", f.ID, f.Inside, f.Outside)
	fmt.Fprintf(w, "  state: %s\n", f.State)
	switch {
	case f.Encrypted:
		how := "fresh"
		if f.Resumed {
			how = "resumed"
		}
		fmt.Fprintf(w, "  encrypted: tcpcrypt %s + %s, role %s, %s\n", f.TEP, f.AEAD, f.Role, how)
		sid := f.SessionID
		if !verbose && len(sid) > shortSessionID {
			sid = sid[:shortSessionID] + "…"
		}
		fmt.Fprintf(w, "  session id: %s (key generation %d)\n", sid, f.KeyGeneration)
	case f.FallbackReason != "":
		fmt.Fprintf(w, "  NOT encrypted: %s\n", f.FallbackReason)
	default:
		fmt.Fprintf(w, "  not encrypted yet: negotiating\n")
	}
	if f.Encrypted {
		fmt.Fprintf(w, "  transfer: %s received, %s sent (%d/%d packets)\n", size(f.BytesIn), size(f.BytesOut), f.PacketsIn, f.PacketsOut)
	} else {
		// The engine counts the plaintext it opens and seals
		// (admin.FlowInfo.BytesIn): a flow without keys has none to
		// count, whatever it carried, so its bytes are not a 0 B.
		fmt.Fprintf(w, "  transfer: %d/%d packets (bytes are counted for encrypted flows only)\n", f.PacketsIn, f.PacketsOut)
	}
	fmt.Fprintf(w, "  age: %s\n", age(f.AgeSeconds))
}

func writeSession(w io.Writer, s *admin.SessionDoc) {
	how := "fresh"
	if s.Resumed {
		how = "resumed"
	}
	fmt.Fprintf(w, "session %s -> %s (flow %s)\n", s.Src, s.Dst, s.FlowID)
	fmt.Fprintf(w, "  session id: %s\n", s.SessionID)
	fmt.Fprintf(w, "  role: %s, negtep: %s (%s, %s), aead: %s, key generation: %d\n", s.Role, s.NegTEP, s.TEP, how, s.AEAD, s.KeyGeneration)
	fmt.Fprintf(w, "  self name: %s\n", s.SelfName)
	fmt.Fprintf(w, "  peer name: %s\n", s.PeerName)
	fmt.Fprintf(w, "  global suboptions: self 0x%02x, peer 0x%02x%s\n", s.SelfGOpt, s.PeerGOpt, appAware(s.PeerGOpt))
	fmt.Fprintf(w, "  transcript: %s\n", s.Transcript)
}

func writeApplied(w io.Writer, c *admin.Config) {
	fmt.Fprintln(w, "config applied")
	fmt.Fprintf(w, "  default policy: %s\n", c.DefaultPolicy)
	for _, p := range c.Policies {
		fmt.Fprintf(w, "  %s: %s\n", p.Prefix, p.Policy)
	}
	fmt.Fprintf(w, "  teps: %s\n", strings.Join(c.TEPs, ", "))
	fmt.Fprintf(w, "  aeads: %s\n", strings.Join(c.AEADs, ", "))
	var rekey []string
	if c.RekeyBytes != 0 {
		rekey = append(rekey, size(c.RekeyBytes))
	}
	if c.RekeyInterval != 0 {
		rekey = append(rekey, time.Duration(c.RekeyInterval).String())
	}
	if len(rekey) == 0 {
		fmt.Fprintln(w, "  rekey: off")
	} else {
		fmt.Fprintf(w, "  rekey: after %s under one key\n", strings.Join(rekey, " or "))
	}
	fmt.Fprintf(w, "  resumption: %s (nonce %d bytes)\n", onOff(c.Resumption), c.ResumeNonceLen)
	fmt.Fprintf(w, "  caps: %d flows, retransmit %s, reassembly %s, pre-key queue %s, re-delivery %s\n",
		c.Caps.Flows, size(c.Caps.RetransmitBytes), size(c.Caps.ReassemblyBytes), size(c.Caps.PrekeyQueueBytes), size(c.Caps.DeliverBytes))
}

// size formats a byte count as wg does: B, KiB, MiB, GiB, TiB with two
// decimals above 1 KiB.
func size(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + " B"
	}
	units := [...]string{"KiB", "MiB", "GiB", "TiB"}
	v, i := float64(n)/unit, 0
	for v >= unit && i < len(units)-1 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.2f %s", v, units[i])
}

// age formats seconds as a Go duration rounded to the second.
func age(sec float64) string {
	return (time.Duration(sec * float64(time.Second))).Round(time.Second).String()
}

// counts formats a label->count map sorted by label.
func counts(m map[string]uint64) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

// aeadOrigin says where the status's AEAD order came from.
func aeadOrigin(s *admin.StatusDoc) string {
	switch s.AEADPreferenceFrom {
	case "config":
		return "from engine.aeads in the config file"
	case "api":
		return "set by PUT /api/v1/config"
	}
	return "by this CPU's features: " + orNone(strings.Join(s.CPUFeatures, " "))
}

// appAware names the peer's application-aware bit (RFC 8547 §4.2) when set.
func appAware(g int) string {
	if g&2 != 0 {
		return " (peer application-aware)"
	}
	return ""
}

// portMTU is a port's MTU, and the engines' segment cap when it is lower
// (a TX frame holds less): "9000 (segments 3822)".
func portMTU(p admin.PortDoc) string {
	switch {
	case p.MTU == 0:
		return "-"
	case p.SegmentMTU > 0 && p.SegmentMTU < p.MTU:
		return fmt.Sprintf("%d (segments %d)", p.MTU, p.SegmentMTU)
	}
	return fmt.Sprint(p.MTU)
}
