package ui_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/admin"
	"github.com/tcpinc/tcpinc/appliance/admin/admintest"
	"github.com/tcpinc/tcpinc/appliance/admin/ui"
)

// fixtureXSS is a fallback reason with markup in it: the page must show it
// as text.
const fixtureXSS = `<img src=x onerror="document.title='pwned'">`

// apiServer is the real admin API server over admintest's fixture Source,
// whose handler also serves the status page at ui.Prefix. Every status poll
// moves the fixture's clock by 500 ms and its counters by fixed steps, so
// the page's rates are known: per poll, 3 MiB through the engine, 512 KiB +
// 1000 bytes on the plain paths, 20 encrypted handshakes and 5 others. Every
// flows listing moves the flows' byte counters (flowStep), so their rates
// are known too. A server with a failAfter > 0 answers 503 to every status
// poll after that many (the daemon gone); one that restarts gives a later
// start time at every status poll, 400 ms further each time, so its uptime
// still grows by 100 ms a poll.
func apiServer(t *testing.T, fastBytes bool, opts ...serverOpt) *httptest.Server {
	t.Helper()
	fx := admintest.New()
	var base []admin.FlowInfo
	fx.Flows(func(f admin.FlowInfo) bool {
		if f.ID == 12 { // the fallen-back flow
			f.FallbackReason += " " + fixtureXSS
		}
		base = append(base, f)
		return true
	})
	fx.SetFlows(base)
	var listings atomic.Int64
	// The daemon's clock moves 500 ms per status poll; the page takes its
	// rates over the daemon's uptime, so they do not depend on the
	// browser's (virtual) time.
	var polls atomic.Int64
	now := func() time.Time { return admintest.Now.Add(time.Duration(polls.Load()) * 500 * time.Millisecond) }
	var o serverOpt
	for _, x := range opts {
		o = x
	}
	var src admin.Source = fx
	if o.restarts {
		src = restarting{fx, &polls}
	}
	api := admin.NewServer(src, admin.Options{Now: now})
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/status", func(w http.ResponseWriter, r *http.Request) {
		if o.failAfter > 0 && polls.Load() >= int64(o.failAfter) {
			http.Error(w, "daemon gone", http.StatusServiceUnavailable)
			return
		}
		polls.Add(1)
		fx.UpdateCounters(func(c *admin.Counters) {
			step := func(path string, b uint64) {
				p := c.Paths[path]
				p.Bytes += b
				p.NoBytes = false // a fast path that counts bytes (tcpincd's counts frames only)
				c.Paths[path] = p
			}
			step("engine", 3<<20)
			if fastBytes {
				step("fast", 1<<19)
			}
			f := c.Paths["fast"]
			f.Frames += 100
			c.Paths["fast"] = f
			step("passthrough", 1000)
			c.Handshakes["encrypted"] += 20
			c.Handshakes["fallback"] += 4
			c.Handshakes["failed"]++
		})
		api.Handler().ServeHTTP(w, r)
	})
	mux.HandleFunc("/api/v1/flows", func(w http.ResponseWriter, r *http.Request) {
		fx.SetFlows(flowStep(base, listings.Add(1)))
		api.Handler().ServeHTTP(w, r)
	})
	mux.Handle("/", api.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// serverOpt makes apiServer's daemon go away or restart.
type serverOpt struct {
	failAfter int
	restarts  bool
}

// restarting is a daemon that restarted before each status poll.
type restarting struct {
	*admintest.Fixture
	polls *atomic.Int64
}

func (r restarting) Status() admin.Status {
	st := r.Fixture.Status()
	st.Started = st.Started.Add(time.Duration(r.polls.Load()) * 400 * time.Millisecond)
	return st
}

// flowStep is the fixture's flows at their n-th listing. Per listing (one
// poll, 500 ms of the daemon's clock): flow 7 takes 625,000 bytes in and
// 12,500 out (10 Mbit/s and 200 kbit/s), flow 9 125 bytes in (2 kbit/s),
// flow 12, plain, 62,500 bytes out, which is no rate (bytes are counted for
// encrypted flows only); flow 13 is gone and a new flow (1000 + n) takes its
// place, so it never has a rate; the bypassed flow's bytes in go back by
// one, which is no rate either.
func flowStep(base []admin.FlowInfo, n int64) []admin.FlowInfo {
	flows := slices.Clone(base)
	for i := range flows {
		f := &flows[i]
		switch f.ID {
		case 7:
			f.BytesIn += uint64(n) * 625_000
			f.BytesOut += uint64(n) * 12_500
		case 9:
			f.BytesIn += uint64(n) * 125
		case 12:
			f.BytesOut += uint64(n) * 62_500
		case 13:
			f.ID = 1000 + uint64(n)
		case 1 << 60:
			f.BytesIn -= uint64(n)
		}
	}
	return flows
}

// chromium finds Debian's chromium; CI installs it (.ci/run). The test skips
// only when it is not installed.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium is not installed (apt-get install chromium; .ci/run does): the status page is not tested in a browser")
	return ""
}

