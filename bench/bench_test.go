package bench

import (
	"errors"
	"math"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// A trimmed `iperf3 -c ... -J -P 4` output of iperf3 3.12 (the fields the
// parser reads, in their real nesting, among fields it must ignore).
const iperfJSON = `{
	"start": {"connected": [{"socket": 5}], "version": "iperf 3.12",
		"test_start": {"protocol": "TCP", "num_streams": 4, "blksize": 131072, "omit": 1, "duration": 10}},
	"intervals": [{"sum": {"bits_per_second": 1.9e9}}],
	"end": {
		"streams": [{"sender": {"bits_per_second": 4.5e8}}],
		"sum_sent": {"start": 0, "end": 10.0, "bytes": 2232000000, "bits_per_second": 1785600000.5, "retransmits": 211, "sender": true},
		"sum_received": {"start": 0, "end": 10.04, "bytes": 2230000000, "bits_per_second": 1776892430.2, "sender": true},
		"cpu_utilization_percent": {"host_total": 61.5, "host_user": 1.2, "host_system": 60.3, "remote_total": 48.25, "remote_user": 0.5, "remote_system": 47.7},
		"sender_tcp_congestion": "cubic"
	}
}`

func TestParseIperf(t *testing.T) {
	r, err := ParseIperf([]byte(iperfJSON))
	if err != nil {
		t.Fatal(err)
	}
	want := IperfResult{ReceivedBps: 1776892430.2, SentBps: 1785600000.5, Retransmits: 211, Streams: 4, HostCPU: 61.5, RemoteCPU: 48.25}
	if r != want {
		t.Errorf("got %+v\nwant %+v", r, want)
	}
}

func TestParseIperfErrors(t *testing.T) {
	for _, c := range []struct {
		name, js string
		iperf    bool // want ErrIperf
	}{
		{"server busy", `{"start": {}, "intervals": [], "end": {}, "error": "the server is busy running a test. try again later"}`, true},
		{"cut short", `{"start": {"test_start": {"num_streams": 1}}, "end": {}}`, true},
		{"not json", `iperf3: error - unable to connect to server`, false},
		{"empty", ``, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseIperf([]byte(c.js))
			if err == nil {
				t.Fatal("want error")
			}
			if got := errors.Is(err, ErrIperf); got != c.iperf {
				t.Errorf("errors.Is(ErrIperf) = %v for %v", got, err)
			}
		})
	}
}

