package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"sort"
	"sync"
	"time"
)

// The connection-rate load: many short TCP connections hA -> hB, each
// connect, one 4-byte request, one 4-byte response, close. The bench binary
// runs both ends itself (ConnTool), re-executed inside hA and hB.

var (
	connRequest  = []byte("ping")
	connResponse = []byte("pong")
)

// ConnClientConfig is one client run.
type ConnClientConfig struct {
	// Addr is the server's address; Ports consecutive ports from Port are
	// used round robin, so the client's TIME_WAIT sockets spread over that
	// many 4-tuple spaces.
	Addr  netip.Addr
	Port  uint16
	Ports int
	// Concurrency connections are in flight at once.
	Concurrency int
	// Duration bounds a rate run; Count bounds a sequential run (the first
	// that is non-zero wins: Count when set).
	Duration time.Duration
	Count    int
	// Timeout per connection (connect to last response byte).
	Timeout time.Duration
}

// Latencies are percentiles of one latency sample, in microseconds.
type Latencies struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
}

// ConnStats is one client run's result, as the client prints it (JSON).
type ConnStats struct {
	Conns      int     `json:"conns"` // completed: response read
	Errors     int     `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	Seconds    float64 `json:"seconds"`
	// Connect is connect() alone (the TCP three-way handshake as the client
	// sees it); FirstByte is from before connect() to the first response
	// byte, the request sent as soon as connect() returned.
	Connect   Latencies `json:"connect_us"`
	FirstByte Latencies `json:"first_byte_us"`
}

// Rate is completed connections per second.
func (s ConnStats) Rate() float64 {
	if s.Seconds <= 0 {
		return math.NaN()
	}
	return float64(s.Conns) / s.Seconds
}

// Percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// xs, which it sorts in place; NaN for an empty sample.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 || p <= 0 || p > 100 || math.IsNaN(p) {
		return math.NaN()
	}
	sort.Float64s(xs)
	i := int(math.Ceil(p/100*float64(len(xs)))) - 1
	if i < 0 {
		i = 0
	}
	return xs[i]
}

// ParseConnStats decodes a client's JSON line and checks it is complete.
func ParseConnStats(js []byte) (ConnStats, error) {
	var s ConnStats
	if err := json.Unmarshal(js, &s); err != nil {
		return ConnStats{}, fmt.Errorf("parse conn client output: %w", err)
	}
	if s.Conns < 0 || s.Errors < 0 || !(s.Seconds > 0) || math.IsInf(s.Seconds, 0) {
		return ConnStats{}, fmt.Errorf("conn client output: bad counts or time: %+v", s)
	}
	if s.Conns == 0 {
		msg := s.FirstError
		if msg == "" {
			msg = "no connection completed"
		}
		return s, fmt.Errorf("conn client: 0 connections, %d errors: %s", s.Errors, msg)
	}
	return s, nil
}

// RunConnClient runs the load and returns its statistics.
func RunConnClient(ctx context.Context, cfg ConnClientConfig) (ConnStats, error) {
	if !cfg.Addr.IsValid() || cfg.Port == 0 {
		return ConnStats{}, errors.New("conn client: no server address")
	}
	if cfg.Ports < 1 {
		cfg.Ports = 1
	}
	if cfg.Concurrency < 1 {
		cfg.Concurrency = 1
	}
	if cfg.Count <= 0 && cfg.Duration <= 0 {
		return ConnStats{}, errors.New("conn client: need a count or a duration")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	var (
		mu         sync.Mutex
		next       int // connections started (for Count and the port)
		connectUs  []float64
		firstUs    []float64
		errs       int
		firstError string
	)
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if ctx.Err() != nil {
			return 0, false
		}
		if cfg.Count > 0 {
			if next >= cfg.Count {
				return 0, false
			}
		} else if !time.Now().Before(deadline) {
			return 0, false
		}
		next++
		return next - 1, true
	}
	var wg sync.WaitGroup
	for w := 0; w < cfg.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine, mineFirst []float64
			for {
				i, ok := take()
				if !ok {
					break
				}
				port := cfg.Port + uint16(i%cfg.Ports)
				c, f, err := oneConn(ctx, netip.AddrPortFrom(cfg.Addr, port), cfg.Timeout)
				if err != nil {
					mu.Lock()
					errs++
					if firstError == "" {
						firstError = err.Error()
					}
					mu.Unlock()
					continue
				}
				mine = append(mine, float64(c.Microseconds()))
				mineFirst = append(mineFirst, float64(f.Microseconds()))
			}
			mu.Lock()
			connectUs = append(connectUs, mine...)
			firstUs = append(firstUs, mineFirst...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	s := ConnStats{
		Conns: len(firstUs), Errors: errs, FirstError: firstError, Seconds: time.Since(start).Seconds(),
		Connect:   Latencies{P50: Percentile(connectUs, 50), P99: Percentile(connectUs, 99)},
		FirstByte: Latencies{P50: Percentile(firstUs, 50), P99: Percentile(firstUs, 99)},
	}
	if s.Conns == 0 {
		s.Connect, s.FirstByte = Latencies{}, Latencies{} // JSON has no NaN
	}
	return s, nil
}

// oneConn makes one connection: connect, request, response, then the
// client closes first (its TIME_WAIT stays in hA).
func oneConn(ctx context.Context, dst netip.AddrPort, timeout time.Duration) (connect, firstByte time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	t0 := time.Now()
	c, err := d.DialContext(ctx, "tcp4", dst.String())
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	connect = time.Since(t0)
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := c.Write(connRequest); err != nil {
		return 0, 0, err
	}
	buf := make([]byte, len(connResponse))
	n, err := io.ReadAtLeast(c, buf, 1)
	if err != nil {
		return 0, 0, err
	}
	firstByte = time.Since(t0)
	if _, err := io.ReadFull(c, buf[n:]); err != nil {
		return 0, 0, err
	}
	return connect, firstByte, nil
}

// ServeConns answers every connection on the listeners: it reads the
// request, writes the response at once, and closes when the client has.
// It returns when ctx ends.
func ServeConns(ctx context.Context, lns []net.Listener) {
	var wg sync.WaitGroup
	for _, ln := range lns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						continue
					}
					time.Sleep(time.Millisecond) // EMFILE and the like
					continue
				}
				go serveOne(c)
			}
		}()
	}
	<-ctx.Done()
	for _, ln := range lns {
		ln.Close()
	}
	wg.Wait()
}

func serveOne(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, len(connRequest))
	if _, err := io.ReadFull(c, buf); err != nil {
		return
	}
	if _, err := c.Write(connResponse); err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, c) // until the client's FIN
}

// ConnTool is the bench binary's hidden subcommands:
//
//	conn-server -addr IP -port P -ports N   (serves until killed; prints "listening")
//	conn-client -addr IP -port P -ports N -c C (-t D | -n N)   (prints ConnStats as JSON)
func ConnTool(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("conn tool: want conn-server or conn-client")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	addr := fs.String("addr", "", "server IPv4 address")
	port := fs.Uint("port", 7000, "first server port")
	ports := fs.Int("ports", 8, "number of consecutive server ports")
	conc := fs.Int("c", 16, "concurrent connections (client)")
	dur := fs.Duration("t", 0, "run for this long (client)")
	count := fs.Int("n", 0, "make this many connections (client; overrides -t)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	a, err := netip.ParseAddr(*addr)
	if err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	if *port == 0 || *port+uint(*ports) > 65536 || *ports < 1 {
		return fmt.Errorf("-port %d -ports %d out of range", *port, *ports)
	}
	switch args[0] {
	case "conn-server":
		var lns []net.Listener
		for i := 0; i < *ports; i++ {
			ln, err := net.Listen("tcp4", netip.AddrPortFrom(a, uint16(*port)+uint16(i)).String())
			if err != nil {
				for _, l := range lns {
					l.Close()
				}
				return err
			}
			lns = append(lns, ln)
		}
		fmt.Fprintln(stdout, "listening")
		ServeConns(ctx, lns)
		return nil
	case "conn-client":
		s, err := RunConnClient(ctx, ConnClientConfig{Addr: a, Port: uint16(*port), Ports: *ports,
			Concurrency: *conc, Duration: *dur, Count: *count})
		if err != nil {
			return err
		}
		return json.NewEncoder(stdout).Encode(s)
	}
	return fmt.Errorf("conn tool: unknown subcommand %q", args[0])
}
