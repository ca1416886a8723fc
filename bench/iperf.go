package bench

import (
	"encoding/json"
	"errors"
	"fmt"
)

// IperfResult is what the report needs from one `iperf3 -J` client run.
type IperfResult struct {
	// ReceivedBps is the goodput at the receiver (end.sum_received), the
	// number the bench tables report.
	ReceivedBps float64
	SentBps     float64
	Retransmits int64
	Streams     int
	// HostCPU and RemoteCPU are iperf3's own CPU use (percent of one CPU).
	HostCPU, RemoteCPU float64
}

// ErrIperf is returned for an iperf3 run that reported an error.
var ErrIperf = errors.New("iperf3 error")

// ParseIperf decodes the JSON that `iperf3 -c ... -J` prints.
func ParseIperf(js []byte) (IperfResult, error) {
	var doc struct {
		Start struct {
			TestStart struct {
				NumStreams int `json:"num_streams"`
			} `json:"test_start"`
		} `json:"start"`
		End struct {
			SumSent *struct {
				BitsPerSecond float64 `json:"bits_per_second"`
				Retransmits   int64   `json:"retransmits"`
			} `json:"sum_sent"`
			SumReceived *struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
			CPU struct {
				HostTotal   float64 `json:"host_total"`
				RemoteTotal float64 `json:"remote_total"`
			} `json:"cpu_utilization_percent"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(js, &doc); err != nil {
		return IperfResult{}, fmt.Errorf("parse iperf3 json: %w", err)
	}
	if doc.Error != "" {
		return IperfResult{}, fmt.Errorf("%w: %s", ErrIperf, doc.Error)
	}
	if doc.End.SumReceived == nil || doc.End.SumSent == nil {
		return IperfResult{}, fmt.Errorf("%w: no end.sum_sent/sum_received (run cut short?)", ErrIperf)
	}
	return IperfResult{
		ReceivedBps: doc.End.SumReceived.BitsPerSecond,
		SentBps:     doc.End.SumSent.BitsPerSecond,
		Retransmits: doc.End.SumSent.Retransmits,
		Streams:     doc.Start.TestStart.NumStreams,
		HostCPU:     doc.End.CPU.HostTotal,
		RemoteCPU:   doc.End.CPU.RemoteTotal,
	}, nil
}