func FuzzParseIperf(f *testing.F) {
	f.Add([]byte(iperfJSON))
	f.Add([]byte(`{"error":"x"}`))
	f.Add([]byte(`{"end":{"sum_sent":null,"sum_received":{"bits_per_second":"x"}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseIperf(b)
		if err == nil && (math.IsNaN(r.ReceivedBps) || math.IsInf(r.ReceivedBps, 0)) {
			t.Errorf("accepted a non-finite rate: %+v", r)
		}
	})
}

func TestSummarize(t *testing.T) {
	for _, c := range []struct {
		name string
		in   []float64
		want Summary
	}{
		{"one", []float64{2}, Summary{1, 2, 2, 2}},
		{"odd unsorted", []float64{3, 1, 2}, Summary{3, 1, 2, 3}},
		{"even", []float64{4, 1, 3, 2}, Summary{4, 1, 2.5, 4}},
		{"ties", []float64{5, 5, 1}, Summary{3, 1, 5, 5}},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := append([]float64(nil), c.in...)
			if got := Summarize(c.in); got != c.want {
				t.Errorf("got %+v want %+v", got, c.want)
			}
			for i := range in {
				if in[i] != c.in[i] {
					t.Fatal("Summarize reordered its input")
				}
			}
		})
	}
	if s := Summarize(nil); s.N != 0 || !math.IsNaN(s.Median) {
		t.Errorf("empty: %+v", s)
	}
	if r := Ratio(1, 0); !math.IsNaN(r) {
		t.Errorf("Ratio(1,0) = %v", r)
	}
	if r := Ratio(3, 2); r != 1.5 {
		t.Errorf("Ratio(3,2) = %v", r)
	}
}

func TestProcStat(t *testing.T) {
	const stat = `cpu  1000 10 500 8000 100 20 30 40 0 0
cpu0 500 5 250 4000 50 10 15 20 0 0
intr 12345
`
	c, err := ParseProcStat([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	// total = 1000+10+500+8000+100+20+30+40; idle = 8000+100
	if c.Total != 9700 || c.Busy != 1600 {
		t.Errorf("got %+v", c)
	}
	later := CPUTimes{Busy: c.Busy + 150, Total: c.Total + 200}
	if got := BusyPercent(c, later); got != 75 {
		t.Errorf("BusyPercent = %v, want 75", got)
	}
	if got := BusyPercent(c, c); got != 0 {
		t.Errorf("no time passed: %v", got)
	}
	if _, err := ParseProcStat([]byte("intr 1\n")); err == nil {
		t.Error("no cpu line: want error")
	}
	if _, err := ParseProcStat([]byte("cpu 1 x 3 4\n")); err == nil {
		t.Error("bad number: want error")
	}
	if _, err := ReadCPUTimes(); err != nil {
		t.Errorf("this machine's /proc/stat: %v", err)
	}
}

func TestParseLinkJSON(t *testing.T) {
	js := `[{"ifindex":2,"link_index":2,"ifname":"eth0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"link_type":"ether","address":"ca:fe:00:00:00:01","broadcast":"ff:ff:ff:ff:ff:ff","stats64":{"rx":{"bytes":1000,"packets":12,"errors":0},"tx":{"bytes":2000,"packets":34,"errors":0}}}]`
	li, err := ParseLinkJSON([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	if li.MAC.String() != "ca:fe:00:00:00:01" || li.RxPackets != 12 || li.TxPackets != 34 || li.RxBytes != 1000 {
		t.Errorf("got %+v", li)
	}
	for _, bad := range []string{`[]`, `[{"address":"zz"}]`, `{`} {
		if _, err := ParseLinkJSON([]byte(bad)); err == nil {
			t.Errorf("%s: want error", bad)
		}
	}
}

func TestTrafgenConfig(t *testing.T) {
	da, _ := net.ParseMAC("02:00:00:00:00:02")
	sa, _ := net.ParseMAC("02:00:00:00:00:01")
	src, dst := netip.MustParseAddr("10.78.1.2"), netip.MustParseAddr("10.78.2.2")
	conf, err := TrafgenConfig(da, sa, src, dst, 60)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"eth(da=02:00:00:00:00:02, sa=02:00:00:00:00:01)",
		"ipv4(saddr=10.78.1.2, daddr=10.78.2.2, ttl=64)", "udp(sp=40000, dp=9)", "fill(0x55, 18)"} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks %q:\n%s", want, conf)
		}
	}
	if _, err := TrafgenConfig(da, sa, src, dst, 41); err == nil {
		t.Error("frame shorter than its headers: want error")
	}
	if _, err := TrafgenConfig(da, sa, netip.MustParseAddr("fd00::1"), dst, 60); err == nil {
		t.Error("IPv6: want error")
	}
}

func TestWireguardConfig(t *testing.T) {
	priv := make([]byte, 32)
	pub := make([]byte, 32)
	priv[0], pub[31] = 0xab, 0x01
	got := WireguardConfig(priv, pub, 51820, netip.MustParseAddrPort("10.78.12.2:51820"),
		[]netip.Prefix{netip.MustParsePrefix("10.78.2.0/24"), netip.MustParsePrefix("fd00:78:2::/64")})
	want := "private_key=ab" + strings.Repeat("00", 31) + "\n" +
		"listen_port=51820\nreplace_peers=true\n" +
		"public_key=" + strings.Repeat("00", 31) + "01\n" +
		"endpoint=10.78.12.2:51820\nreplace_allowed_ips=true\n" +
		"allowed_ip=10.78.2.0/24\nallowed_ip=fd00:78:2::/64\n"
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	for _, c := range []struct {
		resp string
		want int
		ok   bool
	}{
		{"errno=0\n\n", 0, true},
		{"errno=-22\n\n", -22, true},
		{"protocol_version=1\nerrno=0\n\n", 0, true},
		{"\n", 0, false},
		{"errno=x\n\n", 0, false},
	} {
		n, err := ParseUAPIErrno(c.resp)
		if (err == nil) != c.ok || n != c.want {
			t.Errorf("%q: got %d, %v", c.resp, n, err)
		}
	}
}

func sampleReport() *Report {
	return &Report{
		Command: "go run ./cmd/tcpinc-bench -runs 3",
		Date:    time.Date(2026, 11, 25, 23, 0, 0, 0, time.UTC),
		Machine: "Linux 6.18, 2 CPUs, go1.26",
		Settings: Settings{Runs: 3, Streams: []int{1, 4}, Duration: 10 * time.Second, Omit: time.Second,
			PPSDuration: 5 * time.Second, PPSWarmup: time.Second, TrafgenCPUs: 1, FrameLen: 60, MTU: 1500, Offloads: "recipe"},
		Results: []*Result{
			{Case: CaseKernel, TCP: map[int]*TCPRuns{
				1: {Gbps: []float64{1.8, 2.0, 1.9}, Busy: []float64{60, 70, 65}, Retransmits: []int64{1, 2, 3}},
				4: {Gbps: []float64{1.7}, Busy: []float64{80}, Retransmits: []int64{5}},
			}, PPS: &PPSRuns{Offered: []float64{130000}, Forwarded: []float64{129000, 131000, 120000}, Busy: []float64{50}}},
			{Case: CaseWireguard, TCP: map[int]*TCPRuns{
				1: {Gbps: []float64{1.6, 1.5, 1.7}, Busy: []float64{90}, Retransmits: []int64{0}},
			}, PPS: &PPSRuns{Offered: []float64{100000}, Forwarded: []float64{64600}, Busy: []float64{99}},
				Notes: []string{"built from the module proxy"}},
			{Case: CaseFastPath, Skipped: "cmd/tcpincd does not exist yet in this tree"},
		},
	}
}

func TestMarkdown(t *testing.T) {
	md := sampleReport().Markdown()
	for _, want := range []string{
		"    go run ./cmd/tcpinc-bench -runs 3\n",
		"| (a) kernel | 1 | 1.80 | **1.90** | 2.00 | 2 | 60-70 | 1.00× | 1.19× |",
		"| (a) kernel | 4 | 1.70 | **1.70** | 1.70 | 5 | 80-80 | 1.00× | – |",
		"| (b) wireguard-go | 1 | 1.50 | **1.60** | 1.70 | 0 | 90-90 | 0.84× | 1.00× |",
		"| (a) kernel | 130 | 120 | **129** | 131 | 50-50 | 1.00× | 2.00× |",
		"| (b) wireguard-go | 100 | 65 | **65** | 65 | 99-99 | 0.50× | 1.00× |",
		"**Not run:** cmd/tcpincd does not exist yet in this tree",
		"  - built from the module proxy",
		"iperf3 -t 10 -O 1, 3 runs",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "| (c)") {
		t.Error("a skipped case has table rows")
	}
}

func TestReplaceSection(t *testing.T) {
	doc := "# Results\n\nintro\n\n## Crypto\n\ncrypto table\n\n## Dataplane\n\nold numbers\n\n### Notes\n\nhand-written note\n\n## Later\n\nkept\n"
	got := ReplaceSection(doc, "## Dataplane", "new numbers\n")
	want := "# Results\n\nintro\n\n## Crypto\n\ncrypto table\n\n## Dataplane\n\nnew numbers\n\n### Notes\n\nhand-written note\n\n## Later\n\nkept\n"
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	// Idempotent.
	if again := ReplaceSection(got, "## Dataplane", "new numbers\n"); again != got {
		t.Errorf("second replace changed the doc:\n%s", again)
	}
	// The Crypto section is never touched, even when it comes after.
	doc2 := "## Dataplane\n\nold\n## Crypto\n\nc\n"
	if got := ReplaceSection(doc2, "## Dataplane", "n"); got != "## Dataplane\n\nn\n\n## Crypto\n\nc\n" {
		t.Errorf("got %q", got)
	}
	// Missing section: appended; empty doc: created.
	if got := ReplaceSection("## Crypto\n\nc\n", "## Dataplane", "n\n"); got != "## Crypto\n\nc\n\n## Dataplane\n\nn\n" {
		t.Errorf("append: got %q", got)
	}
	if got := ReplaceSection("", "## Dataplane", "n"); got != "## Dataplane\n\nn\n" {
		t.Errorf("empty: got %q", got)
	}
	// "## Dataplane extra" is a different heading.
	if got := ReplaceSection("## Dataplane extra\n\nx\n", "## Dataplane", "n"); !strings.Contains(got, "## Dataplane extra\n\nx\n") {
		t.Errorf("prefix heading replaced: %q", got)
	}
}

func FuzzReplaceSection(f *testing.F) {
	f.Add("# R\n\n## Crypto\n\nc\n\n## Dataplane\n\nold\n", "new")
	f.Add("## Dataplane\n### Notes\nx\n## Crypto\ny", "n\n")
	f.Add("## Dataplane", "0") // heading without a newline (found by fuzzing)
	f.Add("", "")
	f.Fuzz(func(t *testing.T, doc, body string) {
		// A body is generated markdown: no level-1/2 headings, no Notes.
		for _, l := range strings.Split(body, "\n") {
			if strings.HasPrefix(l, "##") && !strings.HasPrefix(l, "###") || strings.HasPrefix(l, "# ") || strings.HasPrefix(l, NotesHeading) {
				return
			}
		}
		if strings.Contains(doc, "\r") || strings.Contains(body, "\r") {
			return
		}
		out := ReplaceSection(doc, "## Dataplane", body)
		// Every other level-2 section survives unchanged.
		for _, sec := range []string{"## Crypto"} {
			if strings.Contains(doc, "\n"+sec+"\n") && !strings.Contains(out, sec+"\n") {
				t.Fatalf("%s lost", sec)
			}
		}
		if !strings.Contains(out, "## Dataplane\n") {
			t.Fatal("no Dataplane heading")
		}
		if ReplaceSection(out, "## Dataplane", body) != out {
			t.Fatal("not idempotent")
		}
	})
}

func TestPortModes(t *testing.T) {
	log := `time=x level=INFO msg="port ready" port=inside iface=in xdp_mode=native bind_mode=copy queues=1
time=x level=INFO msg="port ready" port=outside iface=out xdp_mode=generic bind_mode=copy queues=1
time=x level=INFO msg="tcpincd running" fast_path=true`
	want := "port=inside xdp_mode=native bind_mode=copy queues=1; port=outside xdp_mode=generic bind_mode=copy queues=1"
	if got := portModes(log); got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if got := portModes("nothing"); got != "" {
		t.Errorf("got %q", got)
	}
}

func TestEngineCounters(t *testing.T) {
	log := `time=x level=INFO msg="shutting down" signal=terminated
time=x level=INFO msg=engine queue=0 flows=2 handshakes=2 encrypted=2
time=x level=INFO msg=classifier port=inside`
	if got := engineCounters(log); got != "queue=0 flows=2 handshakes=2 encrypted=2" {
		t.Errorf("got %q", got)
	}
}
