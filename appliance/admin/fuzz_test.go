package admin_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/admin"
	"github.com/tcpinc/tcpinc/appliance/admin/admintest"
)

// FuzzDecodeConfig: the strict decoder never panics; what it accepts
// re-encodes to a document it accepts again, to the same config.
func FuzzDecodeConfig(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"default_policy":"bypass"}`, `{"caps":{"flowz":1}}`, `{"policies":[{"prefix":"10.0.0.0/8","policy":"require"}]}`,
		`{"rekey_interval":"1h"}`, `{"rekey_interval":3}`, `[]`, `{"a":`, `{"teps":["x25519",null]}`, `{"caps":null}`,
		`{"Default_Policy":"x"}`, `{"resume_nonce_len":1e3}`, `{"policies":[[]]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var c admin.Config
		err := admin.DecodeStrict(body, &c)
		if err != nil {
			return
		}
		c.Validate() // must not panic either
		again, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var d admin.Config
		if err := admin.DecodeStrict(again, &d); err != nil {
			t.Fatalf("re-encoded %s refused: %v", again, err)
		}
		if b, _ := json.Marshal(d); string(b) != string(again) {
			t.Fatalf("round trip:\n%s\n%s", again, b)
		}
	})
}

// FuzzQueries: any query string on the flows and sessions endpoints is
// answered 200, 400, 404 or 409 with a JSON body, never a 5xx or a panic.
func FuzzQueries(f *testing.F) {
	for _, s := range []string{
		"", "encrypted=true", "address=10.1.0.0/24&port=443", "limit=1&cursor=7", "port=0", "address=%zz",
		"src=10.1.0.2&sport=43122&dst=198.51.100.7&dport=443", "src=::ffff:1.2.3.4&sport=1&dst=::&dport=2",
	} {
		f.Add(s)
	}
	srv := admin.NewServer(admintest.New(), admin.Options{Now: func() time.Time { return admintest.Now }})
	h := srv.Handler()
	f.Fuzz(func(t *testing.T, q string) {
		if strings.ContainsAny(q, " #\x00\r\n\t") {
			return // not a request line
		}
		for _, path := range []string{"/api/v1/flows", "/api/v1/sessions"} {
			req, err := http.NewRequest("GET", "http://127.0.0.1"+path+"?"+q, nil)
			if err != nil {
				return
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			switch rec.Code {
			case 200, 400, 404, 409:
			default:
				t.Fatalf("%s?%s: status %d: %s", path, q, rec.Code, rec.Body)
			}
			var v map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
				t.Fatalf("%s?%s: not JSON: %v", path, q, err)
			}
		}
	})
}
