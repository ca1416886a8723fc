// Package bench is tcpinc's dataplane benchmark harness: it runs iperf3, a
// small-packet generator (trafgen) and its own short-connection load
// (connection rate and first-byte delay) hA -> hB through the standard
// topology (deploy/topology) for several cases side by side in one
// invocation: kernel forwarding, wireguard-go between the gateways, tcpincd
// passing through with and without its XDP fast path, and tcpincd
// encrypting (connections with resumption off and on, beside the X25519
// keygen+ECDH rate). It reports min/median/max over runs, ratios to the
// anchors, whole-VM CPU use and the appliance processes' CPU per GB and
// system calls per frame (appcost.go), as markdown (bench/RESULTS.md) and
// as JSON (Report.JSON).
//
// The parsing, statistics and report code runs anywhere; Run needs root and
// the tools .ci/run installs (iperf3, trafgen from netsniff-ng, nft, ethtool).
package bench

import (
	"math"
	"sort"
)

// Summary is min/median/max of a sample.
type Summary struct {
	N                int
	Min, Median, Max float64
}

// Summarize returns min/median/max of xs (the median of an even count is the
// mean of the two middle values). An empty sample gives N == 0 and NaNs.
func Summarize(xs []float64) Summary {
	if len(xs) == 0 {
		return Summary{Min: math.NaN(), Median: math.NaN(), Max: math.NaN()}
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return Summary{N: n, Min: s[0], Median: med, Max: s[n-1]}
}

// Ratio returns a/b, or NaN when either is missing or b is zero.
func Ratio(a, b float64) float64 {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return math.NaN()
	}
	return a / b
}

// SummarizeFinite is Summarize over the values of xs that are not NaN (runs
// where a quantity could not be measured).
func SummarizeFinite(xs []float64) Summary {
	var keep []float64
	for _, x := range xs {
		if !math.IsNaN(x) {
			keep = append(keep, x)
		}
	}
	return Summarize(keep)
}
