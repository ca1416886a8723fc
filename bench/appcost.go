package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The appliance's cost per byte and per frame, beside each iperf3 run: on
// 2 shared cores, Gbit/s mixes the hosts' and the gateways' CPU; what the
// gateways' own processes spend per byte does not.
//
// CPU: utime+stime of every appliance process (tcpincd or wireguard-go in
// gwA and gwB) from /proc/<pid>/stat, all threads, before and after the run.
// It counts what runs in those processes' context, user and kernel (their
// system calls, AF_XDP TX, TUN reads and writes), not softirq work done for
// them on other contexts (the AF_XDP copy-mode receive, veth delivery), nor
// the kernel's forwarding in (a), which has no process: (a) shows none.
// It does include receive work the kernel finishes inside their sends: a
// frame written to a veth is taken up by the peer's stack (the next
// gateway's XDP and AF_PACKET receive, or a host's IP and TCP receive, up
// to waking its reader) in the softirq that runs as the send returns, and
// that time is the sender's system time (perf: tcp_data_queue under
// __sys_sendmmsg in tcpincd). wireguard-go's TUN writes pay the same way.
//
// System calls: `perf stat -e raw_syscalls:sys_enter -p <pids>` counting
// (no sampling, no tracing: an in-kernel counter per event, ~0.1-0.5 µs per
// system call while attached), started before and stopped after the run.
// /proc/<pid>/io's syscr/syscw would be cheaper but count only read/write
// style calls, missing sendto, recvmmsg and poll, which are most of what
// these daemons issue. Without perf the column is empty.
//
// Bytes are those arriving at hB:eth0 (the data direction, headers
// included). Frames are the TCP segments hA and hB sent (data and ACKs),
// each of which crossed both appliances: their stacks' OutSegs, which
// counts every segment. A link's packet counters, and TCP InSegs, count a
// super-packet once: with GRO at hB (and GSO from the AF_PACKET port or
// wireguard-go's TUN) one received "packet" is often 20-40 segments, and
// dividing by those made (b), (d) and (f) look 20-40 times dearer per
// frame than (e), whose frames leave the AF_XDP port one by one.

// clockTick is USER_HZ, the unit of /proc/<pid>/stat's utime and stime
// (100 on every Linux architecture Go supports).
const clockTick = 100

// ParseProcPidStat returns utime+stime in seconds from the contents of
// /proc/<pid>/stat. The command name (field 2) may contain spaces and
// parentheses, so fields are counted after its last ')'.
func ParseProcPidStat(b []byte) (float64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/<pid>/stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/<pid>/stat: %d fields after the name", len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/<pid>/stat: utime %q stime %q", f[11], f[12])
	}
	return float64(ut+st) / clockTick, nil
}

// procCPU sums utime+stime of pids, in seconds.
func procCPU(pids []int) (float64, error) {
	var sum float64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, err
		}
		s, err := ParseProcPidStat(b)
		if err != nil {
			return 0, err
		}
		sum += s
	}
	return sum, nil
}

// ParsePerfStatCount returns the count of event from `perf stat -x,`
// output (CSV: value,unit,event,...). ok is false when perf did not count
// it.
func ParsePerfStatCount(out, event string) (n uint64, ok bool) {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(strings.TrimSpace(line), ",")
		if len(f) < 3 || f[2] != event {
			continue
		}
		v, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, false // "<not counted>", "<not supported>"
		}
		return v, true
	}
	return 0, false
}

const syscallEvent = "raw_syscalls:sys_enter"

// syscallCounter is one `perf stat` attached to the appliance processes.
type syscallCounter struct {
	cmd *exec.Cmd
	out bytes.Buffer
}