// headless runs chromium on url with extra flags and returns its stdout.
// The virtual time budget lets the page's timers and fetches run (several
// polls) before the DOM is dumped or the screenshot taken.
func headless(t *testing.T, bin, url string, extra ...string) []byte {
	t.Helper()
	args := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
		"--user-data-dir=" + t.TempDir(),
		"--virtual-time-budget=6000",
	}
	args = append(args, extra...)
	args = append(args, url)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\nstderr:\n%s", extra, err, stderr.String())
	}
	return stdout.Bytes()
}

// TestStatusPageInChromium loads the page in headless Chromium against a
// server with fixture JSON and checks what it shows: the flows table rows,
// the session ID, the fallback reason as text (never as markup), the
// summary, and plots that were actually drawn (pixels in the plot colours
// of the screenshot).
func TestStatusPageInChromium(t *testing.T) {
	bin := chromium(t)
	srv := apiServer(t, true)
	url := srv.URL + ui.Prefix + "?interval=500"
	fresh := hex.EncodeToString(admintest.SessionFresh[:])
	resumed := hex.EncodeToString(admintest.SessionResumed[:])

	dom := string(headless(t, bin, url, "--dump-dom"))
	for _, want := range []string{
		fresh,                                // session IDs of the encrypted flows
		resumed,                              //
		`data-flow-id="7"`,                   // one row per flow
		`data-flow-id="1152921504606846976"`, // (1<<60: IDs are strings, exact)
		"10.1.0.2:43122",                     // tuples
		"[2001:db8::53]:53",                  //
		">aes128gcm<",                        // AEAD
		">x25519<",                           // TEP
		">x25519 (resumed)<",                 // resumed flow
		"no: no ENO option &lt;img",          // why not encrypted, as text
		"no: policy bypass",                  //
		`data-state="ok"`,                    // the polls succeeded
		"v0.5.0-test",                        // status summary
		"2h 3m",                              // uptime
		`<td class="encflag">yes</td>`,       // encrypted yes
		`id="s-flows">5<`,                    // flow totals from the status
		`id="s-encrypted">2<`,                //
		// The rest are not encrypted: plain, or still negotiating (the
		// fixture has one of those), so the card does not say "plain".
		`<div class="k">not encrypted</div><div class="v plain" id="s-plain">3<`,
		"now 50 Mbit/s encrypted, 8.4 Mbit/s plain", // rates from the path counters
		"now 40/s encrypted, 10/s other",            // and the handshake counters
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("DOM lacks %q", want)
		}
	}
	if strings.Contains(dom, "<img") || !strings.Contains(dom, "<title>tcpinc appliance</title>") {
		t.Errorf("the fallback reason was inserted as markup:\n%s", dom)
	}
	if strings.Contains(dom, "bytes not counted") {
		t.Errorf("fast-path note shown although the fast path counts bytes")
	}
	// Encrypted rows come first, plain ones last.
	if i, j := strings.Index(dom, `data-flow-id="9"`), strings.Index(dom, `data-flow-id="12"`); i < 0 || j < 0 || i > j {
		t.Errorf("an encrypted flow is not listed before the plain ones")
	}
	if n := len(regexp.MustCompile(`<tr class="(encrypted|plain|pending)"`).FindAllString(dom, -1)); n != 5 {
		t.Errorf("%d flow rows, want 5", n)
	}
	// Each flow's rates in and out since the previous poll (flowStep), in
	// bit/s as the totals; "–" for a plain flow, a flow seen once or one
	// whose counters went back. The busiest flow is marked. A flow that is
	// not encrypted has no bytes counted (the engine counts the plaintext
	// it opens and seals): "–", whatever its listing says, never 0 B.
	for _, tc := range []struct {
		id, in, out string
		enc         bool
	}{
		{"7", "10 Mbit/s", "200 kbit/s", true},
		{"9", "2.0 kbit/s", "0 bit/s", true},
		{"12", "–", "–", false},
		{`10\d\d`, "–", "–", false},
		{"1152921504606846976", "–", "–", false},
	} {
		row := regexp.MustCompile(`<tr [^>]*data-flow-id="` + tc.id + `"[^>]*>.*?</tr>`).FindString(dom)
		want := `<td class="num rate">` + tc.in + `</td><td class="num rate">` + tc.out + `</td>`
		if !strings.Contains(row, want) {
			t.Errorf("flow %s: row %q lacks %q", tc.id, row, want)
		}
		noBytes := `<td class="num">–</td><td class="num">–</td><td class="num rate">`
		if shown := !strings.Contains(row, noBytes); shown != tc.enc {
			t.Errorf("flow %s: bytes shown %v, want %v (encrypted): row %q", tc.id, shown, tc.enc, row)
		}
		if busy := strings.Contains(row, "data-busiest"); busy != (tc.id == "7") {
			t.Errorf("flow %s: marked busiest %v", tc.id, busy)
		}
	}
	if strings.Contains(dom, `data-flow-id="13"`) {
		t.Errorf("flow 13, gone from the listing, is still shown")
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}

	shot := filepath.Join(t.TempDir(), "status.png")
	if dir := os.Getenv("TCPINC_UI_SCREENSHOT_DIR"); dir != "" {
		shot = filepath.Join(dir, "status.png") // keep it to look at
	}
	headless(t, bin, url, "--screenshot="+shot, "--window-size=1400,900")
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	// The plot lines are drawn in the page's colours; a blank canvas has
	// none of them. Table text uses the same green, so count only pixels
	// in the plots' band of the page (below the summary cards, above the
	// table).
	enc := countColor(img, color.RGBA{0x1a, 0x7f, 0x4b, 0xff}, 150, 420)
	plain := countColor(img, color.RGBA{0xb5, 0x47, 0x08, 0xff}, 150, 420)
	hs := countColor(img, color.RGBA{0x17, 0x5c, 0xd3, 0xff}, 150, 420)
	if enc < 50 || plain < 50 || hs < 50 {
		t.Errorf("plot lines missing in the screenshot: %d encrypted, %d plain, %d handshake pixels", enc, plain, hs)
	}
}

