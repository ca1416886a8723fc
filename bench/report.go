package bench

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// Case is one way of joining side A and side B. Exactly one of Bridge,
// Wireguard and Tcpincd says how.
type Case struct {
	ID   string // "a", "b", ...: the letter the report uses
	Name string // short name for flags: kernel, wireguard-go, tcpinc-fast, tcpinc-user
	Desc string // one line for the report

	Bridge    bool         // a kernel bridge in each gateway
	Wireguard bool         // wireguard-go between routed gateways
	Tcpincd   *TcpincdCase // tcpincd in each gateway
}

// TcpincdCase is how a case runs tcpincd.
type TcpincdCase struct {
	FastPath bool // else --no-fast-path
	// Engine on: TCP between the gateways is encrypted, and the
	// connection measurements run with resumption off and on.
	Engine bool
	// Args are extra daemon arguments for this case (before -tcpincd-args).
	Args []string
	// Repo is the module root to build this case's tcpincd from; empty:
	// Config.RepoDir. (A baseline case beside the same case built from the
	// tree under test compares two revisions in one run.)
	Repo string
}

// The cases of issue 3, in report order. (a) and (b) are the anchors. A new
// way to run tcpincd (another port backend) is one more line in AllCases.
var (
	CaseKernel    = Case{ID: "a", Name: "kernel", Desc: "kernel forwarding: a bridge joins `in` and `out` in gwA and gwB", Bridge: true}
	CaseWireguard = Case{ID: "b", Name: "wireguard-go", Desc: "wireguard-go tunnel between gwA and gwB (routed gateways)", Wireguard: true}
	CaseFastPath  = Case{ID: "c", Name: "tcpinc-fast", Desc: "tcpincd passthrough (engine off) with the XDP fast path", Tcpincd: &TcpincdCase{FastPath: true}}
	CaseUserSpace = Case{ID: "d", Name: "tcpinc-user", Desc: "tcpincd passthrough (engine off), every frame through user space (`--no-fast-path`)", Tcpincd: &TcpincdCase{}}
	CaseEncrypted = Case{ID: "e", Name: "tcpinc-crypt", Desc: "tcpincd with its TCP-ENO/tcpcrypt engine on, AF_XDP backend (`--backend afxdp`): TCP between gwA and gwB encrypted",
		Tcpincd: &TcpincdCase{FastPath: true, Engine: true, Args: []string{"--backend", "afxdp"}}}
	CaseEncryptedPacket = Case{ID: "f", Name: "tcpinc-crypt-afpacket", Desc: "tcpincd with its engine on, AF_PACKET GSO backend (`--backend afpacket`, what auto picks on veth): TCP between gwA and gwB encrypted",
		Tcpincd: &TcpincdCase{FastPath: true, Engine: true, Args: []string{"--backend", "afpacket"}}}
	AllCases = []Case{CaseKernel, CaseWireguard, CaseFastPath, CaseUserSpace, CaseEncrypted, CaseEncryptedPacket}
)

// TCPRuns are the iperf3 runs of one case at one stream count.
type TCPRuns struct {
	Gbps        []float64 // receiver goodput per run
	Busy        []float64 // vm_busy % per run
	Retransmits []int64
	// The appliance processes' CPU seconds per GB arriving at hB, and
	// their system calls per frame crossing (appcost.go); NaN where not
	// measured (kernel case, no perf).
	CPUPerGB         []float64
	SyscallsPerFrame []float64
}

// PPSRuns are the small-packet runs of one case.
type PPSRuns struct {
	Offered   []float64 // frames/s leaving hA:eth0
	Forwarded []float64 // frames/s arriving at hB:eth0
	Busy      []float64
}

// Result is everything measured for one case.
type Result struct {
	Case    Case
	Skipped string // why the case did not run (empty if it ran)
	Errors  []string
	TCP     map[int]*TCPRuns // by stream count
	PPS     *PPSRuns
	Conn    []*ConnVariant // connection rate and first-byte delay
	Notes   []string       // facts the case reported about itself (modes, versions)
}

// The variants of the encrypted case's connection measurements.
const (
	VariantFresh   = "resumption off"
	VariantResumed = "resumption on"
)