// startSyscalls attaches perf to pids; nil (no error) when perf is not
// installed or there is nothing to count.
func startSyscalls(ctx context.Context, pids []int) (*syscallCounter, error) {
	if len(pids) == 0 {
		return nil, nil
	}
	perf, err := exec.LookPath("perf")
	if err != nil {
		return nil, nil
	}
	list := make([]string, len(pids))
	for i, p := range pids {
		list[i] = strconv.Itoa(p)
	}
	c := &syscallCounter{}
	// Started with its counters off, and turned on through a control
	// pipe that acknowledges (perf stat --control): counting has begun
	// when start returns. A pause for perf to attach was too short on a
	// loaded machine, and the count too low.
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	ackR, ackW, err := os.Pipe()
	if err != nil {
		ctlR.Close()
		ctlW.Close()
		return nil, err
	}
	defer func() { ctlR.Close(); ctlW.Close(); ackR.Close(); ackW.Close() }()
	c.cmd = exec.CommandContext(ctx, perf, "stat", "-x,", "-e", syscallEvent, "-D", "-1", "--control", "fd:3,4", "-p", strings.Join(list, ","))
	c.cmd.ExtraFiles = []*os.File{ctlR, ackW} // fds 3 and 4
	c.cmd.Stderr = &c.out                     // perf stat writes its counts to stderr
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	if _, err := ctlW.WriteString("enable\n"); err != nil {
		c.kill()
		return nil, err
	}
	_ = ackR.SetReadDeadline(time.Now().Add(10 * time.Second))
	ack := make([]byte, 4)
	if _, err := io.ReadFull(ackR, ack); err != nil || string(ack) != "ack\n" {
		c.kill()
		return nil, fmt.Errorf("perf stat did not acknowledge enabling its counters: %q, %v: %s", ack, err, firstLines(c.out.String(), 3))
	}
	return c, nil
}

// kill ends a perf that will not count.
func (c *syscallCounter) kill() {
	_ = c.cmd.Process.Kill()
	_ = c.cmd.Wait()
}

// stop ends the count and returns it.
func (c *syscallCounter) stop() (uint64, error) {
	if c == nil {
		return 0, fmt.Errorf("perf not available")
	}
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	_ = c.cmd.Wait()
	n, ok := ParsePerfStatCount(c.out.String(), syscallEvent)
	if !ok {
		return 0, fmt.Errorf("perf stat counted nothing: %s", firstLines(c.out.String(), 3))
	}
	return n, nil
}

var nanF = math.NaN()

// appCost is one run's appliance cost; NaN where not measured.
type appCost struct {
	cpuPerGB, syscallsPerFrame float64
}

// hostCount is what a run's cost is divided by: the bytes arriving at
// hB:eth0 and the TCP segments hA and hB have sent.
type hostCount struct{ bytes, segs uint64 }

// costProbe samples the appliance processes and the hosts around one run.
type costProbe struct {
	pids         []int
	cpu0         float64
	host0        hostCount
	perf         *syscallCounter
	cpuErr, hErr error
}

func (h *harness) startCost(ctx context.Context, pids []int, hosts func() (hostCount, error)) *costProbe {
	p := &costProbe{pids: pids}
	if len(pids) == 0 {
		return p
	}
	p.perf, _ = startSyscalls(ctx, pids)
	p.host0, p.hErr = hosts()
	p.cpu0, p.cpuErr = procCPU(pids)
	return p
}

func (p *costProbe) finish(hosts func() (hostCount, error)) appCost {
	nan := appCost{cpuPerGB: nanF, syscallsPerFrame: nanF}
	if len(p.pids) == 0 {
		return nan
	}
	cpu1, cpuErr := procCPU(p.pids)
	host1, hErr := hosts()
	sys, sysErr := p.perf.stop()
	if p.hErr != nil || hErr != nil {
		return nan
	}
	out := nan
	bytes := float64(host1.bytes - p.host0.bytes)
	frames := float64(host1.segs - p.host0.segs)
	if p.cpuErr == nil && cpuErr == nil && bytes > 0 {
		out.cpuPerGB = (cpu1 - p.cpu0) / (bytes / 1e9)
	}
	if sysErr == nil && frames > 0 {
		out.syscallsPerFrame = float64(sys) / frames
	}
	return out
}
