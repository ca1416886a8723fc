package integration

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/tcpinc/tcpinc/deploy/topology"
)

// sockWatch samples a sending host's TCP sockets to one port (ss) every
// 250 ms during a transfer and keeps the last samples that differ, so that
// a stalled transfer's report shows its sender's timeline: a
// retransmission timer backing off with nothing acknowledged (losses in a
// row, or segments dropped on the way every time), a shut window, or
// nothing left to send.
type sockWatch struct {
	mu    sync.Mutex
	lines []string
	last  string
	stop  chan struct{}
	done  chan struct{}
}

// watchKeep is how many changed samples a sockWatch keeps: a 20 s stall
// of a sender that backs off changes its state a dozen times.
const watchKeep = 40

var watchFields = regexp.MustCompile(`\b(rto|backoff|cwnd|ssthresh|bytes_acked|bytes_received|unacked|retrans|lost|snd_wnd|notsent):\S+`)

// watchSockets starts sampling src's sockets whose far port is port.
func (e *encEnv) watchSockets(src topology.Node, port uint16) *sockWatch {
	w := &sockWatch{stop: make(chan struct{}), done: make(chan struct{})}
	t0 := time.Now()
	go func() {
		defer close(w.done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			out, _ := e.topo.Command(ctx, src, "ss", "-tinH", "dport", fmt.Sprintf("= :%d", port)).Output()
			cancel()
			state := strings.Join(watchFields.FindAllString(string(out), -1), " ")
			w.mu.Lock()
			if state != w.last {
				w.last = state
				w.lines = append(w.lines, fmt.Sprintf("%6.2fs %s", time.Since(t0).Seconds(), state))
				if len(w.lines) > watchKeep {
					w.lines = w.lines[len(w.lines)-watchKeep:]
				}
			}
			w.mu.Unlock()
		}
	}()
	return w
}

// end stops the sampling and returns the samples kept, one per line.
func (w *sockWatch) end() string {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.lines, "\n")
}
