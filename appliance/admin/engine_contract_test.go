package admin_test

import (
	"testing"

	"github.com/tcpinc/tcpinc/appliance/admin"
	"github.com/tcpinc/tcpinc/appliance/engine"
)

// TestFlowInfoMatchesEngine: admin.FlowInfo has exactly engine.FlowInfo's
// fields, so the daemon converts one into the other with a plain type
// conversion; this stops compiling if either drifts.
func TestFlowInfoMatchesEngine(t *testing.T) {
	e := engine.FlowInfo{ID: 7, Encrypted: true, Role: "A", TEP: 0x23}
	e.SessionID[0] = 0x23
	a := admin.FlowInfo(e)
	if a.ID != 7 || !a.Encrypted || a.Role != "A" || a.SessionID[0] != 0x23 {
		t.Fatalf("%+v", a)
	}
}
