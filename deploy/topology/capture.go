package topology

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tcpinc/tcpinc/deploy/netns"
)

// Capture is a running tshark writing what some interfaces of a node carry.
// Tests search its file for plaintext, so Stop makes sure the file holds
// everything: a capture that is cut short or drops frames would let a leak
// through unseen.
type Capture struct {
	Path   string
	p      *netns.Process
	t      *Topology
	node   Node
	ifaces []string
}

// captureBufferMiB is dumpcap's kernel buffer (-B). The default, 2 MiB, fills
// in a few milliseconds of a multi-Gbit/s transfer on veth.
const captureBufferMiB = "64"

// StartCapture starts tshark in rtr writing a pcapng file at path, on the
// given rtr interfaces (default: RouterToA, the untrusted link between gwA
// and rtr). It returns once tshark is capturing.
func (t *Topology) StartCapture(path string, ifaces ...string) (*Capture, error) {
	if len(ifaces) == 0 {
		ifaces = []string{RouterToA}
	}
	return t.StartCaptureOn(Router, path, ifaces...)
}

// StartCaptureOn is StartCapture on interfaces of another node.
func (t *Topology) StartCaptureOn(n Node, path string, ifaces ...string) (*Capture, error) {
	args := []string{"tshark", "-q", "-n", "-B", captureBufferMiB}
	for _, i := range ifaces {
		args = append(args, "-i", i)
	}
	args = append(args, "-w", path)
	p, err := t.Start(n, "tshark", args...)
	if err != nil {
		return nil, err
	}
	// tshark says "Capturing on" before it even starts dumpcap; dumpcap
	// reports the file once it has opened every interface (from then on
	// the kernel keeps each frame in its buffer for it), and tshark logs
	// that as "Capture started". A fixed pause after "Capturing on" was too
	// short on a loaded machine: the caller's first packets went uncaptured.
	if err := p.WaitOutput("Capture started", 20*time.Second); err != nil {
		p.Stop()
		return nil, err
	}
	return &Capture{Path: path, p: p, t: t, node: n, ifaces: ifaces}, nil
}

// Stop ends the capture and returns the path of its file. It first waits
// until the interfaces have been quiet and the file has stopped growing for
// a moment (at most 10 s), so the frames of the caller's last transfer that
// are still in dumpcap's buffer reach the file, then stops tshark with SIGINT so the file is complete. A capture in
// which dumpcap reports dropped frames is an error: whatever it dropped was
// never searched.
func (c *Capture) Stop() (string, error) {
	settleErr := c.settle(400*time.Millisecond, 10*time.Second)
	err := c.p.StopWith(syscall.SIGINT, 10*time.Second)
	var ee *exec.ExitError
	if errors.As(err, &ee) && !ee.Exited() {
		err = nil // ended by our signal
	}
	out := c.p.Output()
	if err != nil {
		return c.Path, fmt.Errorf("tshark: %w\n%s", err, out)
	}
	if settleErr != nil {
		return c.Path, settleErr
	}
	if n, ok := droppedFrames(out); ok && n > 0 {
		return c.Path, fmt.Errorf("capture %s: dumpcap dropped %d frames, so the file does not hold all the link carried:\n%s", c.Path, n, out)
	}
	return c.Path, nil
}

// settle returns once neither the interfaces' frame counters nor the file's
// size have changed for quiet, or after limit.
func (c *Capture) settle(quiet, limit time.Duration) error {
	const step = 100 * time.Millisecond
	var last string
	stable := time.Duration(0)
	for waited := time.Duration(0); waited < limit; waited += step {
		now, err := c.state()
		if err != nil {
			return err
		}
		if now == last {
			stable += step
			if stable >= quiet {
				return nil
			}
		} else {
			last, stable = now, 0
		}
		time.Sleep(step)
	}
	return nil // traffic that goes on past limit is not the caller's to check
}

// state is the interfaces' RX and TX frame counters and the file's size, as
// one comparable string.
func (c *Capture) state() (string, error) {
	args := []string{"cat"}
	for _, i := range c.ifaces {
		args = append(args, "/sys/class/net/"+i+"/statistics/rx_packets", "/sys/class/net/"+i+"/statistics/tx_packets")
	}
	counters, err := c.t.Run(c.node, args...)
	if err != nil {
		return "", fmt.Errorf("capture: read counters of %v in %s: %w", c.ifaces, c.node, err)
	}
	st, err := os.Stat(c.Path)
	if err != nil {
		return "", fmt.Errorf("capture: %w", err)
	}
	return strings.Join(strings.Fields(counters), " ") + " " + strconv.FormatInt(st.Size(), 10), nil
}

var droppedRE = regexp.MustCompile(`(\d+) packets? dropped`)

// droppedFrames adds up tshark's closing "N packets dropped from IF" lines.
func droppedFrames(out string) (uint64, bool) {
	var sum uint64
	found := false
	for _, m := range droppedRE.FindAllStringSubmatch(out, -1) {
		n, err := strconv.ParseUint(m[1], 10, 64)
		if err != nil {
			continue
		}
		sum += n
		found = true
	}
	return sum, found
}
