package admin_test

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tcpinc/tcpinc/appliance/admin"
)

type openAPI struct {
	OpenAPI    string                          `yaml:"openapi"`
	Paths      map[string]map[string]operation `yaml:"paths"`
	Components struct {
		Schemas map[string]schema `yaml:"schemas"`
	} `yaml:"components"`
}

type operation struct {
	Security   *[]map[string][]string `yaml:"security"`
	Parameters []struct {
		Name string `yaml:"name"`
		In   string `yaml:"in"`
	} `yaml:"parameters"`
	Responses map[string]any `yaml:"responses"`
}

type schema struct {
	Properties map[string]any `yaml:"properties"`
}

func loadOpenAPI(t *testing.T) (*openAPI, []byte) {
	t.Helper()
	data, err := os.ReadFile("../../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc openAPI
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("api/openapi.yaml: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	return &doc, data
}

// TestOpenAPIMatchesRoutes: every route the server registers is in
// api/openapi.yaml with its query parameters and token requirement, and
// the document describes no route the server lacks.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc, _ := loadOpenAPI(t)
	served := map[string]admin.Route{}
	for _, r := range admin.Routes() {
		served[r.Method+" "+r.Path] = r
	}
	documented := map[string]operation{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			documented[strings.ToUpper(method)+" "+path] = op
		}
	}
	for key, r := range served {
		op, ok := documented[key]
		if !ok {
			t.Errorf("route %s is not in api/openapi.yaml", key)
			continue
		}
		var query, pathParams []string
		for _, p := range op.Parameters {
			switch p.In {
			case "query":
				query = append(query, p.Name)
			case "path":
				pathParams = append(pathParams, p.Name)
			}
		}
		if !r.Free && !slices.Equal(sorted(query), sorted(r.Query)) {
			t.Errorf("%s: documented query parameters %v, served %v", key, query, r.Query)
		}
		var inPath []string
		for _, m := range regexp.MustCompile(`\{(\w+)\}`).FindAllStringSubmatch(r.Path, -1) {
			inPath = append(inPath, m[1])
		}
		if !slices.Equal(sorted(pathParams), sorted(inPath)) {
			t.Errorf("%s: documented path parameters %v, want %v", key, pathParams, inPath)
		}
		public := op.Security != nil && len(*op.Security) == 0
		if public != r.Public {
			t.Errorf("%s: documented without token = %v, served without token = %v", key, public, r.Public)
		}
		if _, ok := op.Responses["200"]; !ok {
			t.Errorf("%s: no 200 response documented", key)
		}
		if !r.Public {
			if _, ok := op.Responses["401"]; !ok {
				t.Errorf("%s: no 401 response documented", key)
			}
		}
	}
	for key := range documented {
		if _, ok := served[key]; !ok {
			t.Errorf("api/openapi.yaml documents %s, which the server does not serve", key)
		}
	}
}

// TestOpenAPISchemas: each schema lists exactly the JSON fields of the Go
// type the server encodes or decodes, and every $ref resolves.
func TestOpenAPISchemas(t *testing.T) {
	doc, raw := loadOpenAPI(t)
	for name, typ := range map[string]reflect.Type{
		"Error":         reflect.TypeFor[admin.ErrorBody](),
		"Health":        reflect.TypeFor[admin.Health](),
		"Status":        reflect.TypeFor[admin.StatusDoc](),
		"Port":          reflect.TypeFor[admin.PortDoc](),
		"FlowsSummary":  reflect.TypeFor[admin.FlowsSummary](),
		"ConfigSummary": reflect.TypeFor[admin.ConfigSummary](),
		"Counters":      reflect.TypeFor[admin.CountersDoc](),
		"PortCounters":  reflect.TypeFor[admin.PortCountersDoc](),
		"PathCounters":  reflect.TypeFor[admin.PathCountersDoc](),
		"Worker":        reflect.TypeFor[admin.WorkerDoc](),
		"Flow":          reflect.TypeFor[admin.FlowDoc](),
		"FlowsPage":     reflect.TypeFor[admin.FlowsPage](),
		"Stream":        reflect.TypeFor[admin.Stream](),
		"StreamOut":     reflect.TypeFor[admin.StreamOut](),
		"StreamIn":      reflect.TypeFor[admin.StreamIn](),
		"Session":       reflect.TypeFor[admin.SessionDoc](),
		"Config":        reflect.TypeFor[admin.Config](),
		"PolicyRule":    reflect.TypeFor[admin.PolicyRule](),
		"Caps":          reflect.TypeFor[admin.Caps](),
		"ApplyResult":   reflect.TypeFor[admin.ApplyResult](),
		"FlushRequest":  reflect.TypeFor[admin.FlushRequest](),
		"FlushResult":   reflect.TypeFor[admin.FlushResult](),
	} {
		s, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("schema %s missing", name)
			continue
		}
		var want, got []string
		for i := range typ.NumField() {
			tag, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			want = append(want, tag)
		}
		for p := range s.Properties {
			got = append(got, p)
		}
		if !slices.Equal(sorted(got), sorted(want)) {
			t.Errorf("schema %s has %v, Go type %v has %v", name, sorted(got), typ, sorted(want))
		}
	}
	for _, m := range regexp.MustCompile(`#/components/(\w+)/(\w+)`).FindAllStringSubmatch(string(raw), -1) {
		if !strings.Contains(string(raw), "\n    "+m[2]+":\n") {
			t.Errorf("dangling $ref %s", m[0])
		}
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