// countColor counts pixels within a small distance of c in rows [y0, y1).
func countColor(img image.Image, c color.RGBA, y0, y1 int) int {
	b := img.Bounds()
	n := 0
	for y := max(b.Min.Y, y0); y < min(b.Max.Y, y1); y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if near(r>>8, c.R) && near(g>>8, c.G) && near(bl>>8, c.B) {
				n++
			}
		}
	}
	return n
}

func near(a uint32, b uint8) bool {
	d := int(a) - int(b)
	return d > -12 && d < 12
}

// TestStatusPageFastPathFrames: a daemon whose kernel fast path counts
// frames but not bytes gets a note instead of a plain rate that leaves the
// fast path out silently.
func TestStatusPageFastPathFrames(t *testing.T) {
	bin := chromium(t)
	srv := apiServer(t, false)
	dom := string(headless(t, bin, srv.URL+ui.Prefix+"?interval=500", "--dump-dom"))
	want := "now 50 Mbit/s encrypted, 16 kbit/s plain; plus 200 frames/s on the kernel fast path (bytes not counted)"
	if !strings.Contains(dom, want) {
		t.Errorf("DOM lacks %q", want)
		t.Logf("DOM:\n%s", dom)
	}
}

// TestStatusPageWarnings: the daemon's warnings (a key log being written)
// are a banner at the top of the page, shown as text; without warnings the
// banner stays hidden.
func TestStatusPageWarnings(t *testing.T) {
	bin := chromium(t)
	for _, warn := range [][]string{{"KEY LOG ON: keys of every connection go to /tmp/k " + fixtureXSS}, nil} {
		fx := admintest.New()
		fx.SetWarnings(warn)
		srv := httptest.NewServer(admin.NewServer(fx, admin.Options{Now: func() time.Time { return admintest.Now }}).Handler())
		dom := string(headless(t, bin, srv.URL+ui.Prefix+"?interval=500", "--dump-dom"))
		srv.Close()
		shown := strings.Contains(dom, `<div id="warnings" class="warnings" role="alert">WARNING: KEY LOG ON: keys of every connection go to /tmp/k &lt;img`)
		hidden := strings.Contains(dom, `<div id="warnings" class="warnings" role="alert" hidden=""></div>`)
		if (warn != nil) != shown || (warn == nil) != hidden {
			t.Errorf("warnings %q: banner shown %v, hidden %v", warn, shown, hidden)
			t.Logf("DOM:\n%s", dom)
		}
	}
}

