package integration

import (
	"fmt"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/topology"
)

var badLog = regexp.MustCompile(`(?i)panic|recovered|fatal error|goroutine \d+ \[`)

// scanLog fails the test on a tcpincd log line that tells of a panic.
func (c *chaos) scanLog(gw topology.Node, out string) {
	for _, l := range strings.Split(out, "\n") {
		l2 := strings.ReplaceAll(l, "panics=0", "")
		if badLog.MatchString(l2) {
			c.t.Errorf("tcpincd in %s: %s", gw, l)
		}
	}
}

// checkDaemons: both daemons still run, and neither logged a panic.
func (c *chaos) checkDaemons(i int) {
	for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
		c.mapMu.Lock()
		p := c.e.gw[gw]
		c.mapMu.Unlock()
		if p == nil {
			c.t.Errorf("round %d: no tcpincd in %s", i, gw)
			continue
		}
		if done, err := p.Exited(); done {
			c.t.Errorf("round %d: tcpincd in %s exited (%v):\n%s", i, gw, err, tailLines(p.Output(), 20))
		}
		c.scanLog(gw, p.Output())
		var errs []string
		for _, l := range strings.Split(p.Output(), "\n") {
			if strings.Contains(l, "level=ERROR") || strings.Contains(l, "level=WARN") {
				errs = append(errs, l)
			}
		}
		if len(errs) > 0 {
			c.logf("round %d: tcpincd in %s warned or logged errors (%d lines, the last 5):\n%s", i, gw, len(errs), strings.Join(errs[max(0, len(errs)-5):], "\n"))
		}
	}
}

// checkConns checks every connection of the round at both ends.
func (c *chaos) checkConns(i int) {
	time.Sleep(3 * time.Second) // the servers' lines
	type tally struct{ ok, allowed, bad int }
	tallies := map[string]*tally{}
	for _, k := range c.conns {
		cls := fmt.Sprintf("%s %s->%s", k.kind, k.src, map[bool]string{true: "hB/hA (encrypted)", false: "hF (plain)"}[k.enc])
		if tallies[cls] == nil {
			tallies[cls] = &tally{}
		}
		srvLine, srvOK := c.serverResult(k)
		if k.cliOK && srvOK {
			tallies[cls].ok++
			continue
		}
		if t, ok := c.serverFailed(srvLine); ok && t.After(k.end) {
			// The connection outlived the client's process in the
			// hosts' kernels (bytes it wrote, its FIN, still to cross),
			// until the server's end of it failed: a restart meanwhile
			// reset a connection in flight.
			k.end = t
		}
		both := k.cliErr + " | " + srvLine
		desc := fmt.Sprintf("%s %s -> %v (local %s, seed %d, %s to %s): client: %s\n  server: %s\n  events meanwhile: %s",
			k.kind, k.src, k.dst, k.local, k.seed, c.at(k.start), c.at(k.end), k.cliErr, srvLine, c.eventsDuring(k))
		if strings.Contains(both, "CORRUPT") {
			tallies[cls].bad++
			c.t.Errorf("round %d: an application read bytes that were never sent: %s", i, desc)
			continue
		}
		if rs := c.restartsDuring(k); k.enc && len(rs) > 0 {
			tallies[cls].allowed++
			c.logf("round %d: allowed (a restart resets encrypted connections in flight, docs/architecture.md §3): %s", i, desc)
			continue
		}
		if ev := c.linkDownDuring(k); k.local == "" && ev != "" && (strings.Contains(k.cliErr, "unreachable") || strings.Contains(k.cliErr, "no route")) {
			// Plain TCP too: rtr has no route while its leg is down and
			// answers the SYN with an ICMP unreachable, which ends a
			// connect (Linux takes ICMP errors in SYN-SENT as hard).
			tallies[cls].allowed++
			c.logf("round %d: allowed (%s: rtr answered the SYN with an ICMP unreachable, as it would without appliances): %s", i, ev, desc)
			continue
		}
		tallies[cls].bad++
		c.t.Errorf("round %d: a connection plain TCP would carry failed: %s", i, desc)
	}
	var keys []string
	for k := range tallies {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := tallies[k]
		c.logf("round %d connections %-36s ok %4d  allowed (restart, link down) %3d  failed %3d", i, k, v.ok, v.allowed, v.bad)
	}
}

