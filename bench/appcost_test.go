package bench

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseProcPidStat(t *testing.T) {
	// A command name with a space and a parenthesis: fields are counted
	// after the last ')'. utime 250, stime 50 ticks: 3 s.
	stat := "4242 (tcp (incd) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 9 0 12345 1000000 500 18446744073709551615\n"
	s, err := ParseProcPidStat([]byte(stat))
	if err != nil || s != 3 {
		t.Fatalf("got %v, %v; want 3 s", s, err)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 (x) S 1 2 3 4 5 6 7 8 9 10 u s"} {
		if _, err := ParseProcPidStat([]byte(bad)); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestParsePerfStatCount(t *testing.T) {
	out := "# started on ...\n\n123456,,raw_syscalls:sys_enter,2000000000,100.00,,\n"
	if n, ok := ParsePerfStatCount(out, syscallEvent); !ok || n != 123456 {
		t.Fatalf("got %d, %v", n, ok)
	}
	if _, ok := ParsePerfStatCount("<not counted>,,raw_syscalls:sys_enter,0,100.00,,\n", syscallEvent); ok {
		t.Fatal("<not counted> parsed as a count")
	}
	if _, ok := ParsePerfStatCount("5,,cycles,1,100.00,,\n", syscallEvent); ok {
		t.Fatal("another event's count taken")
	}
}

func TestParseTCPOutSegs(t *testing.T) {
	snmp := "Ip: Forwarding DefaultTTL\nIp: 1 64\n" +
		"Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors\n" +
		"Tcp: 1 200 120000 -1 42354 42229 87 0 0 443839 441073 0 0 85 0\n" +
		"Udp: InDatagrams OutDatagrams\nUdp: 5 6\n"
	if n, err := ParseTCPOutSegs(snmp); err != nil || n != 441073 {
		t.Fatalf("got %d, %v; want 441073 (not InSegs' 443839)", n, err)
	}
	for _, bad := range []string{
		"",
		"Udp: InDatagrams OutSegs\nUdp: 5 6\n",
		"Tcp: InSegs OutSegs\n",
		"Tcp: InSegs OutSegs\nTcp: 7\n",
		"Tcp: InSegs OutSegs\nTcp: 7 x\n",
	} {
		if n, err := ParseTCPOutSegs(bad); err == nil {
			t.Errorf("%q: got %d, want an error", bad, n)
		}
	}
}

// TestCaseTable: every case says how it joins the ports in exactly one way
// and has a unique letter and name, so adding a case (a port backend) is
// one entry in AllCases.
func TestCaseTable(t *testing.T) {
	ids, names := map[string]bool{}, map[string]bool{}
	for _, c := range AllCases {
		kinds := 0
		for _, k := range []bool{c.Bridge, c.Wireguard, c.Tcpincd != nil} {
			if k {
				kinds++
			}
		}
		if kinds != 1 || c.ID == "" || c.Name == "" || c.Desc == "" || ids[c.ID] || names[c.Name] {
			t.Errorf("case %+v: %d ways to join the ports, or a duplicate/empty id or name", c, kinds)
		}
		ids[c.ID], names[c.Name] = true, true
	}
}

// TestReportJSON: the -json document carries every median with min and
// max, per case, leaves out what was not measured (NaN), and the markdown
// shows the appliance cost columns.
func TestReportJSON(t *testing.T) {
	r := sampleReport()
	r.X25519 = &X25519Limit{Cores: 2, One: 10000, All: 20000}
	r.Results[0].TCP[1].CPUPerGB = []float64{math.NaN(), math.NaN(), math.NaN()}
	r.Results[1].TCP[1].CPUPerGB = []float64{2, 4, 3}
	r.Results[1].TCP[1].SyscallsPerFrame = []float64{0.5, math.NaN(), 0.25}
	r.Results = append(r.Results, &Result{Case: CaseEncrypted, Conn: []*ConnVariant{{
		Variant:    VariantFresh,
		Rate:       []ConnStats{{Conns: 1000, Seconds: 1, FirstByte: Latencies{P50: 900, P99: 2000}}, {Conns: 3000, Seconds: 1, Errors: 2}},
		CPUPerConn: []float64{300, 500},
		FirstByte: &ConnStats{Conns: 200, Connect: Latencies{P50: 100, P99: 300},
			FirstByte: Latencies{P50: 400, P99: 800}},
		RateEngine: &EngineCounts{Encrypted: 4000},
	}}})
	js, err := r.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var doc JSONReport
	if err := json.Unmarshal(js, &doc); err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	if len(doc.Cases) != 4 || doc.Cases[0].ID != "a" || doc.Cases[2].Skipped == "" {
		t.Fatalf("cases %+v", doc.Cases)
	}
	a1 := doc.Cases[0].TCP[0]
	if a1.Streams != 1 || a1.Gbps == nil || a1.Gbps.Median != 1.9 || a1.Gbps.Min != 1.8 || a1.Gbps.Max != 2.0 || a1.CPUPerGB != nil {
		t.Fatalf("kernel, 1 stream: %+v (gbps %+v)", a1, a1.Gbps)
	}
	wg := doc.Cases[1].TCP[0]
	if wg.CPUPerGB == nil || wg.CPUPerGB.Median != 3 || wg.SyscallsPerFrame == nil || wg.SyscallsPerFrame.N != 2 {
		t.Fatalf("wireguard costs %+v %+v", wg.CPUPerGB, wg.SyscallsPerFrame)
	}
	if p := doc.Cases[0].PPS; p == nil || p.Forwarded.Median != 129000 {
		t.Fatalf("pps %+v", p)
	}
	c := doc.Cases[3].Conn[0]
	if c.Variant != VariantFresh || c.Rate.Median != 2000 || c.Failed != 2 || c.FirstByte.FirstByteP50 != 400 || c.RateEngine.Encrypted != 4000 ||
		c.CPUPerConn == nil || c.CPUPerConn.Median != 400 {
		t.Fatalf("conn %+v", c)
	}
	if doc.X25519 == nil || doc.X25519.FreshConnMax != 10000 {
		t.Fatalf("x25519 %+v", doc.X25519)
	}
	md := r.Markdown()
	for _, want := range []string{
		"| vs (b) | appliance CPU s/GB | syscalls/frame |",
		"| (b) wireguard-go | 1 | 1.50 | **1.60** | 1.70 | 0 | 90-90 | 0.84× | 1.00× | 3.00 | 0.38 |",
		"| (a) kernel | 1 | 1.80 | **1.90** | 2.00 | 2 | 60-70 | 1.00× | 1.19× | – | – |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
}

// TestProcCPU reads this process's own CPU time from /proc, and it grows
// with work.
func TestProcCPU(t *testing.T) {
	pid := []int{os.Getpid()}
	c0, err := procCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	x := 0
	for {
		for i := range 1 << 20 {
			x ^= i * i
		}
		c1, err := procCPU(pid)
		if err != nil {
			t.Fatal(err)
		}
		if c1 > c0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU time stayed at %v s after 10 s of work (%d)", c0, x)
		}
	}
}

// TestSyscallCounter: perf, attached to this process, counts the system
// calls it makes. Skipped where perf is not installed (CI does not
// install it; the bench reports no syscalls column then).
func TestSyscallCounter(t *testing.T) {
	if _, err := exec.LookPath("perf"); err != nil {
		t.Skip("perf not installed")
	}
	// perf -p counts the threads that exist when it attaches: make the
	// calls from one of those.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c, err := startSyscalls(context.Background(), []int{os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	for range 2000 {
		syscall.Getppid()
	}
	n, err := c.stop()
	if err != nil {
		t.Skipf("perf cannot count here: %v", err)
	}
	if n < 2000 {
		t.Fatalf("counted %d system calls, want at least the 2000 made", n)
	}
}
