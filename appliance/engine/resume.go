package engine

import (
	"slices"

	"github.com/tcpinc/tcpinc/appliance/eno"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

// Session resumption on the appliance's side (RFC 8548 §3.5): as host A it
// offers a cached secret in its SYN (resumeOffers, answerValid), as host B
// it agrees to resume what A offers when it holds the secret
// (acceptResumption), and a negotiation that does not resume forgets the
// secret it had accepted (dropResumption).

// acceptResumption looks, before host B answers A's SYN, for a resumption
// suboption in it that names a secret the cache holds for a TEP this
// engine offers (Cache.Accept: same TEP as the original session, TC-19).
// RFC 8548 §3.5: B SHOULD then agree to resume, so that TEP goes first in
// the flow's offers and the answer carries B's half and nonce, whatever
// B's own order of TEPs; only a secret it does not hold leaves B to answer
// by preference (TC-21). The secret is taken (single use) once accepted.
// A secret whose session used an AEAD the configuration no longer allows
// is spent and declined: the suboption is then a fresh offer of its TEP
// (TC-20), and B answers as for a secret it does not hold.
func (e *Engine) acceptResumption(f *flow) {
	if f.res != nil {
		return
	}
	a, err := eno.ParseSYN(f.peer[:f.peerLen])
	if err != nil {
		return // PutSYNACK reports it
	}
	far := f.key.out.Addr()
	offers := f.settings.Offers
	for i, o := range offers {
		sub, ok := a.Find(o.TEP)
		if !ok || !sub.V() || a.Count(o.TEP) != 1 {
			continue
		}
		rr, ok := e.deps.Cache.Accept(far, sub.Byte, sub.Data)
		if !ok {
			continue
		}
		if !e.mayResume(rr) {
			rr.Erase()
			continue
		}
		f.res = rr
		copy(offers[1:i+1], offers[:i]) // the flow's own copy (Engine.settings)
		offers[0] = o
		return
	}
}

// dropResumption forgets an accepted resumption that will not be used; its
// secret stays used (TC-34).
func (e *Engine) dropResumption(f *flow) {
	if f.res != nil {
		f.res.Erase()
		f.res = nil
	}
}

// offers reports whether the configuration offers tep.
func (e *Engine) offers(tep tcpcrypt.TEP) bool {
	for _, t := range e.cfg.TEPs {
		if t == tep {
			return true
		}
	}
	return false
}

// mayResume reports whether the configuration still allows the TEP and the
// AEAD of the session r resumes: a resumed session keeps the original
// AEAD (RFC 8548 §3.5), so one the operator removed since would go on
// being used as long as the peers reconnect within the cache's TTL.
func (e *Engine) mayResume(r *tcpcrypt.Resumption) bool {
	return e.offers(r.TEP) && slices.Contains(e.cfg.AEADs, r.Suite)
}

// resumeOffers puts the resumption suboption first (most preferred) and
// drops the fresh offer of the same TEP: a TEP may appear once per option.
func resumeOffers(fresh []eno.Offer, r *tcpcrypt.Resumption) []eno.Offer {
	sub := r.AppendSuboption(nil)
	out := []eno.Offer{{TEP: eno.TEP(r.TEP), Data: sub[1:]}}
	for _, o := range fresh {
		if o.TEP != eno.TEP(r.TEP) {
			out = append(out, o)
		}
	}
	return out
}

// answerValid makes negotiation ignore a resumption answer in the SYN-ACK
// (v = 1 and 9 bytes or more: an identifier half first, RFC 8548 §3.5
// Figure 3) unless it answers the resumption we offered (r, nil when we
// offered none): another suboption may then win, and if it was the only
// one, negotiation fails and the connection stays plain (TC-24). So a
// reply for the TEP we offered resumption with must carry the other half
// of our identifier (TC-23), even when the nonce after it is longer than
// the 8 bytes §3.5 allows (MatchReply rejects that nonce too, so such an
// answer is ignored rather than taken as a fresh offer of the TEP); one
// for a TEP we offered fresh, or from a host we offered no resumption at
// all, answers nothing we asked (docs/protocol.md U-5). A fresh answer
// (v = 0, or v = 1 with fewer than 9 bytes, TC-22) stays valid.
func answerValid(r *tcpcrypt.Resumption) eno.ValidFunc {
	return func(c eno.Candidate) bool {
		if c.Role != eno.RoleA || !c.Peer.V() || len(c.Peer.Data) < tcpcrypt.ResumeHalf {
			return true
		}
		return r != nil && tcpcrypt.TEP(c.TEP) == r.TEP && r.MatchReply(c.Peer.Byte, c.Peer.Data)
	}
}

// noResumptionOffered is answerValid(nil), made once rather than per SYN.
var noResumptionOffered = answerValid(nil)
