package caddymodule

import "testing"

// Only a body that can be Slack's challenge is read as JSON by the
// handshake check; every spelling of the challenge must still get through.
func TestMayBeURLVerification(t *testing.T) {
	for _, tc := range []struct {
		body string
		want bool
	}{
		{`{"type":"url_verification","challenge":"x"}`, true},
		{"  \n{\"challenge\":\"x\",\"type\":\"url_verification\"}", true},
		{`{"type":"url\u005fverification","challenge":"x"}`, true},
		{`{"type":"\u0075rl_verification"}`, true},
		{`{"type":"event_callback","event":{"text":"caf\u00e9"}}`, true}, // an escape: read it to be sure
		{`{"type":"event_callback","event":{"type":"app_mention"}}`, false},
		{`{"ref":"refs/heads/main"}`, false},
		{`["url_verification"]`, false},
		{`"url_verification"`, false},
		{`token=x&type=url_verification`, false},
		{``, false},
	} {
		if got := mayBeURLVerification([]byte(tc.body)); got != tc.want {
			t.Errorf("%q: %v, want %v", tc.body, got, tc.want)
		}
	}
}
