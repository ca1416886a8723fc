package bench

import (
	"encoding/json"
	"math"
	"sort"
	"time"
)

// The -json file: every measured quantity of a run as min/median/max over
// runs (and the runs themselves), per case, for scripts that compare runs.
// Quantities that were not measured are left out (JSON has no NaN).

// JSONSummary is min/median/max of one quantity over runs.
type JSONSummary struct {
	N      int       `json:"n"`
	Min    float64   `json:"min"`
	Median float64   `json:"median"`
	Max    float64   `json:"max"`
	Runs   []float64 `json:"runs"`
}

func jsonSummary(xs []float64) *JSONSummary {
	s := SummarizeFinite(xs)
	if s.N == 0 {
		return nil
	}
	var runs []float64
	for _, x := range xs {
		if !math.IsNaN(x) {
			runs = append(runs, x)
		}
	}
	return &JSONSummary{N: s.N, Min: s.Min, Median: s.Median, Max: s.Max, Runs: runs}
}

// JSONReport is the -json document.
type JSONReport struct {
	Command string       `json:"command"`
	Date    time.Time    `json:"date"`
	Machine string       `json:"machine"`
	X25519  *JSONX25519  `json:"x25519,omitempty"`
	Cases   []JSONResult `json:"cases"`
}

// JSONX25519 is the harness's X25519 limit, keygen+ECDH per second.
type JSONX25519 struct {
	Cores        int     `json:"cores"`
	OneCore      float64 `json:"one_core_per_s"`
	AllCores     float64 `json:"all_cores_per_s"`
	FreshConnMax float64 `json:"fresh_conn_limit_per_s"` // two appliances on these cores
	Err          string  `json:"error,omitempty"`
}

// JSONResult is one case.
type JSONResult struct {
	ID      string     `json:"id"`
	Name    string     `json:"name"`
	Skipped string     `json:"skipped,omitempty"`
	Errors  []string   `json:"errors,omitempty"`
	TCP     []JSONTCP  `json:"tcp,omitempty"`
	PPS     *JSONPPS   `json:"pps,omitempty"`
	Conn    []JSONConn `json:"conn,omitempty"`
}

// JSONTCP is the iperf3 runs at one stream count.
type JSONTCP struct {
	Streams          int          `json:"streams"`
	Gbps             *JSONSummary `json:"gbps,omitempty"`
	Retransmits      *JSONSummary `json:"retransmits,omitempty"`
	VMBusy           *JSONSummary `json:"vm_busy_pct,omitempty"`
	CPUPerGB         *JSONSummary `json:"appliance_cpu_s_per_gb,omitempty"`
	SyscallsPerFrame *JSONSummary `json:"syscalls_per_frame,omitempty"`
}

// JSONPPS is the small-packet runs, frames per second.
type JSONPPS struct {
	Offered   *JSONSummary `json:"offered_pps,omitempty"`
	Forwarded *JSONSummary `json:"forwarded_pps,omitempty"`
	VMBusy    *JSONSummary `json:"vm_busy_pct,omitempty"`
}

// JSONConn is one connection variant: the rate runs and the first-byte run.
type JSONConn struct {
	Variant        string        `json:"variant,omitempty"`
	Rate           *JSONSummary  `json:"conn_per_s,omitempty"`
	LatencyP50     *JSONSummary  `json:"latency_p50_us,omitempty"`
	LatencyP99     *JSONSummary  `json:"latency_p99_us,omitempty"`
	Failed         int           `json:"failed"`
	VMBusy         *JSONSummary  `json:"vm_busy_pct,omitempty"`
	CPUPerConn     *JSONSummary  `json:"appliance_cpu_us_per_conn,omitempty"`
	FirstByte      *JSONFirst    `json:"first_byte,omitempty"`
	RateEngine     *EngineCounts `json:"rate_engine,omitempty"`
	FirstEngine    *EngineCounts `json:"first_byte_engine,omitempty"`
	ConnectionErrs []string      `json:"errors,omitempty"`
}

// JSONFirst is the first-byte run (percentiles over its connections, µs).
type JSONFirst struct {
	Conns        int     `json:"conns"`
	Failed       int     `json:"failed"`
	ConnectP50   float64 `json:"connect_p50_us"`
	ConnectP99   float64 `json:"connect_p99_us"`
	FirstByteP50 float64 `json:"first_byte_p50_us"`
	FirstByteP99 float64 `json:"first_byte_p99_us"`
}

// JSON renders the report as the -json document.
func (r *Report) JSON() ([]byte, error) {
	out := JSONReport{Command: r.Command, Date: r.Date.UTC(), Machine: r.Machine, Cases: []JSONResult{}}
	if x := r.X25519; x != nil {
		out.X25519 = &JSONX25519{Cores: x.Cores, OneCore: finite(x.One), AllCores: finite(x.All), FreshConnMax: finite(x.All / 2), Err: x.Err}
	}
	for _, res := range r.Results {
		jr := JSONResult{ID: res.Case.ID, Name: res.Case.Name, Skipped: res.Skipped, Errors: res.Errors}
		streams := make([]int, 0, len(res.TCP))
		for n := range res.TCP {
			streams = append(streams, n)
		}
		sort.Ints(streams)
		for _, n := range streams {
			t := res.TCP[n]
			retr := make([]float64, len(t.Retransmits))
			for i, x := range t.Retransmits {
				retr[i] = float64(x)
			}
			jr.TCP = append(jr.TCP, JSONTCP{Streams: n, Gbps: jsonSummary(t.Gbps), Retransmits: jsonSummary(retr),
				VMBusy: jsonSummary(t.Busy), CPUPerGB: jsonSummary(t.CPUPerGB), SyscallsPerFrame: jsonSummary(t.SyscallsPerFrame)})
		}
		if p := res.PPS; p != nil {
			jr.PPS = &JSONPPS{Offered: jsonSummary(p.Offered), Forwarded: jsonSummary(p.Forwarded), VMBusy: jsonSummary(p.Busy)}
		}
		for _, v := range res.Conn {
			jc := JSONConn{Variant: v.Variant, VMBusy: jsonSummary(v.Busy), CPUPerConn: jsonSummary(v.CPUPerConn), RateEngine: v.RateEngine, FirstEngine: v.FirstByteEngine, ConnectionErrs: v.Errors}
			var rate, p50, p99 []float64
			for _, st := range v.Rate {
				rate = append(rate, st.Rate())
				p50 = append(p50, st.FirstByte.P50)
				p99 = append(p99, st.FirstByte.P99)
				jc.Failed += st.Errors
			}
			jc.Rate, jc.LatencyP50, jc.LatencyP99 = jsonSummary(rate), jsonSummary(p50), jsonSummary(p99)
			if f := v.FirstByte; f != nil {
				jc.FirstByte = &JSONFirst{Conns: f.Conns, Failed: f.Errors, ConnectP50: finite(f.Connect.P50), ConnectP99: finite(f.Connect.P99),
					FirstByteP50: finite(f.FirstByte.P50), FirstByteP99: finite(f.FirstByte.P99)}
			}
			jr.Conn = append(jr.Conn, jc)
		}
		out.Cases = append(out.Cases, jr)
	}
	return json.MarshalIndent(out, "", "  ")
}

// finite maps NaN and infinities to 0 (JSON cannot carry them; these fields
// are always measured when their object is present).
func finite(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
}