// ConnVariant is the connection-rate runs and the first-byte run of one
// case (and, for the encrypted case, one resumption setting).
type ConnVariant struct {
	Variant string // "" or VariantFresh / VariantResumed
	Rate    []ConnStats
	Busy    []float64 // vm_busy % per rate run
	// CPUPerConn is the appliance processes' utime+stime (both gateways)
	// per completed connection of each rate run, µs (NaN: not measured).
	CPUPerConn []float64
	FirstByte  *ConnStats
	// gwA's engine counters over the rate runs and over the first-byte run
	// (nil without tcpincd's admin API).
	RateEngine, FirstByteEngine *EngineCounts
	Errors                      []string
}

// EngineCounts are the handshake counters of one tcpincd (admin API).
type EngineCounts struct {
	Encrypted    uint64 `json:"encrypted"`
	Failed       uint64 `json:"failed"`
	Fallback     uint64 `json:"fallback"`
	Resumed      uint64 `json:"resumed"`
	AuthFailures uint64 `json:"auth_failures"`
}

// Sub returns c - before (nil if either is nil).
func (c *EngineCounts) Sub(before *EngineCounts) *EngineCounts {
	if c == nil || before == nil {
		return nil
	}
	return &EngineCounts{
		Encrypted: c.Encrypted - before.Encrypted, Failed: c.Failed - before.Failed, Fallback: c.Fallback - before.Fallback,
		Resumed: c.Resumed - before.Resumed, AuthFailures: c.AuthFailures - before.AuthFailures,
	}
}

// X25519Limit is keygen+ECDH per second measured in the harness process.
type X25519Limit struct {
	Cores    int
	One, All float64 // jobs/s on one goroutine, on Cores goroutines
	IdleBusy float64 // vm_busy % with no bench traffic just before
	Err      string
}

// Settings are the knobs of a run, printed with the report.
type Settings struct {
	Runs        int
	Streams     []int
	Duration    time.Duration // iperf3 -t
	Omit        time.Duration // iperf3 -O
	PPSDuration time.Duration
	PPSWarmup   time.Duration
	TrafgenCPUs int
	FrameLen    int
	MTU         int
	Offloads    string

	ConnDuration    time.Duration
	ConnConcurrency int
	FirstByteCount  int
}

// Report is one invocation's results.
type Report struct {
	Command  string
	Date     time.Time
	Machine  string
	Settings Settings
	X25519   *X25519Limit
	Results  []*Result
}

func (r *Report) result(id string) *Result {
	for _, x := range r.Results {
		if x.Case.ID == id && x.Skipped == "" {
			return x
		}
	}
	return nil
}

func tcpMedian(r *Result, streams int) float64 {
	if r == nil || r.TCP[streams] == nil {
		return math.NaN()
	}
	return Summarize(r.TCP[streams].Gbps).Median
}

func ppsMedian(r *Result) float64 {
	if r == nil || r.PPS == nil {
		return math.NaN()
	}
	return Summarize(r.PPS.Forwarded).Median
}

func f2(x float64) string {
	if math.IsNaN(x) {
		return "–"
	}
	return fmt.Sprintf("%.2f", x)
}

func ratio(x float64) string {
	if math.IsNaN(x) {
		return "–"
	}
	return fmt.Sprintf("%.2f×", x)
}

func kpps(x float64) string {
	if math.IsNaN(x) {
		return "–"
	}
	return fmt.Sprintf("%.0f", x/1000)
}

func rangePct(xs []float64) string {
	s := Summarize(xs)
	if s.N == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f-%.0f", s.Min, s.Max)
}

func medianInt(xs []int64) string {
	if len(xs) == 0 {
		return "–"
	}
	f := make([]float64, len(xs))
	for i, x := range xs {
		f[i] = float64(x)
	}
	return fmt.Sprintf("%.0f", Summarize(f).Median)
}

func label(c Case) string { return fmt.Sprintf("(%s) %s", c.ID, c.Name) }

