package caddymodule

import (
	"context"
	"net/http"

	"github.com/hooklaunch/caddy-valohai/launch"
)

// admission is what the conditions before a valohai_launch reserve for a
// request: the claims (quota units, delivery keys) that valohai_launch
// commits with the run, in one store operation (README.md, "The durable
// write path"), and for each claim the answer of its condition when the
// store denies it at commit. Nothing is taken unless the run is stored.
type admission struct {
	claims []launch.Claim
	deny   []denyFunc
}

// denyFunc answers a request whose claim the store denied at commit,
// exactly as its condition answers on a route without valohai_launch.
type denyFunc func(w http.ResponseWriter, r *http.Request, d *launch.ClaimDenied) error

type admissionKey struct{}

// withClaims adds claims, all answered by deny when denied, to the
// request's admission.
func withClaims(r *http.Request, deny denyFunc, claims ...launch.Claim) *http.Request {
	a, ok := r.Context().Value(admissionKey{}).(*admission)
	if !ok {
		a = &admission{}
		r = r.WithContext(context.WithValue(r.Context(), admissionKey{}, a))
	}
	for _, c := range claims {
		a.claims = append(a.claims, c)
		a.deny = append(a.deny, deny)
	}
	return r
}

// admissionOf returns the request's admission, nil when no condition
// claimed anything.
func admissionOf(r *http.Request) *admission {
	a, _ := r.Context().Value(admissionKey{}).(*admission)
	return a
}

// claimsOf is the claims of a (none for nil).
func (a *admission) claimsOf() []launch.Claim {
	if a == nil {
		return nil
	}
	return a.claims
}

// denied answers a denial of the store with the answer of the condition
// that made the claim; ok is false when d is not one of a's claims.
func (a *admission) denied(w http.ResponseWriter, r *http.Request, d *launch.ClaimDenied) (err error, ok bool) {
	if a == nil || d.Index < 0 || d.Index >= len(a.deny) {
		return nil, false
	}
	return a.deny[d.Index](w, r, d), true
}
