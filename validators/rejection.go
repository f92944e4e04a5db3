package validators

import "errors"

// Rejection is a failed condition: the directive that failed and a short
// reason safe to show the sender. It never carries a secret, an expected
// signature or token.
type Rejection struct {
	Directive string
	Reason    string
}

func (r *Rejection) Error() string { return r.Directive + ": " + r.Reason }

// Reject builds a Rejection.
func Reject(directive, reason string) *Rejection {
	return &Rejection{Directive: directive, Reason: reason}
}

// AsRejection returns the Rejection inside err, if any.
func AsRejection(err error) (*Rejection, bool) {
	var r *Rejection
	ok := errors.As(err, &r)
	return r, ok
}

// reasonMisconfigured rejects a request that reaches a condition whose
// configuration is invalid (Verify without a successful Validate): such a
// condition fails closed rather than letting requests through.
const reasonMisconfigured = "condition misconfigured"
