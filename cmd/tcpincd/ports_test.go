package main

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance"
	"github.com/tcpinc/tcpinc/appliance/afxdp"
	"github.com/tcpinc/tcpinc/appliance/config"
	"github.com/tcpinc/tcpinc/bump"
)

// upLink is an interface that is up and running.
func upLink(index, mtu int) afxdp.Link {
	return afxdp.Link{Index: index, MTU: mtu, Up: true, Running: true}
}

// fakeLinks is a portWatch over links, by name, instead of the kernel's;
// readErr, when set, fails every read.
func fakeLinks(links map[string]afxdp.Link, readErr *error) *portWatch {
	cfg := config.Default()
	return &portWatch{names: [2]string{"in", "out"}, index: [2]int{links["in"].Index, links["out"].Index},
		seg: func(mtu int) int { return afxdp.SegmentMTU(cfg, mtu) }, now: time.Now,
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
	links := map[string]afxdp.Link{"in": upLink(5, 1500), "out": upLink(6, 1500)}
	var readErr error
	w := fakeLinks(links, &readErr)
	if _, _, err := w.check(); err != nil || w.warning() != "" {
		t.Fatalf("ports as opened: %v, warning %q", err, w.warning())
	}
	readErr = errors.New("netlink busy")
	if _, _, err := w.check(); err == nil || errors.Is(err, errPortGone) || w.warning() != "" {
		t.Fatalf("a failed read: %v (gone: %v), warning %q", err, errors.Is(err, errPortGone), w.warning())
	}
	readErr = nil
	links["out"] = upLink(9, 1500)
	_, _, err := w.check()
	if !errors.Is(err, errPortGone) || !strings.Contains(err.Error(), `outside port "out" is another interface now (ifindex 6 at start, 9 now)`) {
		t.Fatalf("outside replaced: %v", err)
	}
	if !strings.Contains(w.warning(), "PORT GONE: outside port") {
		t.Fatalf("warning %q", w.warning())
	}
	links["out"] = upLink(6, 1500)
	w = fakeLinks(links, &readErr)
	delete(links, "in")
	_, _, err = w.check()
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
	links := map[string]afxdp.Link{"in": upLink(5, 1500), "out": upLink(6, 1500)}
	var readErr error
	w := fakeLinks(links, &readErr)
	var applied [][2]int
	w.apply = func(m [2]int) error { applied = append(applied, m); return nil }
	w.laneFrame = 1536 // slots for MTU 1500 (appliance.HandoffFrame)
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	if ch, _, err := w.check(); err != nil || len(ch) != 0 || w.segmentMTUs() != [2]int{1500, 1500} {
		t.Fatalf("first check: %v %v, caps %v", ch, err, w.segmentMTUs())
	}
	links["in"] = upLink(5, 1400)
	links["out"] = upLink(6, 1400)
	ch, _, err := w.check()
	if err != nil || len(ch) != 2 || ch[0] != (mtuChange{bump.Inside, 1500, 1400}) || ch[1] != (mtuChange{bump.Outside, 1500, 1400}) {
		t.Fatalf("MTU lowered: %+v %v", ch, err)
	}
	if ch, _, _ := w.check(); len(ch) != 0 {
		t.Fatalf("the same MTU again: %+v", ch)
	}
	w.follow(log)
	if len(applied) != 1 || applied[0] != [2]int{1400, 1400} || w.warning() != "" {
		t.Fatalf("applied %v, warning %q", applied, w.warning())
	}
	if mtu, seg := w.mtuOf(1); mtu != 1400 || seg != 1400 {
		t.Fatalf("status: outside MTU %d, segments %d", mtu, seg)
	}
	links["out"] = upLink(6, 9000)
	if ch, _, _ := w.check(); len(ch) != 1 || ch[0] != (mtuChange{bump.Outside, 1400, 9000}) {
		t.Fatalf("MTU raised: %+v", ch)
	}
	w.follow(log)
	if applied[1] != [2]int{1400, 3822} {
		t.Fatalf("applied %v, want the outside cap at what a TX frame holds", applied[1])
	}
	// The drop is named as the status's drops and tcpinc_drops_total
	// label it (it said drop_too_big, the final counters log's key).
	tooBig := "drop reason " + appliance.DropTooBig.String() + " "
	if !strings.Contains(w.warning(), "outside port MTU 9000 is past what the hand-off lanes between workers carry (frames of 1536 bytes") ||
		!strings.Contains(w.warning(), tooBig) || !strings.Contains(logged.String(), tooBig) {
		t.Fatalf("no warning for the lanes: %q\n%s", w.warning(), logged.String())
	}
	links["out"] = upLink(6, 1500)
	w.check()
	w.follow(log)
	if w.warning() != "" {
		t.Fatalf("the lanes fit again, warning %q", w.warning())
	}
}

// TestPortWatchLink: a port's link that goes down (its carrier lost, or
// the port set down on the box) and comes back is told once each way, in
// a log line that names the port and the interface (a warning when it goes
// down, with how long it was down when it is back), and the status warns
// while it is down, from when it first went down; a link down at start is
// told too, one up at start is not, and a read that failed changes
// nothing.
func TestPortWatchLink(t *testing.T) {
	links := map[string]afxdp.Link{"in": upLink(5, 1500), "out": upLink(6, 1500)}
	var readErr error
	w := fakeLinks(links, &readErr)
	t0 := time.Date(2026, 12, 6, 9, 0, 12, 0, time.UTC)
	now := t0
	w.now = func() time.Time { return now }
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	check := func(what string, want ...string) {
		t.Helper()
		ch, l, err := w.check()
		if err != nil || len(ch) != 0 {
			t.Fatalf("%s: %v, MTU changes %+v", what, err, ch)
		}
		var got []string
		for _, c := range l {
			got = append(got, c.message())
			c.log(log)
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("%s: link changes %q, want %q", what, got, want)
		}
	}
	warnings := func() [2]string {
		return [2]string{w.linkWarning(bump.Inside)(), w.linkWarning(bump.Outside)()}
	}
	check("up at start")
	if w.linkOf(0) != "up" || w.linkOf(1) != "up" || warnings() != [2]string{} {
		t.Fatalf("up at start: links %q %q, warnings %q", w.linkOf(0), w.linkOf(1), warnings())
	}

	now = t0.Add(time.Second)
	links["out"] = afxdp.Link{Index: 6, MTU: 1500, Up: true} // its carrier lost
	check("carrier lost", "outside port out: link down (no carrier)")
	const downWarn = "LINK DOWN: outside port out: link down (no carrier) since 2026-12-06T09:00:13Z"
	if ws := warnings(); ws[0] != "" || !strings.HasPrefix(ws[1], downWarn) || w.linkOf(1) != "no_carrier" {
		t.Fatalf("carrier lost: warnings %q, link %q", ws, w.linkOf(1))
	}
	now = t0.Add(2 * time.Second)
	check("still no carrier")
	readErr = errors.New("ioctl busy")
	if _, l, err := w.check(); err == nil || len(l) != 0 || w.linkOf(1) != "no_carrier" {
		t.Fatalf("a failed read: %v, link changes %+v, link %q", err, l, w.linkOf(1))
	}
	readErr = nil
	links["out"] = afxdp.Link{Index: 6, MTU: 1500} // and set down
	check("set down as well", "outside port out: link still down (set down on this box now, no carrier before)")
	if ws := warnings(); !strings.HasPrefix(ws[1], "LINK DOWN: outside port out: link down (set down on this box) since 2026-12-06T09:00:13Z") || w.linkOf(1) != "down" {
		t.Fatalf("set down: warnings %q, link %q", ws, w.linkOf(1))
	}
	now = t0.Add(3500 * time.Millisecond)
	links["out"] = upLink(6, 1500)
	check("back up", "outside port out: link up again after about 3s")
	if w.linkOf(1) != "up" || warnings() != [2]string{} {
		t.Fatalf("back up: link %q, warnings %q", w.linkOf(1), warnings())
	}
	lines := strings.Split(strings.TrimSpace(logged.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], `level=WARN msg="outside port out: link down (no carrier)" port=outside iface=out link=no_carrier`) ||
		!strings.Contains(lines[2], `level=INFO msg="outside port out: link up again after about 3s" port=outside iface=out link=up`) {
		t.Fatalf("logged:\n%s", logged.String())
	}

	links["in"] = afxdp.Link{Index: 5, MTU: 1500}
	w = fakeLinks(links, &readErr)
	check("down at start", "inside port in: link down (set down on this box) at start: no frame passes the port until it comes up")
	if ws := warnings(); !strings.HasPrefix(ws[0], "LINK DOWN: inside port in: link down (set down on this box)") || ws[1] != "" {
		t.Fatalf("down at start: warnings %q", ws)
	}
}

// TestErrorLineOncePerError: the watch's checks run every second; an error
// that lasts is logged when it starts, when it changes and once when it
// ends, not at every check (it was logged at every one).
func TestErrorLineOncePerError(t *testing.T) {
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	l := errorLine{msg: "port check"}
	bad, worse := errors.New("read in: no such device"), errors.New("read in: permission denied")
	for _, err := range []error{nil, bad, bad, bad, bad, worse, worse, nil, nil, bad} {
		l.report(log, err)
	}
	lines := strings.Split(strings.TrimSpace(logged.String()), "\n")
	want := []string{"no such device", "permission denied", "the error ended", "no such device"}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), logged.String())
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d %q lacks %q", i, lines[i], w)
		}
	}
}
