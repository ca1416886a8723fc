package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/afxdp"
)

// TestPortWatch: a port whose name no longer resolves, or resolves to
// another interface index than tcpincd opened, is gone for good (the
// daemon exits, watch), and says which port and what happened, in the
// error and in the status warning; a failed read is not taken for a port
// gone; ports as they were are fine.
func TestPortWatch(t *testing.T) {
	links := map[string]afxdp.Link{"in": {Index: 5, MTU: 1500}, "out": {Index: 6, MTU: 1500}}
	var readErr error
	w := &portWatch{names: [2]string{"in", "out"}, index: [2]int{5, 6}, read: func(name string) (afxdp.Link, error) {
		if readErr != nil {
			return afxdp.Link{}, readErr
		}
		l, ok := links[name]
		if !ok {
			return afxdp.Link{}, afxdp.ErrNoInterface
		}
		return l, nil
	}}
	if err := w.check(); err != nil || w.warning() != "" {
		t.Fatalf("ports as opened: %v, warning %q", err, w.warning())
	}
	readErr = errors.New("netlink busy")
	if err := w.check(); err == nil || errors.Is(err, errPortGone) || w.warning() != "" {
		t.Fatalf("a failed read: %v (gone: %v), warning %q", err, errors.Is(err, errPortGone), w.warning())
	}
	readErr = nil
	links["out"] = afxdp.Link{Index: 9, MTU: 1500}
	err := w.check()
	if !errors.Is(err, errPortGone) || !strings.Contains(err.Error(), `outside port "out" is another interface now (ifindex 6 at start, 9 now)`) {
		t.Fatalf("outside replaced: %v", err)
	}
	if !strings.Contains(w.warning(), "PORT GONE: outside port") {
		t.Fatalf("warning %q", w.warning())
	}
	w = &portWatch{names: w.names, index: w.index, read: w.read}
	delete(links, "in")
	err = w.check()
	if !errors.Is(err, errPortGone) || !strings.Contains(err.Error(), `inside port "in" (ifindex 5) is gone`) {
		t.Fatalf("inside deleted: %v", err)
	}
	if !strings.Contains(w.warning(), `PORT GONE: inside port "in"`) {
		t.Fatalf("warning %q", w.warning())
	}
}