// Markdown renders the report as the body of the "## Dataplane" section
// (without the heading).
func (r *Report) Markdown() string {
	var b strings.Builder
	s := r.Settings
	fmt.Fprintf(&b, "Measured %s with:\n\n    %s\n\n", r.Date.UTC().Format("2006-01-02 15:04 MST"), r.Command)
	fmt.Fprintf(&b, "Machine: %s. Everything (iperf3 client and server, trafgen, both gateways, softirqs) shares the same CPUs; "+
		"`vm_busy` is the whole-VM busy share from /proc/stat over each run (100 = all CPUs busy).\n\n", r.Machine)
	fmt.Fprintf(&b, "Topology: deploy/topology (hA — gwA — rtr — gwB — hB), MTU %d, offloads: %s. "+
		"Every case runs on the same topology with the same settings; only what joins gwA's and gwB's ports changes.\n\n", s.MTU, s.Offloads)

	b.WriteString("Cases:\n\n")
	for _, res := range r.Results {
		fmt.Fprintf(&b, "- **%s**: %s", label(res.Case), res.Case.Desc)
		if res.Skipped != "" {
			fmt.Fprintf(&b, ". **Not run:** %s", res.Skipped)
		}
		b.WriteString("\n")
		for _, n := range res.Notes {
			fmt.Fprintf(&b, "  - %s\n", n)
		}
		for _, e := range res.Errors {
			fmt.Fprintf(&b, "  - error: %s\n", e)
		}
		for _, v := range res.Conn {
			for _, e := range v.Errors {
				fmt.Fprintf(&b, "  - connections%s: %s\n", variantSuffix(v.Variant), e)
			}
		}
	}

	a, wg := r.result(CaseKernel.ID), r.result(CaseWireguard.ID)
	fmt.Fprintf(&b, "\n### TCP throughput hA → hB (iperf3 -t %d -O %d, %d runs; Gbit/s at the receiver)\n\n",
		int(s.Duration.Seconds()), int(s.Omit.Seconds()), s.Runs)
	b.WriteString("Appliance CPU: utime+stime of the appliance processes in gwA and gwB (tcpincd, wireguard-go) per GB arriving at hB:eth0; " +
		"syscalls: theirs (perf stat, raw_syscalls:sys_enter) per TCP segment hA or hB sent (their OutSegs: one per segment, also inside a GSO or GRO super-packet), each of which crossed both gateways; medians over runs. " +
		"Softirq work outside their system calls is in neither (the kernel's forwarding in (a), the AF_XDP copy-mode receive); the receive work the kernel does at the end of their sends counts as their CPU: see bench/appcost.go.\n\n")
	b.WriteString("| case | streams | min | **median** | max | retransmits (median) | vm_busy % | vs (a) | vs (b) | appliance CPU s/GB | syscalls/frame |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, res := range r.Results {
		if res.Skipped != "" {
			continue
		}
		streams := make([]int, 0, len(res.TCP))
		for n := range res.TCP {
			streams = append(streams, n)
		}
		sort.Ints(streams)
		for _, n := range streams {
			t := res.TCP[n]
			sm := Summarize(t.Gbps)
			fmt.Fprintf(&b, "| %s | %d | %s | **%s** | %s | %s | %s | %s | %s | %s | %s |\n",
				label(res.Case), n, f2(sm.Min), f2(sm.Median), f2(sm.Max), medianInt(t.Retransmits), rangePct(t.Busy),
				ratio(Ratio(sm.Median, tcpMedian(a, n))), ratio(Ratio(sm.Median, tcpMedian(wg, n))),
				f2(SummarizeFinite(t.CPUPerGB).Median), f2(SummarizeFinite(t.SyscallsPerFrame).Median))
		}
	}

	fmt.Fprintf(&b, "\n### Small packets hA → hB (trafgen -P %d, %d-byte UDP frames, %d s after %d s warm-up, %d runs; kpps)\n\n",
		s.TrafgenCPUs, s.FrameLen, int(s.PPSDuration.Seconds()), int(s.PPSWarmup.Seconds()), s.Runs)
	b.WriteString("Offered = frames leaving hA:eth0; forwarded = frames arriving at hB:eth0, per second. " +
		"hA:eth0 has txqueuelen 16 during these runs (trafgen gives up when frames queued there fill its send buffer: bench/harness.go).\n\n")
	b.WriteString("| case | offered (median) | forwarded min | **median** | max | vm_busy % | vs (a) | vs (b) |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	for _, res := range r.Results {
		if res.Skipped != "" || res.PPS == nil {
			continue
		}
		p := res.PPS
		fs := Summarize(p.Forwarded)
		fmt.Fprintf(&b, "| %s | %s | %s | **%s** | %s | %s | %s | %s |\n",
			label(res.Case), kpps(Summarize(p.Offered).Median), kpps(fs.Min), kpps(fs.Median), kpps(fs.Max),
			rangePct(p.Busy), ratio(Ratio(fs.Median, ppsMedian(a))), ratio(Ratio(fs.Median, ppsMedian(wg))))
	}
	r.connMarkdown(&b)
	return b.String()
}