// srvErrAt is the time a server's error begins with (the tools print
// "15:04:05.000: ...").
var srvErrAt = regexp.MustCompile(`(?:recv_err|send_err|err)="?(\d\d):(\d\d):(\d\d)\.(\d{3}): `)

// serverFailed is the time of the server's last error in its line, if
// any, on the day of the run (a time before its start is the next day's).
func (c *chaos) serverFailed(srvLine string) (time.Time, bool) {
	var last time.Time
	for _, m := range srvErrAt.FindAllStringSubmatch(srvLine, -1) {
		var v [4]int
		for i := range v {
			v[i], _ = strconv.Atoi(m[i+1])
		}
		t := time.Date(c.t0.Year(), c.t0.Month(), c.t0.Day(), v[0], v[1], v[2], v[3]*1e6, c.t0.Location())
		if t.Before(c.t0.Add(-time.Hour)) {
			t = t.AddDate(0, 0, 1)
		}
		if t.After(last) {
			last = t
		}
	}
	return last, !last.IsZero()
}

// serverResult finds the server's line for k and says whether it agrees
// with the client's.
func (c *chaos) serverResult(k *chaosConn) (string, bool) {
	if k.kind == "chat" {
		tag := fmt.Sprintf("chat-srv seed=%d ", k.seed)
		for _, l := range strings.Split(k.srv.Output(), "\n") {
			if strings.HasPrefix(l, tag) {
				f := fields(l)
				return l, strings.HasSuffix(l, `err=""`) && f["recv_bytes"] == fmt.Sprint(k.n)
			}
		}
		return "(no line)", false
	}
	tag := fmt.Sprintf("conn seed=%d ", k.seed)
	for _, l := range strings.Split(k.srv.Output(), "\n") {
		if !strings.HasPrefix(l, tag) {
			continue
		}
		f := fields(l)
		var sent, recv string // the client's
		if mm := clientRe.FindStringSubmatch(k.cliOut); mm != nil {
			recv, sent = mm[2], mm[3]
		} else {
			g := fields(k.cliOut)
			recv, sent = g["recv_sha"], g["sent_sha"]
		}
		ok := strings.Contains(l, "recv_err=<nil> send_err=<nil>") && f["recv_bytes"] == fmt.Sprint(k.n) &&
			f["recv_sha"] != "" && f["recv_sha"] == sent && f["sent_sha"] == recv
		return l, ok
	}
	return "(no line)", false
}

