package control

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tcpinc/tcpinc/appliance/admin"
	"github.com/tcpinc/tcpinc/appliance/config"
)

// TestOpenAPIConfigBounds: each integer bound api/openapi.yaml gives a
// field of PUT /api/v1/config is the one the running appliance applies:
// the documented minimum and maximum are taken, one past either is a 400
// that names the field. caps.retransmit_bytes was documented with a
// minimum of 4096 and refused below 8192 (config.MinRetransmitBytes: a
// full frame split into wire segments must fit twice).
func TestOpenAPIConfigBounds(t *testing.T) {
	raw, err := os.ReadFile("../../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type prop struct {
		Type    string `yaml:"type"`
		Minimum *int64 `yaml:"minimum"`
		Maximum *int64 `yaml:"maximum"`
	}
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]prop `yaml:"properties"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	bounded := map[string]prop{}
	for _, s := range []struct{ schema, prefix string }{{"Config", ""}, {"Caps", "caps."}} {
		for name, p := range doc.Components.Schemas[s.schema].Properties {
			if p.Type == "integer" && (p.Minimum != nil || p.Maximum != nil) {
				bounded[s.prefix+name] = p
			}
		}
	}
	if len(bounded) < 6 {
		t.Fatalf("api/openapi.yaml bounds %d config fields: %v", len(bounded), bounded)
	}

	ecfg := config.Default().Engine
	ecfg.KeyWorkers = 1
	ecfg.MaxFlows = admin.MaxCapFlows // so that caps.flows may go up to its maximum
	_, src := engineSource(t, ecfg, 1, AdminInfo{Version: "t"}, nil)
	hs := httptest.NewServer(admin.NewServer(src, admin.Options{}).Handler())
	defer hs.Close()
	put := func(field string, v int64) (int, string) {
		body := fmt.Sprintf(`{%q: %d}`, field, v)
		if f, ok := strings.CutPrefix(field, "caps."); ok {
			body = fmt.Sprintf(`{"caps": {%q: %d}}`, f, v)
		}
		return putConfig(t, hs, body)
	}
	for field, p := range bounded {
		type edge struct {
			v  int64
			ok bool
		}
		var edges []edge
		if p.Minimum != nil {
			edges = append(edges, edge{*p.Minimum, true}, edge{*p.Minimum - 1, false})
		}
		if p.Maximum != nil {
			edges = append(edges, edge{*p.Maximum, true}, edge{*p.Maximum + 1, false})
		}
		for _, e := range edges {
			code, got := put(field, e.v)
			switch {
			case e.ok && code != http.StatusOK:
				t.Errorf("%s: %d is within the documented bounds, refused (%d, field %q)", field, e.v, code, got)
			case !e.ok && (code != http.StatusBadRequest || got != field):
				t.Errorf("%s: %d is outside the documented bounds: %d, field %q; want 400 naming %s", field, e.v, code, got, field)
			}
		}
	}
}

// putConfig PUTs body to hs's /api/v1/config and returns the status and the
// field an error names.
func putConfig(t *testing.T, hs *httptest.Server, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("PUT", hs.URL+"/api/v1/config", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e admin.ErrorBody
	_ = json.Unmarshal(b, &e)
	return resp.StatusCode, e.Field
}
