package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fixture values the page must show.
const (
	fixtureSessionID = "23" + "6b1f0c2d3e4f5a6b7c8d9eafb0c1d2e3f405162738495a6b7c8d9eafb0c1d2e3"
	fixtureXSS       = `<img src=x onerror="document.title='pwned'">`
)

// fixtureAPI serves /ui/ (the real Handler) and the admin API's two routes
// the page polls, with counters that grow at every poll so the plots have
// something to draw.
type fixtureAPI struct {
	mu    sync.Mutex
	polls int
}

func (f *fixtureAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var doc any
	switch r.URL.Path {
	case "/api/v1/status":
		// The shape of admin.StatusDoc.
		f.polls++
		n := uint64(f.polls)
		doc = map[string]any{
			"version":         "v0.0.0-fixture",
			"uptime_seconds":  3725.5,
			"aead_preference": []string{"aes128gcm", "aes256gcm", "chacha20poly1305"},
			"ports": []map[string]any{
				{"name": "inside", "interface": "in", "xdp_mode": "native", "bind_mode": "copy", "queues": 1, "cpus": []int{}},
				{"name": "outside", "interface": "out", "xdp_mode": "native", "bind_mode": "copy", "queues": 1, "cpus": []int{}},
			},
			"flows": map[string]any{"total": 2, "encrypted": 1},
			"counters": map[string]any{
				"paths": map[string]any{
					"engine":      map[string]any{"frames": 1000 * n, "bytes": (3 << 20) * n},
					"fast":        map[string]any{"frames": 100 * n, "bytes": (1 << 19) * n},
					"passthrough": map[string]any{"frames": 10 * n, "bytes": 1000 * n},
				},
				"handshakes": map[string]any{"encrypted": 20 * n, "fallback": 5 * n},
				"fallbacks":  map[string]any{"no_eno": 5 * n},
			},
		}
	case "/api/v1/flows":
		// The shape of admin.FlowsPage.
		doc = map[string]any{
			"total": 2,
			"flows": []map[string]any{
				{
					"id": "7", "inside": "10.77.1.2:40112", "outside": "10.77.2.2:8080", "state": "established",
					"encrypted": true, "role": "A", "tep": "x25519", "aead": "aes128gcm",
					"session_id": fixtureSessionID, "key_generation": 2, "resumed": false,
					"bytes_in": 12 << 20, "bytes_out": 4096, "packets_in": 9000, "packets_out": 4000,
					"started": "2026-01-01T00:00:00Z", "age_seconds": 12.5,
				},
				{
					"id": "9", "inside": "[fd00:77:1::2]:40200", "outside": "[fd00:77:3::2]:5201", "state": "passthrough",
					"encrypted": false, "fallback_reason": "no_eno_in_synack " + fixtureXSS, "key_generation": 0,
					"bytes_in": 100000, "bytes_out": 2000, "started": "2026-01-01T00:00:09Z", "age_seconds": 3,
				},
			},
		}
	default:
		Handler().ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(doc)
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
	srv := httptest.NewServer(&fixtureAPI{})
	defer srv.Close()
	url := srv.URL + Prefix + "?interval=500"

	dom := string(headless(t, bin, url, "--dump-dom"))
	for _, want := range []string{
		fixtureSessionID,               // the session ID of the encrypted flow
		`data-flow-id="7"`,             // one row per flow
		`data-flow-id="9"`,             // ...
		"10.77.1.2:40112",              // the tuple
		"[fd00:77:3::2]:5201",          //
		"aes128gcm",                    // AEAD
		">x25519<",                     // TEP
		"no: no_eno_in_synack &lt;img", // why not encrypted, escaped
		`data-state="ok"`,              // the poll succeeded
		"v0.0.0-fixture",               // status summary
		"1h 2m",                        // uptime 3725 s
		`<td class="encflag">yes</td>`, // encrypted yes
		`id="s-encrypted">1<`,          // one encrypted flow
		`<td class="num">2</td>`,       // key generation
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
	if n := len(regexp.MustCompile(`<tr class="(encrypted|plain)"`).FindAllString(dom, -1)); n != 2 {
		t.Errorf("%d flow rows, want 2", n)
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