// checkCapture: no frame on the untrusted link of a connection between hA
// and hB that negotiated TCP-ENO carries the marker; those to hF do (the
// search works); a connection between hA and hB in plain TCP is counted as
// a fallback.
func (c *chaos) checkCapture(i int, path string) {
	f := c.e.topo.Addr(topology.HostF)
	filter := `tcp && (frame contains "` + marker + `" || tcp.flags.syn == 1)`
	out, err := exec.Command("tshark", "-r", path, "-n", "-Y", filter, "-T", "fields", "-E", "separator=/t",
		"-e", "tcp.stream", "-e", "ip.src", "-e", "ip.dst", "-e", "ipv6.src", "-e", "ipv6.dst", "-e", "tcp.srcport", "-e", "tcp.dstport",
		"-e", "tcp.flags", "-e", "tcp.option_kind", "-e", "frame.time_epoch", "-e", "tcp.len").Output()
	if err != nil {
		c.t.Errorf("round %d: tshark: %v", i, err)
		return
	}
	type st struct {
		desc        string
		eno, synack bool
		plainSYN    bool // a SYN without ENO (syns_with_eno spent: fallback syn_retries)
		markers     int
		first       string
		far         bool
		ports       [2]string
	}
	streams := map[string]*st{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		w := strings.Split(l, "\t")
		if len(w) < 11 {
			continue
		}
		s := streams[w[0]]
		if s == nil {
			src, dst := w[1]+w[3], w[2]+w[4]
			s = &st{desc: fmt.Sprintf("%s:%s <-> %s:%s", src, w[5], dst, w[6]), far: addrIs(src, f.V4, f.V6) || addrIs(dst, f.V4, f.V6), ports: [2]string{w[5], w[6]}}
			streams[w[0]] = s
		}
		fl, _ := strconv.ParseUint(strings.TrimPrefix(w[7], "0x"), 16, 16)
		if fl&0x12 == 0x02 {
			if !strings.Contains(","+w[8]+",", ",69,") {
				s.plainSYN = true
			}
			continue
		}
		if fl&0x12 == 0x12 {
			s.synack = true
			for _, k := range strings.Split(w[8], ",") {
				if k == "69" {
					s.eno = true
				}
			}
			continue
		}
		if s.markers == 0 {
			sec, _ := strconv.ParseFloat(w[9], 64)
			s.first = c.at(time.Unix(0, int64(sec*1e9)))
		}
		s.markers++
	}
	var farMarked, plainAB int
	for id, s := range streams {
		switch {
		case s.markers == 0:
		case s.far:
			farMarked++
		case s.eno && !s.plainSYN:
			c.t.Errorf("round %d: PLAINTEXT LEAK: stream %s (%s), which negotiated TCP-ENO (its SYN-ACK carried option 69), has %d frames with the marker on the untrusted link, the first at %s; events then: %s",
				i, id, s.desc, s.markers, s.first, c.eventsAround(s.first))
		default:
			plainAB++
			c.logf("round %d: stream %s (%s) between hA and hB is plain (SYN-ACK seen %v, with ENO %v; a SYN without ENO %v): %d frames with the marker, the first at %s",
				i, id, s.desc, s.synack, s.eno, s.plainSYN, s.markers, s.first)
		}
	}
	if farMarked == 0 {
		c.t.Errorf("round %d: no connection to hF shows the marker: the capture check proves nothing", i)
	}
	// gwB sees only connections between hA and hB: each that went plain
	// is one of its fallbacks (no_eno when hA's SYN came without ENO,
	// syn_retries when hB's last SYN left without it).
	fb := sum(c.acc[topology.GwB].Fallbacks)
	c.logf("round %d capture: %d streams, %d plain ones to hF carry the marker, %d plain ones between hA and hB (gwB's fallbacks: %d %v)",
		i, len(streams), farMarked, plainAB, fb, nonZero(c.acc[topology.GwB].Fallbacks))
	if uint64(plainAB) > fb {
		c.t.Errorf("round %d: %d connections between hA and hB crossed in plaintext, but gwB counted only %d fallbacks", i, plainAB, fb)
	}
}

func (c *chaos) eventsAround(at string) string {
	sec, _ := strconv.ParseFloat(strings.TrimSuffix(at, "s"), 64)
	t := c.t0.Add(time.Duration(sec * float64(time.Second)))
	var s []string
	for _, ev := range c.events {
		if t.After(ev.from.Add(-5*time.Second)) && t.Before(ev.to.Add(10*time.Second)) {
			s = append(s, fmt.Sprintf("%s [%s-%s]", ev.what, c.at(ev.from), c.at(ev.to)))
		}
	}
	return strings.Join(s, "; ")
}