// TestStatusPageDaemonRestarted: a daemon that restarted between two polls
// (its start time changed) gives no rate across the restart, also when its
// uptime is past the one the page saw last (it was down longer than it had
// run): its counters began again and its flow IDs name other flows. The
// page took such a pair of polls for one daemon's, and showed rates from
// another run's counters.
func TestStatusPageDaemonRestarted(t *testing.T) {
	bin := chromium(t)
	srv := apiServer(t, true, serverOpt{restarts: true})
	dom := string(headless(t, bin, srv.URL+ui.Prefix+"?interval=500", "--dump-dom"))
	if !strings.Contains(dom, `data-state="ok"`) || !strings.Contains(dom, `data-flow-id="7"`) {
		t.Fatalf("the page did not poll:\n%s", dom)
	}
	if strings.Contains(dom, "now ") {
		t.Errorf("rates shown across restarts")
	}
	row := regexp.MustCompile(`<tr [^>]*data-flow-id="7"[^>]*>.*?</tr>`).FindString(dom)
	if !strings.Contains(row, `<td class="num rate">–</td><td class="num rate">–</td>`) {
		t.Errorf("flow 7 has a rate across restarts: %q", row)
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}
}

// TestStatusPageDaemonDown: while the admin API does not answer, the page
// says so and shows no rate as current (it kept the last poll's "now 50
// Mbit/s" under the error); the table says when it was last updated.
func TestStatusPageDaemonDown(t *testing.T) {
	bin := chromium(t)
	srv := apiServer(t, true, serverOpt{failAfter: 4})
	dom := string(headless(t, bin, srv.URL+ui.Prefix+"?interval=500", "--dump-dom"))
	for _, want := range []string{
		`data-state="error"`,
		"admin API unreachable: status: HTTP 503",
		`<span class="now" id="now-throughput"></span>`,
		`<span class="now" id="now-handshakes"></span>`,
		`id="flows-note">(as of `,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("DOM lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}
}
