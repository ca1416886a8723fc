package cryptopool

import (
	"encoding/json"
	"errors"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func TestChoosePreferenceFromCPU(t *testing.T) {
	aesFirst := []Suite{AES128GCM, AES256GCM, ChaCha20Poly1305}
	chachaFirst := []Suite{ChaCha20Poly1305, AES128GCM, AES256GCM}
	for _, tc := range []struct {
		name   string
		f      Features
		order  []Suite
		reason string // a substring
	}{
		{"x86 AES-NI+PCLMULQDQ", Features{Arch: "amd64", AES: true, CLMUL: true, AVX2: true}, aesFirst, "AES-NI and PCLMULQDQ present"},
		{"x86 AES-NI without PCLMULQDQ", Features{Arch: "amd64", AES: true}, chachaFirst, "no PCLMULQDQ"},
		{"x86 PCLMULQDQ without AES-NI", Features{Arch: "amd64", CLMUL: true}, chachaFirst, "no AES-NI:"},
		{"x86 neither", Features{Arch: "amd64"}, chachaFirst, "no AES-NI or PCLMULQDQ"},
		{"arm64 AES+PMULL", Features{Arch: "arm64", AES: true, CLMUL: true}, aesFirst, "AES and PMULL present"},
		{"arm64 without crypto extensions", Features{Arch: "arm64"}, chachaFirst, "no AES or PMULL"},
		{"unknown arch", Features{Arch: "riscv64"}, chachaFirst, "constant-time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ChoosePreference(tc.f, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p.Order, tc.order) || p.Source != SourceCPU || p.Features != tc.f {
				t.Errorf("got %+v, want order %v from cpu", p, tc.order)
			}
			if !strings.Contains(p.Reason, tc.reason) {
				t.Errorf("reason %q does not contain %q", p.Reason, tc.reason)
			}
		})
	}
}

// TestChoosePreferenceConfigured: an administrator's order wins over the CPU
// (TC-77), but only after validation.
func TestChoosePreferenceConfigured(t *testing.T) {
	f := Features{Arch: "amd64", AES: true, CLMUL: true}
	want := []Suite{ChaCha20Poly1305, AES128GCM}
	cfg := append([]Suite(nil), want...)
	p, err := ChoosePreference(f, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.Order, want) || p.Source != SourceConfig {
		t.Fatalf("got %+v", p)
	}
	if !strings.Contains(p.Reason, "aes128gcm,aes256gcm,chacha20poly1305") {
		t.Errorf("reason %q does not show the CPU's choice", p.Reason)
	}
	cfg[0] = AES256GCM
	if p.Order[0] != ChaCha20Poly1305 {
		t.Error("Preference aliases the caller's slice")
	}

	for _, bad := range [][]Suite{
		{},
		{AES128GCM, Suite(0x0003)},
		{AES128GCM, ChaCha20Poly1305, AES128GCM},
		{Suite(0)},
	} {
		if _, err := ChoosePreference(f, bad); !errors.Is(err, ErrBadOrder) {
			t.Errorf("ChoosePreference(%v) error %v, want ErrBadOrder", bad, err)
		}
	}
}

func TestParseOrder(t *testing.T) {
	got, err := ParseOrder([]string{" ChaCha20Poly1305", "aes128gcm "})
	if err != nil || !reflect.DeepEqual(got, []Suite{ChaCha20Poly1305, AES128GCM}) {
		t.Errorf("ParseOrder = %v, %v", got, err)
	}
	for _, bad := range [][]string{nil, {"aes192gcm"}, {"aes128gcm", "AES128GCM"}, {""}} {
		if _, err := ParseOrder(bad); !errors.Is(err, ErrBadOrder) {
			t.Errorf("ParseOrder(%q) error %v, want ErrBadOrder", bad, err)
		}
	}
}

// TestPick: role B picks from A's list in its own order (RFC 8548 §3.3).
func TestPick(t *testing.T) {
	p := Preference{Order: []Suite{AES128GCM, AES256GCM, ChaCha20Poly1305}}
	for _, tc := range []struct {
		offered []Suite
		want    Suite
		ok      bool
	}{
		{[]Suite{ChaCha20Poly1305, AES256GCM}, AES256GCM, true},
		{[]Suite{ChaCha20Poly1305, AES128GCM}, AES128GCM, true},
		{[]Suite{Suite(0x0099), ChaCha20Poly1305}, ChaCha20Poly1305, true},
		{[]Suite{Suite(0x0099)}, 0, false},
		{nil, 0, false},
	} {
		if s, ok := p.Pick(tc.offered); s != tc.want || ok != tc.ok {
			t.Errorf("Pick(%v) = %v, %v; want %v, %v", tc.offered, s, ok, tc.want, tc.ok)
		}
	}
}

// TestDetectPreference runs the real detection; on this project's machines
// (AMD EPYC with AES-NI) AES-GCM must come first.
func TestDetectPreference(t *testing.T) {
	p, err := DetectPreference(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("features %+v; order %v; %s", p.Features, p.Order, p.Reason)
	if p.Features.Arch != runtime.GOARCH || len(p.Order) != len(AllSuites) {
		t.Errorf("got %+v", p)
	}
	if p.Features.HardwareGCM() != (p.Order[0] == AES128GCM) {
		t.Errorf("order %v does not follow HardwareGCM=%v", p.Order, p.Features.HardwareGCM())
	}
}

// TestPreferenceJSON: the admin API shows suites by name.
func TestPreferenceJSON(t *testing.T) {
	p, _ := ChoosePreference(Features{Arch: "amd64", AES: true, CLMUL: true}, nil)
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"order":["aes128gcm","aes256gcm","chacha20poly1305"]`) {
		t.Errorf("JSON %s", b)
	}
	var back Preference
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, p) {
		t.Errorf("round trip: %+v, %v", back, err)
	}
	var s Suite
	if err := json.Unmarshal([]byte(`"aes999"`), &s); err == nil {
		t.Error("unmarshalled an unknown suite name")
	}
}