// checkFlowsDrain: once every connection has ended, both flow tables
// empty out: a closed encrypted record goes handshake_timeout (30 s) after
// both FINs were acknowledged, a plain one after plain_retention (3 s
// here), an aborted one at once. A record whose connection a restart reset
// may stay until its host is probed (half of idle_timeout); those are
// listed, not failed.
func (c *chaos) checkFlowsDrain(i int) {
	deadline := time.Now().Add(75 * time.Second)
	var left map[topology.Node][]flowDoc
	for {
		left = map[topology.Node][]flowDoc{}
		for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
			var page struct {
				Flows []flowDoc `json:"flows"`
			}
			if err := c.e.admin(gw, "/api/v1/flows?limit=1000", &page); err != nil {
				c.t.Errorf("round %d: %v", i, err)
				return
			}
			if len(page.Flows) > 0 {
				left[gw] = page.Flows
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	if len(left) == 0 {
		c.logf("round %d: both flow tables empty", i)
		return
	}
	for gw, fl := range left {
		var unexplained []string
		for _, f := range fl {
			line := fmt.Sprintf("%s %s <-> %s %s encrypted=%v fallback=%q", f.ID, f.Inside, f.Outside, f.State, f.Encrypted, f.FallbackReason)
			if k := c.connOf(gw, f); k != nil && k.enc && len(c.restartsDuring(k)) > 0 && !(k.cliOK) {
				c.logf("round %d: %s still lists %s (reset by a restart: kept until its host is probed)", i, gw, line)
				continue
			}
			unexplained = append(unexplained, line)
		}
		if len(unexplained) > 0 {
			c.t.Errorf("round %d: %s still lists %d flows 75 s after the last connection ended:\n%s", i, gw, len(unexplained), strings.Join(unexplained, "\n"))
			for _, u := range unexplained {
				if k := c.connOfLine(u); k != nil {
					c.logf("  %s: %s %s -> %v %s to %s client %q events %s", u, k.kind, k.src, k.dst, c.at(k.start), c.at(k.end), k.cliErr, c.eventsDuring(k))
				}
			}
		}
	}
}

// connOf finds the workload connection of a flow by the ports.
func (c *chaos) connOf(gw topology.Node, f flowDoc) *chaosConn {
	for _, k := range c.conns {
		if k.local == "" {
			continue
		}
		if sameLocal(f.Inside, k.local) || sameLocal(f.Outside, k.local) {
			if sameEnd(f.Inside, k.dst) || sameEnd(f.Outside, k.dst) {
				return k
			}
		}
	}
	return nil
}

func (c *chaos) connOfLine(line string) *chaosConn {
	w := strings.Fields(line)
	if len(w) < 4 {
		return nil
	}
	return c.connOf("", flowDoc{Inside: w[1], Outside: w[3]})
}

func sameLocal(s, local string) bool {
	return portOf(s) == portOf(local) && hostOf(s) == hostOf(local)
}

func portOf(s string) string {
	if i := strings.LastIndex(s, ":"); i >= 0 {
		return s[i+1:]
	}
	return ""
}

func hostOf(s string) string {
	if i := strings.LastIndex(s, ":"); i >= 0 {
		s = s[:i]
	}
	s = strings.Trim(s, "[]")
	return strings.TrimPrefix(s, "::ffff:")
}

// The chaos check reads the time a server's end of a connection failed
// from its line, as the tools print it.
func TestChaosServerFailed(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 16, 42, 0, 0, time.UTC)
	c := &chaos{t0: t0}
	for line, want := range map[string]time.Time{
		`conn seed=614602220 recv_bytes=2491686 recv_sha= sent_sha=f1 recv_err=16:47:06.126: receive after 2491686 of 2586035 bytes: read tcp 10.93.2.2:5001->10.93.1.2:39782: read: connection reset by peer send_err=<nil>`: time.Date(2026, 12, 6, 16, 47, 6, 126e6, time.UTC),
		`conn seed=1 recv_bytes=0 recv_sha= sent_sha= recv_err=16:48:24.319: receive after 0 of 9 bytes: x send_err=16:48:24.327: send at 0 of 9: y`:                                                                          time.Date(2026, 12, 6, 16, 48, 24, 327e6, time.UTC),
		`chat-srv seed=614802500 recv_bytes=617 err="16:48:25.190: receive after 617 bytes: read: connection reset by peer"`:                                                                                                  time.Date(2026, 12, 6, 16, 48, 25, 190e6, time.UTC),
		`conn seed=2 recv_bytes=9 recv_sha=ab sent_sha=cd recv_err=00:00:01.000: after midnight send_err=<nil>`:                                                                                                               time.Date(2026, 12, 7, 0, 0, 1, 0, time.UTC),
	} {
		if got, ok := c.serverFailed(line); !ok || !got.Equal(want) {
			t.Errorf("%q: %v %v, want %v", line, got, ok, want)
		}
	}
	if _, ok := c.serverFailed(`conn seed=3 recv_bytes=9 recv_sha=ab sent_sha=cd recv_err=<nil> send_err=<nil>`); ok {
		t.Error("a line without an error has a failure time")
	}
}
