package hostmode

import (
	"net"

	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
	"github.com/tcpinc/tcpinc/cryptopool"
)

// Config is the TCPINC API's settable part (draft-ietf-tcpinc-api §4) for
// the connections of a Dial or a Listen, plus the framing knobs.
type Config struct {
	// TEPs is TCP_ENO_TEPS, most preferred first (default: X25519, X448,
	// P-256, P-521). Empty after defaults means all four.
	TEPs []tcpcrypt.TEP
	// AEADs is TCP_CRYPT_ACONF as host A (advertised in Init1, in this
	// order) and TCP_CRYPT_BCONF as host B, MOST preferred first (default
	// cryptopool.AllSuites).
	AEADs []cryptopool.Suite
	// RequireEncryption is TCP_ENO_TEP_MANDATORY: a connection that does not
	// negotiate tcpcrypt is reset instead of falling back.
	RequireEncryption bool
	// PassiveRole sets b = 1 on an active open (RFC 8547 §4.2,
	// TCP_ENO_SELF_GOPT bit 0), for a simultaneous open.
	PassiveRole bool
	// AppAware sets the a bit (TCP_ENO_SELF_GOPT bit 1);
	// AppAwareMandatory is TCP_ENO_AA_MANDATORY.
	AppAware, AppAwareMandatory bool
	// NoCache is TCP_CRYPT_CACHE_FLUSH on an unconnected socket: neither
	// resume nor cache anything for these connections.
	NoCache bool
	// LocalAddr, if set, is the local address Dial connects from.
	LocalAddr *net.TCPAddr
	Knobs
}

func (c *Config) teps() []tcpcrypt.TEP {
	if len(c.TEPs) == 0 {
		return []tcpcrypt.TEP{tcpcrypt.TEPX25519, tcpcrypt.TEPX448, tcpcrypt.TEPP256, tcpcrypt.TEPP521}
	}
	return c.TEPs
}

func (c *Config) aeads() []cryptopool.Suite {
	if len(c.AEADs) == 0 {
		return cryptopool.AllSuites
	}
	return c.AEADs
}
