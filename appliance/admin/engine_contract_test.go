package admin_test

import (
	"reflect"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/admin"
	"github.com/tcpinc/tcpinc/appliance/engine"
)

// TestFlowInfoMatchesEngine: admin.FlowInfo has exactly engine.FlowInfo's
// fields (Stream as a pointer to its admin twin), and the stream types
// convert with a plain type conversion (this stops compiling if either
// drifts), so the daemon copies one into the other field by field.
func TestFlowInfoMatchesEngine(t *testing.T) {
	et, at := reflect.TypeFor[engine.FlowInfo](), reflect.TypeFor[admin.FlowInfo]()
	if et.NumField() != at.NumField() {
		t.Fatalf("engine.FlowInfo has %d fields, admin.FlowInfo %d", et.NumField(), at.NumField())
	}
	for i := range et.NumField() {
		ef, af := et.Field(i), at.Field(i)
		if ef.Name != af.Name {
			t.Errorf("field %d: engine %s, admin %s", i, ef.Name, af.Name)
			continue
		}
		if ef.Name == "Stream" {
			continue // *engine.StreamInfo and *admin.Stream, below
		}
		if ef.Type != af.Type {
			t.Errorf("field %s: engine %v, admin %v", ef.Name, ef.Type, af.Type)
		}
	}
	out := admin.StreamOut(engine.StreamOut{HostNext: 7, FIN: true})
	in := admin.StreamIn(engine.StreamIn{WireNext: 9, Frames: 2})
	if out.HostNext != 7 || !out.FIN || in.WireNext != 9 || in.Frames != 2 {
		t.Fatalf("%+v %+v", out, in)
	}
}
