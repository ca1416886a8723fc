package admin_test

import (
	"reflect"
	"regexp"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"

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

// TestFlowStatesMatchEngine: the states the API accepts (admin.FlowStates)
// are the engine's, and api/openapi.yaml lists them as FlowState and names
// every fallback label the counters use (it documented states the engine
// does not have: established, syn_sent).
func TestFlowStatesMatchEngine(t *testing.T) {
	if !slices.Equal(admin.FlowStates, engine.StateNames()) {
		t.Fatalf("admin.FlowStates %v, engine states %v", admin.FlowStates, engine.StateNames())
	}
	_, raw := loadOpenAPI(t)
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Enum       []string `yaml:"enum"`
				Properties map[string]struct {
					Description string `yaml:"description"`
				} `yaml:"properties"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if got := doc.Components.Schemas["FlowState"].Enum; !slices.Equal(got, admin.FlowStates) {
		t.Errorf("api/openapi.yaml FlowState %v, want %v", got, admin.FlowStates)
	}
	fallbacks := doc.Components.Schemas["Counters"].Properties["fallbacks"].Description
	for _, name := range engine.FallbackNames {
		if !regexp.MustCompile(`\b` + name + `\b`).MatchString(fallbacks) {
			t.Errorf("api/openapi.yaml: Counters.fallbacks does not name the fallback %s", name)
		}
	}
}
