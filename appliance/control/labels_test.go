package control

import (
	"log/slog"
	"os"
	"regexp"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tcpinc/tcpinc/appliance/admin"
	"github.com/tcpinc/tcpinc/appliance/config"
)

// TestOpenAPINamesEveryCounterLabel: every label the running appliance
// counts under (the keys of the status's counter maps, the label values of
// tcpinc_handshakes_total, tcpinc_fallbacks_total, tcpinc_drops_total,
// tcpinc_fragments_total, tcpinc_engine_events_total,
// tcpinc_worker_events_total and tcpinc_path_*_total) is named in the
// description of its map in api/openapi.yaml, so that an operator who
// sees one can look it up. The documented lists had drifted: the events
// lacked deliver_waits and host_segments_held, and drops and handshakes
// had no list at all (the README names a few drop reasons, and one of
// them, "drop_too_big", only as the final counters log spells it).
func TestOpenAPINamesEveryCounterLabel(t *testing.T) {
	eng, err := NewEngines(config.Default().Engine, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	src, err := NewAdminSource(newAppliance(t, 2, eng.NewHandler), eng, AdminInfo{
		Version: "t", FastPath: true,
		KernelPath: func() admin.PathCounters { return admin.PathCounters{} },
	})
	if err != nil {
		t.Fatal(err)
	}
	c := src.Counters()
	paths := map[string]uint64{}
	for k := range c.Paths {
		paths[k] = 0
	}

	raw, err := os.ReadFile("../../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Description string `yaml:"description"`
				} `yaml:"properties"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	props := doc.Components.Schemas["Counters"].Properties
	for field, labels := range map[string]map[string]uint64{
		"handshakes":    c.Handshakes,
		"fallbacks":     c.Fallbacks,
		"drops":         c.Drops,
		"fragments":     c.Fragments,
		"events":        c.Events,
		"worker_events": c.WorkerEvents,
		"paths":         paths,
	} {
		if len(labels) == 0 {
			t.Errorf("%s: the appliance counts no label", field)
			continue
		}
		desc := props[field].Description
		var missing []string
		for label := range labels {
			// A whole word: "held" is not in "held_pruned".
			if !regexp.MustCompile(`(^|[^a-z0-9_])` + regexp.QuoteMeta(label) + `($|[^a-z0-9_])`).MatchString(desc) {
				missing = append(missing, label)
			}
		}
		slices.Sort(missing)
		if len(missing) > 0 {
			t.Errorf("api/openapi.yaml, Counters.%s does not name %v", field, missing)
		}
	}
}
