package cryptopool

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// Suite is a tcpcrypt AEAD algorithm, named by its two-byte IANA identifier
// (RFC 8548 §7, "tcpcrypt AEAD Algorithms"; requirements TC-42).
type Suite uint16

const (
	AES128GCM        Suite = 0x0001 // REQUIRED
	AES256GCM        Suite = 0x0002 // RECOMMENDED
	ChaCha20Poly1305 Suite = 0x0010 // RECOMMENDED
)

const (
	// NonceSize is ae_nonce_len for every defined suite.
	NonceSize = 12
	// TagSize is the AEAD expansion: ciphertext is plaintext plus TagSize bytes.
	TagSize = 16
)

// AllSuites lists every suite this implementation supports.
var AllSuites = []Suite{AES128GCM, AES256GCM, ChaCha20Poly1305}

// Valid reports whether s is a suite this implementation supports.
func (s Suite) Valid() bool { return s.KeyLen() != 0 }

// KeyLen is ae_key_len in bytes, or 0 for an unknown suite.
func (s Suite) KeyLen() int {
	switch s {
	case AES128GCM:
		return 16
	case AES256GCM, ChaCha20Poly1305:
		return 32
	}
	return 0
}

// TrafficKeyLen is the length of a tcpcrypt traffic key: K followed by the
// nonce randomizer NR (ae_key_len + ae_nonce_len).
func (s Suite) TrafficKeyLen() int { return s.KeyLen() + NonceSize }

func (s Suite) String() string {
	switch s {
	case AES128GCM:
		return "aes128gcm"
	case AES256GCM:
		return "aes256gcm"
	case ChaCha20Poly1305:
		return "chacha20poly1305"
	}
	return fmt.Sprintf("suite(0x%04x)", uint16(s))
}

// MarshalText encodes s by its name, so configs and the admin API show
// "aes128gcm" rather than a number.
// An unknown suite encodes as "suite(0x....)", which UnmarshalText rejects.
func (s Suite) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText is the inverse of MarshalText.
func (s *Suite) UnmarshalText(text []byte) error {
	v, err := ParseSuite(string(text))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseSuite maps a name as printed by String back to its Suite.
func ParseSuite(name string) (Suite, error) {
	for _, s := range AllSuites {
		if s.String() == name {
			return s, nil
		}
	}
	return 0, fmt.Errorf("cryptopool: unknown AEAD suite %q", name)
}

// NewAEAD returns the AEAD for suite s under key, which must be KeyLen bytes.
func NewAEAD(s Suite, key []byte) (cipher.AEAD, error) {
	if !s.Valid() {
		return nil, fmt.Errorf("cryptopool: unsupported suite %v", s)
	}
	if len(key) != s.KeyLen() {
		return nil, fmt.Errorf("cryptopool: %v key is %d bytes, want %d", s, len(key), s.KeyLen())
	}
	if s == ChaCha20Poly1305 {
		return chacha20poly1305.New(key)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
