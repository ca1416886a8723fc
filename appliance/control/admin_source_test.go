package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance"
	"github.com/tcpinc/tcpinc/appliance/admin"
	"github.com/tcpinc/tcpinc/appliance/config"
	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/memport"
	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// liveBump is one appliance as tcpincd runs it, on in-memory ports (memport): workers on
// their own goroutines (Start), real engines with the shared key pool and
// resumption cache, and the admin API over an AdminSource.
type liveBump struct {
	a       *appliance.Appliance
	bump    *memport.Bump
	engines *Engines
	src     *AdminSource
	api     *admin.Client
	url     string
	toHost  chan []byte // frames the inside port sent to the host
	peer    *liveBump   // the appliance at the other end of the wire
}

func newLiveBump(t *testing.T, name string) *liveBump {
	t.Helper()
	g := &liveBump{toHost: make(chan []byte, 4096)}
	toHost := func(f []byte) {
		select {
		case g.toHost <- bytes.Clone(f):
		default:
			t.Errorf("%s: host queue full", name)
		}
	}
	toWire := func(f []byte) { g.peer.bump.Arrive(appliance.Outside, f) }
	in, err := memport.New(512, 2048, toHost)
	if err != nil {
		t.Fatal(err)
	}
	out, err := memport.New(512, 2048, toWire)
	if err != nil {
		t.Fatal(err)
	}
	g.bump = memport.NewBump([]*memport.Port{in}, []*memport.Port{out}, [2]func([]byte){toHost, toWire}, true, 1024)
	ecfg := config.Default().Engine
	ecfg.KeyWorkers = 1
	log := slog.New(slog.DiscardHandler)
	g.engines, err = NewEngines(ecfg, log)
	if err != nil {
		t.Fatal(err)
	}
	g.a, err = appliance.New([]appliance.Port{in}, []appliance.Port{out}, appliance.Options{FastPath: g.bump, NewHandler: g.engines.NewHandler, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	g.src, err = NewAdminSource(g.a, g.engines, AdminInfo{
		Version: "test-" + name, FastPath: true,
		Ports: []admin.PortStatus{
			{Name: "inside", Interface: name + "-in", XDPMode: "generic", BindMode: "copy", Queues: 1},
			{Name: "outside", Interface: name + "-out", XDPMode: "generic", BindMode: "copy", Queues: 1},
		},
		KernelPath: func() admin.PathCounters {
			return admin.PathCounters{Frames: g.bump.Redirected(appliance.Inside) + g.bump.Redirected(appliance.Outside)}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(admin.NewServer(g.src, admin.Options{}).Handler())
	g.url = hs.URL
	g.api, err = admin.NewClient(hs.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		hs.Close()
		g.a.Stop()
		g.engines.Close()
	})
	return g
}

// host sends frame from this appliance's inside host.
func (g *liveBump) host(frame []byte) { g.bump.Arrive(appliance.Inside, frame) }

// expect waits for a frame at the host that satisfies ok.
func (g *liveBump) expect(t *testing.T, what string, ok func(*packet.Packet) bool) []byte {
	t.Helper()
	deadline := time.After(10 * time.Second)
	var p packet.Packet
	for {
		select {
		case f := <-g.toHost:
			if p.Decode(f) == nil && p.IsTCP() && ok(&p) {
				return f
			}
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func metricValue(t *testing.T, url, name string) float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}

// encryptedFlow waits until the appliance lists exactly one flow and it is
// encrypted.
func encryptedFlow(t *testing.T, g *liveBump) admin.FlowDoc {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		page, err := g.api.Flows(ctx, admin.FlowQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Flows) == 1 && page.Flows[0].Encrypted {
			return page.Flows[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no encrypted flow: %+v", page.Flows)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAdminSourceBackToBack: two appliances run as the daemon runs them,
// back to back, one connection between their hosts. Through each one's
// admin API: the flow is encrypted with the same 33-byte session ID on both
// (RFC 8548 §3.4; ENO-73: the appliance exposes it for its hosts),
// /api/v1/sessions finds it by 4-tuple from either end, /metrics moves with
// traffic, the resumption cache can be flushed (TC-41), and a run-time
// configuration change is applied or refused as a whole.
func TestAdminSourceBackToBack(t *testing.T) {
	gA, gB := newLiveBump(t, "gwA"), newLiveBump(t, "gwB")
	gA.peer, gB.peer = gB, gA
	for _, g := range []*liveBump{gA, gB} {
		if err := g.a.Start(); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	a, b := netip.AddrPortFrom(a4, 6000), netip.AddrPortFrom(b4, 443)
	const isnA, isnB = 1000, 5000
	const S, A, P = packettest.SYN, packettest.ACK, packettest.PSH

	rxBefore := metricValue(t, gA.url, `tcpinc_port_frames_total{direction="rx",port="inside"}`)
	gA.host(seg(a4, b4, 6000, 443, S, isnA, 0, nil))
	gB.expect(t, "the SYN at b", func(p *packet.Packet) bool { return p.Flags()&S != 0 })
	gB.host(seg(b4, a4, 443, 6000, S|A, isnB, isnA+1, nil))
	gA.expect(t, "the SYN-ACK at a", func(p *packet.Packet) bool { return p.Flags()&(S|A) == S|A })
	gA.host(seg(a4, b4, 6000, 443, A, isnA+1, isnB+1, nil))
	fa, fb := encryptedFlow(t, gA), encryptedFlow(t, gB)

	if len(fa.SessionID) != 66 || fa.SessionID != fb.SessionID {
		t.Fatalf("session IDs: gwA %q, gwB %q; want the same 33 bytes (66 hex digits)", fa.SessionID, fb.SessionID)
	}
	if fa.Role != "A" || fb.Role != "B" || fa.Inside != a.String() || fb.Inside != b.String() {
		t.Fatalf("flows: gwA %+v, gwB %+v", fa, fb)
	}
	for _, q := range []struct {
		g        *liveBump
		src, dst netip.AddrPort
	}{{gA, a, b}, {gA, b, a}, {gB, b, a}, {gB, a, b}} {
		s, err := q.g.api.Session(ctx, q.src, q.dst)
		if err != nil {
			t.Fatalf("session %v -> %v: %v", q.src, q.dst, err)
		}
		if s.SessionID != fa.SessionID {
			t.Fatalf("session %v -> %v: %q, want %q", q.src, q.dst, s.SessionID, fa.SessionID)
		}
	}
	if _, err := gA.api.Session(ctx, a, netip.AddrPortFrom(b4, 444)); err == nil {
		t.Fatal("a tuple without a flow was found")
	}

	sealed := metricValue(t, gA.url, "tcpinc_frames_sealed_total")
	marker := []byte("tcpinc-admin-marker")
	gA.host(seg(a4, b4, 6000, 443, A|P, isnA+1, isnB+1, marker))
	gB.expect(t, "the data at b", func(p *packet.Packet) bool { return bytes.Contains(p.Payload(), marker) })
	// The engine publishes its frame counts at its next Tick (a
	// millisecond or two after the data went).
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		got := metricValue(t, gA.url, "tcpinc_frames_sealed_total")
		if got > sealed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("frames sealed %v -> %v: did not move with the data", sealed, got)
		}
	}
	// The worker publishes its counts after the round that sent the data.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		got := metricValue(t, gA.url, `tcpinc_port_frames_total{direction="rx",port="inside"}`)
		if got >= rxBefore+3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("inside rx frames %v -> %v, want the host's 3 more", rxBefore, got)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		got := metricValue(t, gB.url, "tcpinc_frames_opened_total")
		if got >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gwB opened %v frames", got)
		}
	}
	if got := metricValue(t, gA.url, `tcpinc_flows{state="`+fa.State+`"}`); got != 1 {
		t.Fatalf("flows in state %s: %v", fa.State, got)
	}
	st, err := gA.api.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != "test-gwA" || st.Workers != 1 || len(st.Ports) != 2 || st.Ports[0].Interface != "gwA-in" ||
		len(st.AEADPreference) != 3 || st.Flows.Encrypted != 1 {
		t.Fatalf("status: %+v", st)
	}

	// Resumption state for the far side is cached by both; flushing it
	// for b on gwA drops one entry, and gwA's cache is empty after.
	if got := metricValue(t, gA.url, "tcpinc_resumption_cache_entries"); got != 1 {
		t.Fatalf("gwA caches %v far sides, want 1", got)
	}
	fr, err := gA.api.FlushCache(ctx, b4.String())
	if err != nil || fr.Flushed != 1 || gA.engines.Cache.Len() != 0 {
		t.Fatalf("flush %s: %+v, %v; cache holds %d", b4, fr, err, gA.engines.Cache.Len())
	}

	// Job of the classifier (xsk, and memport.Bump as its model): an ICMP
	// fragmentation-needed from the untrusted side quoting the encrypted
	// flow reaches the engine, not the fast path; the host gets it with
	// the quoted sequence number translated and the MTU lowered by the
	// frame overhead. The quoted sequence number must be in flight (RFC
	// 5927 §4.1): wire offset 100 is inside the marker's frame, which b
	// has not acknowledged (Init1 ends before it).
	quoted := packettest.Quote(seg(a4, b4, 6000, 443, A, isnA+1+100, isnB+1, nil), 28)
	router := netip.MustParseAddr("198.51.100.254")
	gA.bump.Arrive(appliance.Outside, packettest.Frame{Src: router, Dst: a4, Proto: 1, L4: packettest.ICMP(3, 4, 1280, quoted)}.Bytes())
	deadline := time.After(10 * time.Second)
	var p packet.Packet
	for got := false; !got; {
		select {
		case f := <-gA.toHost:
			if p.Decode(f) == nil && p.IsICMP() && p.IsPathMTU() {
				if mtu, _ := p.MTU(); mtu != 1280-20 {
					t.Fatalf("PTB reached host a with MTU %d, want 1260", mtu)
				}
				got = true
			}
		case <-deadline:
			t.Fatal("the PTB did not reach host a")
		}
	}
	var translated uint64
	gA.engines.Each(func(_ int, c *engine.Counters) { translated += c.PTBTranslated.Load() })
	if translated != 1 || gA.bump.Redirected(appliance.Outside) != 0 {
		t.Fatalf("PTBs translated by the engine: %d; frames on the fast path from outside: %d", translated, gA.bump.Redirected(appliance.Outside))
	}

	checkConfigChanges(t, gA)
	checkAEADChange(t, gB)
}

// checkAEADChange: taking an AEAD out with PUT /api/v1/config flushes the
// resumption cache, whose secrets could only resume sessions under it
// (the engines refuse those too, engine.mayResume); before, they stayed
// for the cache's TTL. Reordering the AEADs keeps the cache. The status's
// aead_preference is the order the engines use after each PUT; before, it
// stayed the one tcpincd started with.
func checkAEADChange(t *testing.T, g *liveBump) {
	ctx := context.Background()
	if n := g.engines.Cache.Len(); n != 1 {
		t.Fatalf("the cache holds %d far sides, want 1", n)
	}
	cfg, err := g.api.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := g.api.Status(ctx); err != nil || st.AEADPreferenceFrom != "cpu" {
		t.Fatalf("at start the status says the AEAD order came from %q, want cpu (%v)", st.AEADPreferenceFrom, err)
	}
	reordered := slices.Clone(cfg.AEADs)
	slices.Reverse(reordered)
	for _, aeads := range [][]string{reordered, {"chacha20poly1305"}} {
		doc, _ := json.Marshal(map[string][]string{"aeads": aeads})
		if res, err := g.api.PutConfig(ctx, doc); err != nil || !slices.Equal(res.Config.AEADs, aeads) {
			t.Fatalf("PUT %s: %+v, %v", doc, res, err)
		}
		want := 1
		if len(aeads) == 1 {
			want = 0
		}
		if n := g.engines.Cache.Len(); n != want {
			t.Fatalf("after PUT aeads %v the cache holds %d far sides, want %d", aeads, n, want)
		}
		if st, err := g.api.Status(ctx); err != nil || !slices.Equal(st.AEADPreference, aeads) || st.AEADPreferenceFrom != "api" {
			t.Fatalf("after PUT aeads %v the status shows aead_preference %v from %q, %v", aeads, st.AEADPreference, st.AEADPreferenceFrom, err)
		}
	}
}

// engineConfigs reads every worker's engine configuration on its goroutine.
func engineConfigs(t *testing.T, a *appliance.Appliance) []engine.Config {
	t.Helper()
	var out []engine.Config
	if err := a.Inspect(func(_ int, h appliance.FrameHandler) {
		if e, ok := engineOf(h); ok {
			out = append(out, e.Config())
		}
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkConfigChanges: PUT /api/v1/config against running engines.
func checkConfigChanges(t *testing.T, g *liveBump) {
	ctx := context.Background()
	before, err := g.api.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	refused := func(doc, field string) {
		t.Helper()
		_, err := g.api.PutConfig(ctx, []byte(doc))
		var ae *admin.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Field != field {
			t.Fatalf("PUT %s: %v, want a 400 naming %s", doc, err, field)
		}
		after, err := g.api.Config(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !configEqual(before, after) {
			t.Fatalf("PUT %s was refused but the config changed: %+v -> %+v", doc, before, after)
		}
	}
	ecBefore := engineConfigs(t, g.a)
	// Bad values: the API's own validation, then the engine's minimum.
	refused(`{"rekey_bytes": 5}`, "rekey_bytes")
	refused(`{"caps": {"flows": 10, "retransmit_bytes": 4096, "reassembly_bytes": 65536, "prekey_queue_bytes": 65536, "deliver_bytes": 65536}}`, "caps.retransmit_bytes")
	refused(`{"rekey_bytes": 5, "resumption": false}`, "rekey_bytes") // nothing of it applied

	// Resumption and the nonce length live in the shared cache: they
	// change at run time (TC-40: resumption can be turned off).
	res, err := g.api.PutConfig(ctx, []byte(`{"resumption": false, "resume_nonce_len": 4}`))
	if err != nil || !res.Applied || res.Config.Resumption || res.Config.ResumeNonceLen != 4 {
		t.Fatalf("resumption off: %+v, %v", res, err)
	}
	before = res.Config

	// Engine settings: applied to every engine when the engine can be
	// reconfigured, else refused by name with nothing changed.
	doc := `{"rekey_bytes": 2097152, "rekey_interval": "10m"}`
	var canChange bool
	_ = g.a.Inspect(func(_ int, h appliance.FrameHandler) { _, canChange = h.(Reconfigurer) })
	if !canChange {
		refused(doc, "rekey_bytes")
		if got := engineConfigs(t, g.a); got[0].RekeyBytes != ecBefore[0].RekeyBytes {
			t.Fatalf("refused, yet the engine's rekey_bytes went %d -> %d", ecBefore[0].RekeyBytes, got[0].RekeyBytes)
		}
		return
	}
	res, err = g.api.PutConfig(ctx, []byte(doc))
	if err != nil || res.Config.RekeyBytes != 2097152 {
		t.Fatalf("PUT %s: %+v, %v", doc, res, err)
	}
	for q, ec := range engineConfigs(t, g.a) {
		if ec.RekeyBytes != 2097152 || ec.RekeyAfter != 10*time.Minute {
			t.Fatalf("engine %d runs rekey %d bytes / %v after the PUT", q, ec.RekeyBytes, ec.RekeyAfter)
		}
	}

	// caps.flows goes down and back up at run time, never past the value
	// tcpincd started with: the negotiated set was sized for that many
	// flows per worker, and the live flows past it went encrypted without
	// being held, so that after a restart their segments passed unchanged
	// (plaintext onto the wire). It was accepted up to 2^24.
	before = res.Config
	start := g.engines.StartMaxFlows()
	refused(fmt.Sprintf(`{"caps": {"flows": %d}}`, start+1), "caps.flows")
	for _, n := range []int{start / 2, start} {
		res, err = g.api.PutConfig(ctx, []byte(fmt.Sprintf(`{"caps": {"flows": %d}}`, n)))
		if err != nil || res.Config.Caps.Flows != n || engineConfigs(t, g.a)[0].MaxFlows != n {
			t.Fatalf("caps.flows %d: %+v, %v", n, res, err)
		}
	}
}

func configEqual(a, b admin.Config) bool { return changedField(a, b) == "" }

// recordingEngine is an engine whose Reconfigure records what it was given
// and, when fail is set, refuses: it drives AdminSource's all-or-nothing
// logic over several workers.
type recordingEngine struct {
	e       *engine.Engine
	fail    bool
	applied []engine.Config
}

func (r *recordingEngine) Engine() *engine.Engine { return r.e }

func (r *recordingEngine) HandlePacket(now int64, from engine.PortID, p *packet.Packet, tx [2]appliance.TxSink) appliance.Verdict {
	return r.e.HandlePacket(now, from, p, tx)
}

func (r *recordingEngine) Tick(now int64, tx [2]appliance.TxSink) { r.e.Tick(now, tx) }

func (r *recordingEngine) Reconfigure(c engine.Config) error {
	if r.fail {
		return errors.New("refused")
	}
	r.applied = append(r.applied, c)
	return nil
}

// TestAdminSourceApplyAllOrNothing: with three workers, a configuration
// the third engine refuses is put back on the first two and the Source
// keeps the old one; one they all take reaches all three.
func TestAdminSourceApplyAllOrNothing(t *testing.T) {
	var hs []*recordingEngine
	a := newAppliance(t, 3, func(q int) (appliance.FrameHandler, error) {
		e, err := engine.New(engine.Config{}, engine.Deps{})
		h := &recordingEngine{e: e}
		hs = append(hs, h)
		return h, err
	})
	eng := &Engines{cfg: hs[0].e.Config()}
	src, err := NewAdminSource(a, eng, AdminInfo{Version: "t"})
	if err != nil {
		t.Fatal(err)
	}
	old := src.Config()
	next := old
	next.RekeyBytes = 4 << 20
	next.Policies = []admin.PolicyRule{{Prefix: "192.0.2.0/24", Policy: admin.PolicyRequire}}
	next.DefaultPolicy = admin.PolicyBypass

	hs[2].fail = true
	err = src.ApplyConfig(next)
	var fe *admin.FieldError
	if !errors.As(err, &fe) || fe.Field != "policies" {
		t.Fatalf("apply with a refusing engine: %v, want a field error on policies", err)
	}
	if !configEqual(src.Config(), old) {
		t.Fatal("the Source took a configuration an engine refused")
	}
	for i, h := range hs[:2] {
		if len(h.applied) != 2 || h.applied[1].RekeyBytes != hs[0].e.Config().RekeyBytes {
			t.Fatalf("engine %d: %d configurations applied, want the new one then the old one back", i, len(h.applied))
		}
	}

	hs[2].fail = false
	if err := src.ApplyConfig(next); err != nil {
		t.Fatal(err)
	}
	for i, h := range hs {
		c := h.applied[len(h.applied)-1]
		if c.RekeyBytes != 4<<20 || len(c.Policies) != 3 {
			t.Fatalf("engine %d got %+v", i, c)
		}
		// The default policy is a /0 rule per family; the longest prefix wins.
		want := map[string]engine.Policy{"192.0.2.0/24": engine.Require, "0.0.0.0/0": engine.Bypass, "::/0": engine.Bypass}
		for _, p := range c.Policies {
			if want[p.Prefix.String()] != p.Policy {
				t.Fatalf("engine %d: rule %v %v", i, p.Prefix, p.Policy)
			}
		}
	}
	if got := src.Config(); got.DefaultPolicy != admin.PolicyBypass || got.RekeyBytes != 4<<20 {
		t.Fatalf("Source config after apply: %+v", got)
	}
}

// TestKeyLogLostWarning: key log lines the writer refused (its queue full,
// its file failed) put a warning in the status, and are counted among the
// engine events (key_log_lost, tcpinc_engine_events_total). Before, the
// first write error silenced the key log for good while the status still
// said only that it was on.
func TestKeyLogLostWarning(t *testing.T) {
	ecfg := config.Default().Engine
	ecfg.KeyWorkers = 1
	eng, src := engineSource(t, ecfg, 2, AdminInfo{Version: "t", Warnings: []string{"key log on"}}, func(eng *Engines) { eng.KeyLog = func(engine.KeyLogEntry) bool { return false } })
	if w := src.Status().Warnings; len(w) != 1 {
		t.Fatalf("warnings with nothing lost: %q", w)
	}
	eng.Each(func(q int, c *engine.Counters) { c.KeyLogLost.Add(uint64(q + 1)) })
	w := src.Status().Warnings
	if len(w) != 2 || !strings.Contains(w[1], "3 lines lost") {
		t.Fatalf("warnings after 3 lost key log lines: %q", w)
	}
	if n := src.Counters().Events["key_log_lost"]; n != 3 {
		t.Fatalf("key_log_lost event count %d, want 3", n)
	}
	// Lines a write error lost after the writer took them count too.
	eng.KeyLogLost = func() uint64 { return 7 }
	if w := src.Status().Warnings; len(w) != 2 || !strings.Contains(w[1], "7 lines lost") {
		t.Fatalf("warnings with the writer counting 7 lost lines: %q", w)
	}
}

// TestPanicWarning: panics the engines recovered put a warning in the
// status and are counted among the engine events.
func TestPanicWarning(t *testing.T) {
	ecfg := config.Default().Engine
	ecfg.KeyWorkers = 1
	eng, src := engineSource(t, ecfg, 2, AdminInfo{Version: "t"}, nil)
	if w := src.Status().Warnings; len(w) != 0 {
		t.Fatalf("warnings with no panic: %q", w)
	}
	eng.Each(func(q int, c *engine.Counters) { c.Panics.Add(uint64(q + 1)) })
	if w := src.Status().Warnings; len(w) != 1 || !strings.Contains(w[0], "3 panics recovered") {
		t.Fatalf("warnings after 3 panics: %q", w)
	}
	if n := src.Counters().Events["panics"]; n != 3 {
		t.Fatalf("panics event count %d, want 3", n)
	}
}

// TestAdminSourceEngineOff: with the engine disabled every change is
// refused by name, and there are no flows and nothing to flush.
func TestAdminSourceEngineOff(t *testing.T) {
	src, err := NewAdminSource(newAppliance(t, 1, nil), nil, AdminInfo{Version: "t"})
	if err != nil {
		t.Fatal(err)
	}
	c := src.Config()
	if err := c.Validate(); err != nil {
		t.Fatalf("the configuration shown with the engine off does not validate: %v", err)
	}
	if err := src.ApplyConfig(c); err != nil {
		t.Fatalf("applying the unchanged configuration: %v", err)
	}
	c.TEPs = []string{"x448"}
	var fe *admin.FieldError
	if err := src.ApplyConfig(c); !errors.As(err, &fe) || fe.Field != "teps" {
		t.Fatalf("apply with the engine off: %v", err)
	}
	if n, err := src.FlushCache(netip.Addr{}); n != 0 || err != nil {
		t.Fatalf("flush: %d, %v", n, err)
	}
	if page, n := src.FlowPage(admin.FlowFilter{}, 0, 10); len(page) != 0 || n != 0 {
		t.Fatalf("flows without an engine: %d, %d matched", len(page), n)
	}
	if total, enc := src.FlowCounts(); total != 0 || enc != 0 {
		t.Fatalf("flow counts without an engine: %d, %d", total, enc)
	}
}

// discard is a TxSink whose frames go nowhere.
type discard struct{ buf [2048]byte }

func (d *discard) Buffer() []byte { return d.buf[:] }
func (d *discard) Commit(int)     {}

// TestFlowIDsUniqueAcrossWorkers: each worker's engine numbered its flows
// from 1, so two workers listed two flows with ID 1; /api/v1/flows/1
// always returned worker 0's, and a page of one flow lost the other (the
// cursor keeps IDs above it). The engines now share one counter
// (Engines.NewHandler, engine.Deps.FlowIDs). Over the real admin server,
// with one flow on each of two workers.
func TestFlowIDsUniqueAcrossWorkers(t *testing.T) {
	eng, err := NewEngines(config.Default().Engine, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	a := newAppliance(t, 2, eng.NewHandler)
	src, err := NewAdminSource(a, eng, AdminInfo{Version: "t"})
	if err != nil {
		t.Fatal(err)
	}
	var tx [2]engine.TxSink = [2]engine.TxSink{&discard{}, &discard{}}
	if err := src.eachEngine(func(q int, e *engine.Engine) {
		// A SYN from the inside: a flow in syn-sent on worker q.
		e.Handle(0, engine.Inside, seg(a4, b4, uint16(7000+q), 80, packettest.SYN, 1, 0, nil), tx)
	}); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(admin.NewServer(src, admin.Options{}).Handler())
	defer hs.Close()
	api, err := admin.NewClient(hs.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	page, err := api.Flows(ctx, admin.FlowQuery{})
	if err != nil || len(page.Flows) != 2 || page.Flows[0].ID == page.Flows[1].ID {
		t.Fatalf("flows: %+v, %v; want two with different IDs", page, err)
	}
	for _, want := range page.Flows {
		id, _ := strconv.ParseUint(want.ID, 10, 64)
		got, err := api.Flow(ctx, id)
		if err != nil || got.Inside != want.Inside {
			t.Fatalf("flow %s: %+v, %v; want the one of %s", want.ID, got, err, want.Inside)
		}
	}
	seen := map[string]bool{}
	for q := (admin.FlowQuery{Limit: 1}); ; {
		p, err := api.Flows(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range p.Flows {
			seen[f.Inside] = true
		}
		if p.NextCursor == "" {
			break
		}
		q.Cursor = p.NextCursor
	}
	if len(seen) != 2 {
		t.Fatalf("pages of one flow listed %v, want both flows", seen)
	}
}

// TestAEADPreferenceFromConfig: an order set in the config file is reported
// as such, not as the CPU's (checkAEADChange covers "cpu" and "api").
func TestAEADPreferenceFromConfig(t *testing.T) {
	cfg := config.Default().Engine
	cfg.AEADs = []string{"chacha20poly1305", "aes128gcm"}
	_, src := engineSource(t, cfg, 1, AdminInfo{Version: "t", AEADs: cfg.AEADs}, nil)
	if st := src.Status(); !slices.Equal(st.AEADPreference, cfg.AEADs) || st.AEADPreferenceFrom != "config" {
		t.Fatalf("status: aead_preference %v from %q, want %v from config", st.AEADPreference, st.AEADPreferenceFrom, cfg.AEADs)
	}
}

// TestResumptionNonceLenFromConfig: engine.resumption_nonce_len reaches the
// cache and GET /api/v1/config (there was no such key: the length could
// only be set through the API, until the next restart).
func TestResumptionNonceLenFromConfig(t *testing.T) {
	cfg := config.Default().Engine
	cfg.ResumptionNonceLen = 3
	eng, src := engineSource(t, cfg, 1, AdminInfo{Version: "t"}, nil)
	if n, got := eng.Cache.NonceLen(), src.Config().ResumeNonceLen; n != 3 || got != 3 {
		t.Fatalf("nonce length: cache %d, API %d; want 3", n, got)
	}
}

// Warnings that come and go (AdminInfo.Warning: the negotiated set's disk
// copy not being written, a port gone) are in the status while they hold.
func TestComingWarning(t *testing.T) {
	ecfg := config.Default().Engine
	ecfg.KeyWorkers = 1
	warn, port := "", ""
	_, src := engineSource(t, ecfg, 1, AdminInfo{Version: "t", Warning: []func() string{
		func() string { return warn }, func() string { return port }}}, nil)
	if w := src.Status().Warnings; len(w) != 0 {
		t.Fatalf("warnings: %q", w)
	}
	warn = "disk copy not written"
	if w := src.Status().Warnings; len(w) != 1 || w[0] != warn {
		t.Fatalf("warnings: %q", w)
	}
	port = "PORT GONE"
	if w := src.Status().Warnings; len(w) != 2 || w[0] != warn || w[1] != port {
		t.Fatalf("warnings: %q", w)
	}
}

// The ports' MTUs and links are read at each status (AdminInfo.PortMTU,
// PortLink: tcpincd follows them while it runs).
func TestStatusPortMTU(t *testing.T) {
	ecfg := config.Default().Engine
	ecfg.KeyWorkers = 1
	mtu := [2]int{1500, 1500}
	link := [2]string{"up", "up"}
	_, src := engineSource(t, ecfg, 1, AdminInfo{Version: "t",
		Ports:    []admin.PortStatus{{Name: "inside"}, {Name: "outside"}},
		PortMTU:  func(i int) (int, int) { return mtu[i], min(mtu[i], 3822) },
		PortLink: func(i int) string { return link[i] }}, nil)
	mtu[1] = 9000
	link[1] = "no_carrier"
	p := src.Status().Ports
	if p[0].MTU != 1500 || p[0].SegmentMTU != 1500 || p[1].MTU != 9000 || p[1].SegmentMTU != 3822 ||
		p[0].Link != "up" || p[1].Link != "no_carrier" {
		t.Fatalf("ports %+v", p)
	}
}

// engineSource is an AdminSource over the engines of cfg on an appliance of
// queues workers, the engines closed at the test's end; setup, if not nil,
// sees the engines before the source is made.
func engineSource(t *testing.T, cfg config.Engine, queues int, info AdminInfo, setup func(*Engines)) (*Engines, *AdminSource) {
	t.Helper()
	eng, err := NewEngines(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	if setup != nil {
		setup(eng)
	}
	src, err := NewAdminSource(newAppliance(t, queues, eng.NewHandler), eng, info)
	if err != nil {
		t.Fatal(err)
	}
	return eng, src
}