func connLabel(c Case, v *ConnVariant) string {
	if v.Variant == "" {
		return label(c)
	}
	return label(c) + ", " + v.Variant
}

// medianOf is the median over runs of one field of ConnStats.
func medianOf(runs []ConnStats, f func(ConnStats) float64) float64 {
	xs := make([]float64, len(runs))
	for i, s := range runs {
		xs[i] = f(s)
	}
	return Summarize(xs).Median
}

func us(x float64) string {
	if math.IsNaN(x) {
		return "–"
	}
	return fmt.Sprintf("%.0f", x)
}

func count(x float64) string {
	if math.IsNaN(x) {
		return "–"
	}
	return fmt.Sprintf("%.0f", x)
}

// String is the counters as the report prints them.
func (c *EngineCounts) String() string {
	if c == nil {
		return "–"
	}
	share := "–"
	if c.Encrypted > 0 {
		share = fmt.Sprintf("%.0f %%", 100*float64(c.Resumed)/float64(c.Encrypted))
	}
	return fmt.Sprintf("%d encrypted, %d resumed (%s), %d fallback, %d failed", c.Encrypted, c.Resumed, share, c.Fallback, c.Failed)
}

func (r *Report) connMarkdown(b *strings.Builder) {
	s := r.Settings
	var plain *ConnVariant
	if a := r.result(CaseKernel.ID); a != nil && len(a.Conn) > 0 {
		plain = a.Conn[0]
	}
	have := false
	for _, res := range r.Results {
		if res.Skipped == "" && len(res.Conn) > 0 {
			have = true
		}
	}
	if !have && r.X25519 == nil {
		return
	}
	fmt.Fprintf(b, "\n### New connections per second hA → hB (%d in flight, %d s per run, %d runs)\n\n",
		s.ConnConcurrency, int(s.ConnDuration.Seconds()), s.Runs)
	b.WriteString("Each connection: connect, a 4-byte request, the server's 4-byte answer at once, the client closes. " +
		"`tcpinc-bench` itself is the client (in hA) and the server (in hB, 8 ports round robin). " +
		"Latency is from the start of connect() to the first response byte, percentiles over all connections of a run, median over runs. " +
		"Engine: gwA's tcpincd counters over the rate runs (admin API). " +
		"Appliance CPU: utime+stime of the appliance processes in both gateways per completed connection, median over runs (bench/appcost.go).\n\n")
	b.WriteString("| case | conn/s min | **median** | max | latency p50 µs | p99 µs | failed | vm_busy % | vs (a) | appliance CPU µs/conn | engine (gwA) |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	plainRate := math.NaN()
	if plain != nil {
		plainRate = medianOf(plain.Rate, ConnStats.Rate)
	}
	for _, res := range r.Results {
		if res.Skipped != "" {
			continue
		}
		for _, v := range res.Conn {
			if len(v.Rate) == 0 {
				fmt.Fprintf(b, "| %s | – | – | – | – | – | – | – | – | – | %s |\n", connLabel(res.Case, v), v.RateEngine)
				continue
			}
			rates := make([]float64, len(v.Rate))
			failed := 0
			for i, st := range v.Rate {
				rates[i] = st.Rate()
				failed += st.Errors
			}
			sm := Summarize(rates)
			fmt.Fprintf(b, "| %s | %s | **%s** | %s | %s | %s | %d | %s | %s | %s | %s |\n",
				connLabel(res.Case, v), count(sm.Min), count(sm.Median), count(sm.Max),
				us(medianOf(v.Rate, func(s ConnStats) float64 { return s.FirstByte.P50 })),
				us(medianOf(v.Rate, func(s ConnStats) float64 { return s.FirstByte.P99 })),
				failed, rangePct(v.Busy), ratio(Ratio(sm.Median, plainRate)), us(SummarizeFinite(v.CPUPerConn).Median), v.RateEngine)
		}
	}
	if x := r.X25519; x != nil {
		if x.Err != "" {
			fmt.Fprintf(b, "\nX25519 limit: not measured: %s\n", x.Err)
		} else {
			fmt.Fprintf(b, "\n**X25519 limit** (one key generation + one ECDH with the appliance's own X25519, appliance/tcpcrypt, measured by the harness before the first case, "+
				"vm_busy %.0f %% just before): **%.0f** per second on 1 core, **%.0f** on %d cores. "+
				"A fresh connection costs one of these on each appliance; with both appliances on these %d cores that is at most "+
				"**%.0f** fresh connections per second from public-key work alone.\n",
				x.IdleBusy, x.One, x.All, x.Cores, x.Cores, x.All/2)
		}
	}

	fmt.Fprintf(b, "\n### First-byte delay hA → hB (%d sequential connections, µs)\n\n", s.FirstByteCount)
	b.WriteString("One connection at a time, as above: connect() is the three-way handshake as the client sees it; " +
		"first byte is from the start of connect() to the first byte of the answer.\n\n")
	b.WriteString("| case | connect() p50 | p99 | **first byte p50** | p99 | first byte − connect() p50 | extra over (a) p50 | engine (gwA) |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	plainFB := math.NaN()
	if plain != nil && plain.FirstByte != nil {
		plainFB = plain.FirstByte.FirstByte.P50
	}
	for _, res := range r.Results {
		if res.Skipped != "" {
			continue
		}
		for _, v := range res.Conn {
			f := v.FirstByte
			if f == nil {
				continue
			}
			extra := "–"
			if !math.IsNaN(plainFB) {
				extra = fmt.Sprintf("%+.0f µs", f.FirstByte.P50-plainFB)
			}
			fmt.Fprintf(b, "| %s | %s | %s | **%s** | %s | %s | %s | %s |\n",
				connLabel(res.Case, v), us(f.Connect.P50), us(f.Connect.P99), us(f.FirstByte.P50), us(f.FirstByte.P99),
				us(f.FirstByte.P50-f.Connect.P50), extra, v.FirstByteEngine)
		}
	}
}

// NotesHeading starts a hand-written subsection that ReplaceSection keeps
// when the generated part of the section is rewritten.
const NotesHeading = "### Notes"

// ReplaceSection returns doc with the body of the level-2 section whose
// heading line is heading replaced by body. Other sections are untouched. A
// "### Notes" subsection of the old body is kept (after the new body). If
// the section does not exist it is appended at the end of doc.
func ReplaceSection(doc, heading, body string) string {
	body = strings.TrimRight(body, "\n") + "\n"
	lines := strings.SplitAfter(doc, "\n")
	start := -1
	for i, l := range lines {
		if strings.TrimRight(l, "\r\n") == heading {
			start = i
			break
		}
	}
	if start < 0 {
		out := strings.TrimRight(doc, "\n")
		if out != "" {
			out += "\n\n"
		}
		return out + heading + "\n\n" + body
	}
	end := len(lines)
	for i := start + 1; i < len(lines); i++ {
		if strings.HasPrefix(lines[i], "## ") || strings.TrimRight(lines[i], "\r\n") == "##" {
			end = i
			break
		}
	}
	old := strings.Join(lines[start+1:end], "")
	keep := ""
	if i := strings.Index("\n"+old, "\n"+NotesHeading+"\n"); i >= 0 {
		keep = "\n" + strings.TrimRight(old[i:], "\n") + "\n"
	}
	var b strings.Builder
	b.WriteString(strings.TrimRight(strings.Join(lines[:start+1], ""), "\n"))
	b.WriteString("\n\n")
	b.WriteString(body)
	b.WriteString(keep)
	if end < len(lines) {
		b.WriteString("\n")
		b.WriteString(strings.Join(lines[end:], ""))
	}
	return b.String()
}
