package main

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/afxdp"
	"github.com/tcpinc/tcpinc/appliance/config"
	"github.com/tcpinc/tcpinc/bump"
)

// fakeLinks is a portWatch over links, by name, instead of the kernel's;
// readErr, when set, fails every read.
func fakeLinks(links map[string]afxdp.Link, readErr *error) *portWatch {
	cfg := config.Default()
	return &portWatch{names: [2]string{"in", "out"}, index: [2]int{links["in"].Index, links["out"].Index},
		seg: func(mtu int) int { return afxdp.SegmentMTU(cfg, mtu) },
		read: func(name string) (afxdp.Link, error) {
			if *readErr != nil {
				return afxdp.Link{}, *readErr
			}
			l, ok := links[name]
			if !ok {
				return afxdp.Link{}, afxdp.ErrNoInterface
			}
			return l, nil
		}}
}

// TestPortWatch: a port whose name no longer resolves, or resolves to
// another interface index than tcpincd opened, is gone for good (the
// daemon exits, watch), and says which port and what happened, in the
// error and in the status warning; a failed read is not taken for a port
// gone; ports as they were are fine.
func TestPortWatch(t *testing.T) {
	links := map[string]afxdp.Link{"in": {Index: 5, MTU: 1500}, "out": {Index: 6, MTU: 1500}}
	var readErr error
	w := fakeLinks(links, &readErr)
	if _, err := w.check(); err != nil || w.warning() != "" {
		t.Fatalf("ports as opened: %v, warning %q", err, w.warning())
	}
	readErr = errors.New("netlink busy")
	if _, err := w.check(); err == nil || errors.Is(err, errPortGone) || w.warning() != "" {
		t.Fatalf("a failed read: %v (gone: %v), warning %q", err, errors.Is(err, errPortGone), w.warning())
	}
	readErr = nil
	links["out"] = afxdp.Link{Index: 9, MTU: 1500}
	_, err := w.check()
	if !errors.Is(err, errPortGone) || !strings.Contains(err.Error(), `outside port "out" is another interface now (ifindex 6 at start, 9 now)`) {
		t.Fatalf("outside replaced: %v", err)
	}
	if !strings.Contains(w.warning(), "PORT GONE: outside port") {
		t.Fatalf("warning %q", w.warning())
	}
	links["out"] = afxdp.Link{Index: 6, MTU: 1500}
	w = fakeLinks(links, &readErr)
	delete(links, "in")
	_, err = w.check()
	if !errors.Is(err, errPortGone) || !strings.Contains(err.Error(), `inside port "in" (ifindex 5) is gone`) {
		t.Fatalf("inside deleted: %v", err)
	}
	if !strings.Contains(w.warning(), `PORT GONE: inside port "in"`) {
		t.Fatalf("warning %q", w.warning())
	}
}

// TestPortWatchMTU: a port's MTU that changes is reported once, with what
// it was, and follow gives the engines the caps at the new MTUs (no more
// than a TX frame holds: 3822 with frame_size 4096); an MTU whose frames
// outgrow the hand-off lanes' slots is warned about in the log and the
// status until it fits again.
func TestPortWatchMTU(t *testing.T) {
	links := map[string]afxdp.Link{"in": {Index: 5, MTU: 1500}, "out": {Index: 6, MTU: 1500}}
	var readErr error
	w := fakeLinks(links, &readErr)
	var applied [][2]int
	w.apply = func(m [2]int) error { applied = append(applied, m); return nil }
	w.laneFrame = 1536 // slots for MTU 1500 (appliance.HandoffFrame)
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	if ch, err := w.check(); err != nil || len(ch) != 0 || w.segmentMTUs() != [2]int{1500, 1500} {
		t.Fatalf("first check: %v %v, caps %v", ch, err, w.segmentMTUs())
	}
	links["in"] = afxdp.Link{Index: 5, MTU: 1400}
	links["out"] = afxdp.Link{Index: 6, MTU: 1400}
	ch, err := w.check()
	if err != nil || len(ch) != 2 || ch[0] != (mtuChange{bump.Inside, 1500, 1400}) || ch[1] != (mtuChange{bump.Outside, 1500, 1400}) {
		t.Fatalf("MTU lowered: %+v %v", ch, err)
	}
	if ch, _ := w.check(); len(ch) != 0 {
		t.Fatalf("the same MTU again: %+v", ch)
	}
	w.follow(log)
	if len(applied) != 1 || applied[0] != [2]int{1400, 1400} || w.warning() != "" {
		t.Fatalf("applied %v, warning %q", applied, w.warning())
	}
	if mtu, seg := w.mtuOf(1); mtu != 1400 || seg != 1400 {
		t.Fatalf("status: outside MTU %d, segments %d", mtu, seg)
	}
	links["out"] = afxdp.Link{Index: 6, MTU: 9000}
	if ch, _ := w.check(); len(ch) != 1 || ch[0] != (mtuChange{bump.Outside, 1400, 9000}) {
		t.Fatalf("MTU raised: %+v", ch)
	}
	w.follow(log)
	if applied[1] != [2]int{1400, 3822} {
		t.Fatalf("applied %v, want the outside cap at what a TX frame holds", applied[1])
	}
	if !strings.Contains(w.warning(), "outside port MTU 9000 is past what the hand-off lanes between workers carry (frames of 1536 bytes") ||
		!strings.Contains(logged.String(), "drop_too_big") {
		t.Fatalf("no warning for the lanes: %q\n%s", w.warning(), logged.String())
	}
	links["out"] = afxdp.Link{Index: 6, MTU: 1500}
	w.check()
	w.follow(log)
	if w.warning() != "" {
		t.Fatalf("the lanes fit again, warning %q", w.warning())
	}
}
