package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"github.com/tcpinc/tcpinc/appliance/admin"
)

// flowRate is one flow's rates between two listings (flows --rate): the
// flow as the second listing shows it, the seconds of the daemon's clock
// between its two listings (the difference of its age_seconds) and the bits
// per second it carried each way; nil rates when they are unknown or not
// counted (a plain flow).
type flowRate struct {
	admin.FlowDoc
	RateSeconds float64  `json:"rate_seconds"`
	BitsIn      *float64 `json:"rate_in_bits_per_second"`
	BitsOut     *float64 `json:"rate_out_bits_per_second"`
}

// flowRates takes a second listing wait after the first (before) and
// prints the rates of the flows in both.
func (cl *cli) flowRates(q admin.FlowQuery, before []admin.FlowDoc, wait time.Duration) error {
	time.Sleep(wait)
	// The second listing gets its own --timeout: wait may be longer.
	ctx, cancel := context.WithTimeout(context.Background(), cl.timeout)
	defer cancel()
	after, err := cl.c.AllFlows(ctx, q)
	if err != nil {
		return err
	}
	rs := rates(before, after)
	if cl.json {
		return cl.printJSON(rs)
	}
	writeRates(cl.out, rs, wait, cl.verbose)
	return nil
}

// rates pairs the flows of two listings by ID (unique since tcpincd
// started) and returns those in both, busiest first (bits in and out).
func rates(before, after []admin.FlowDoc) []flowRate {
	old := make(map[string]*admin.FlowDoc, len(before))
	for i := range before {
		old[before[i].ID] = &before[i]
	}
	rs := []flowRate{}
	for _, f := range after {
		b := old[f.ID]
		if b == nil {
			continue
		}
		// The daemon's clock, to the millisecond of age_seconds: request
		// latency and paging do not distort it.
		r := flowRate{FlowDoc: f, RateSeconds: math.Round((f.AgeSeconds-b.AgeSeconds)*1000) / 1000}
		// Only an encrypted flow's bytes are counted (the engine counts
		// the plaintext it seals and opens; a plain flow's data may go
		// by the kernel fast path). Counters that went back are not the
		// same flow's; guard anyway.
		if f.Encrypted && r.RateSeconds > 0 && f.BytesIn >= b.BytesIn && f.BytesOut >= b.BytesOut {
			in := 8 * float64(f.BytesIn-b.BytesIn) / r.RateSeconds
			out := 8 * float64(f.BytesOut-b.BytesOut) / r.RateSeconds
			r.BitsIn, r.BitsOut = &in, &out
		}
		rs = append(rs, r)
	}
	slices.SortStableFunc(rs, func(a, b flowRate) int { return cmp.Compare(b.total(), a.total()) })
	return rs
}

// total is the flow's bits per second both ways, -1 when unknown.
func (r *flowRate) total() float64 {
	if r.BitsIn == nil {
		return -1
	}
	return *r.BitsIn + *r.BitsOut
}

// writeRates is the flows screen with each flow's rates.
func writeRates(w io.Writer, rs []flowRate, wait time.Duration, verbose bool) {
	if len(rs) == 0 {
		fmt.Fprintf(w, "no flows in both listings (%s apart)\n", wait)
		return
	}
	fmt.Fprintf(w, "%d %s in both listings, %s apart; rates by the daemon's clock, busiest first\n",
		len(rs), plural(len(rs), "flow", "flows"), wait)
	for i := range rs {
		r := &rs[i]
		fmt.Fprintln(w)
		writeFlowLines(w, &r.FlowDoc, verbose)
		switch {
		case !r.Encrypted:
			fmt.Fprintln(w, "  rate: not counted (bytes are counted for encrypted flows only)")
			continue
		case r.BitsIn == nil:
			fmt.Fprintln(w, "  rate: unknown (the counters went back, or the daemon's clock did not move)")
			continue
		}
		fmt.Fprintf(w, "  rate: %s in, %s out (over %gs)\n", bitRate(*r.BitsIn), bitRate(*r.BitsOut), r.RateSeconds)
	}
}

// bitRate formats bits per second as the status page does: bit/s, kbit/s,
// Mbit/s, Gbit/s (powers of 1000), one decimal below 10.
func bitRate(v float64) string {
	units := [...]string{"bit/s", "kbit/s", "Mbit/s", "Gbit/s"}
	i := 0
	for v >= 1000 && i < len(units)-1 {
		v /= 1000
		i++
	}
	if i > 0 && v < 10 {
		return fmt.Sprintf("%.1f %s", v, units[i])
	}
	return fmt.Sprintf("%.0f %s", v, units[i])
}
