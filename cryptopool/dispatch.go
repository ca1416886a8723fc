package cryptopool

import (
	"errors"
	"fmt"
	"runtime"
	"strings"

	"github.com/klauspost/cpuid/v2"
)

// Features is the part of the CPU that decides which AEAD is fastest and
// constant-time. The JSON form is what the admin API shows.
type Features struct {
	Arch string `json:"arch"`
	CPU  string `json:"cpu"`
	// AES: AES round instructions (AES-NI on x86, FEAT_AES on arm64).
	AES bool `json:"aes"`
	// CLMUL: carry-less multiply for GHASH (PCLMULQDQ on x86, PMULL on arm64).
	CLMUL bool `json:"clmul"`
	// AVX2 and BMI2 select x/crypto's fastest ChaCha20-Poly1305 code on x86.
	AVX2 bool `json:"avx2"`
	BMI2 bool `json:"bmi2"`
	// VAES and VPCLMULQDQ are shown for information; the order does not use them.
	VAES       bool `json:"vaes"`
	VPCLMULQDQ bool `json:"vpclmulqdq"`
}

// HardwareGCM reports whether AES-GCM runs on AES and carry-less-multiply
// instructions. Go's crypto/aes uses them exactly when both are present;
// without them GCM falls back to table code that is slower and whose GHASH is
// not constant-time.
func (f Features) HardwareGCM() bool { return f.AES && f.CLMUL }

// DetectFeatures reads the running CPU (github.com/klauspost/cpuid/v2).
func DetectFeatures() Features {
	c := &cpuid.CPU
	f := Features{
		Arch:       runtime.GOARCH,
		CPU:        c.BrandName,
		AVX2:       c.Has(cpuid.AVX2),
		BMI2:       c.Has(cpuid.BMI2),
		VAES:       c.Has(cpuid.VAES),
		VPCLMULQDQ: c.Has(cpuid.VPCLMULQDQ),
	}
	switch f.Arch {
	case "amd64", "386":
		f.AES, f.CLMUL = c.Has(cpuid.AESNI), c.Has(cpuid.CLMUL)
	case "arm64":
		f.AES, f.CLMUL = c.Has(cpuid.AESARM), c.Has(cpuid.PMULL)
	}
	return f
}

// Preference is the AEAD order this host uses, most preferred first, with
// what it was based on. It is computed once at start and shown by the admin API.
type Preference struct {
	Features Features `json:"features"`
	Order    []Suite  `json:"order"`
	Source   string   `json:"source"` // SourceCPU or SourceConfig
	Reason   string   `json:"reason"`
}

// Values of Preference.Source.
const (
	SourceCPU    = "cpu"
	SourceConfig = "config"
)

// ErrBadOrder is wrapped by every error about a configured AEAD order.
var ErrBadOrder = errors.New("cryptopool: bad AEAD order")

// ChoosePreference decides the AEAD order from the CPU features f, or takes
// configured when it is non-nil (the administrator's choice, TC-77), after
// checking it. It is a pure function so both branches can be tested on any CPU.
//
// With hardware AES-GCM the order is AES-128-GCM, AES-256-GCM,
// ChaCha20-Poly1305 (on this project's CPU AES-128-GCM seals 1400 B frames
// about 1.7x faster than ChaCha20-Poly1305; bench/RESULTS.md "Crypto"). Without it,
// ChaCha20-Poly1305 comes first: it is faster than software AES and
// constant-time.
func ChoosePreference(f Features, configured []Suite) (Preference, error) {
	cpu := cpuPreference(f)
	if configured == nil {
		return cpu, nil
	}
	if err := ValidateOrder(configured); err != nil {
		return Preference{}, err
	}
	return Preference{
		Features: f,
		Order:    append([]Suite(nil), configured...),
		Source:   SourceConfig,
		Reason:   fmt.Sprintf("configured; the CPU would choose %s (%s)", orderString(cpu.Order), cpu.Reason),
	}, nil
}

// DetectPreference is ChoosePreference for the running CPU.
func DetectPreference(configured []Suite) (Preference, error) {
	return ChoosePreference(DetectFeatures(), configured)
}

func cpuPreference(f Features) Preference {
	aes, clmul := "AES-NI", "PCLMULQDQ"
	if f.Arch == "arm64" {
		aes, clmul = "AES", "PMULL"
	}
	p := Preference{Features: f, Source: SourceCPU}
	if f.HardwareGCM() {
		p.Order = []Suite{AES128GCM, AES256GCM, ChaCha20Poly1305}
		p.Reason = fmt.Sprintf("%s and %s present: AES-GCM runs in hardware, faster than ChaCha20-Poly1305", aes, clmul)
		return p
	}
	p.Order = []Suite{ChaCha20Poly1305, AES128GCM, AES256GCM}
	var missing []string
	if !f.AES {
		missing = append(missing, aes)
	}
	if !f.CLMUL {
		missing = append(missing, clmul)
	}
	p.Reason = fmt.Sprintf("no %s: software AES-GCM is slower than ChaCha20-Poly1305 and its GHASH is not constant-time", strings.Join(missing, " or "))
	return p
}

// ValidateOrder checks a configured order: not empty, only supported suites,
// none twice. Leaving out a suite is allowed (TC-77: administrators choose
// which AEADs are negotiated), but peers that support only AES-128-GCM, the
// one mandatory suite (TC-42), then cannot connect encrypted.
func ValidateOrder(order []Suite) error {
	if len(order) == 0 {
		return fmt.Errorf("%w: empty", ErrBadOrder)
	}
	for i, s := range order {
		if !s.Valid() {
			return fmt.Errorf("%w: entry %d: unsupported suite 0x%04x", ErrBadOrder, i, uint16(s))
		}
		for _, t := range order[:i] {
			if t == s {
				return fmt.Errorf("%w: %v listed twice", ErrBadOrder, s)
			}
		}
	}
	return nil
}

// ParseOrder turns configured names ("aes128gcm", "AES256GCM ",
// "chacha20poly1305") into a validated order.
func ParseOrder(names []string) ([]Suite, error) {
	order := make([]Suite, 0, len(names))
	for _, n := range names {
		s, err := ParseSuite(strings.ToLower(strings.TrimSpace(n)))
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadOrder, err)
		}
		order = append(order, s)
	}
	if err := ValidateOrder(order); err != nil {
		return nil, err
	}
	return order, nil
}

// Pick returns the first suite of p.Order that is also in offered: how role B
// chooses sym_cipher from A's Init1 list (RFC 8548 §3.3, TC-12). ok is false
// when there is no common suite.
func (p Preference) Pick(offered []Suite) (s Suite, ok bool) {
	for _, s := range p.Order {
		for _, o := range offered {
			if o == s {
				return s, true
			}
		}
	}
	return 0, false
}

func orderString(order []Suite) string {
	names := make([]string, len(order))
	for i, s := range order {
		names[i] = s.String()
	}
	return strings.Join(names, ",")
}
