package validators

import "testing"

// A jwks_url printed in an error or a log keeps its scheme, host and path
// and loses everything that could carry a secret.
func TestStripURLCredentialsAndQuery(t *testing.T) {
	for in, want := range map[string]string{
		"https://issuer.example/.well-known/jwks.json":                      "https://issuer.example/.well-known/jwks.json",
		"https://user:s3cret@issuer.example/jwks.json":                      "https://issuer.example/jwks.json",
		"https://issuer.example/jwks.json?api_key=s3cret":                   "https://issuer.example/jwks.json",
		"https://issuer.example/jwks.json?":                                 "https://issuer.example/jwks.json",
		"https://issuer.example/jwks.json#s3cret":                           "https://issuer.example/jwks.json",
		"http://k:s3cret@127.0.0.1:8443/keys?token=s3cret#frag":             "http://127.0.0.1:8443/keys",
		"https://issuer.example/%zz":                                        "(unparseable URL)",
		"https://only-user@issuer.example/.well-known/openid-keys?x=s3cret": "https://issuer.example/.well-known/openid-keys",
	} {
		if got := StripURLCredentialsAndQuery(in); got != want {
			t.Errorf("StripURLCredentialsAndQuery(%q) = %q, want %q", in, got, want)
		}
	}
}
