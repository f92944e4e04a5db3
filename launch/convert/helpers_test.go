package convert

import (
	"encoding/json"

	"github.com/hooklaunch/caddy-valohai/launch/internal/jsontest"
)

// testdataDir holds the fixtures, shared with the launch package's tests.
const testdataDir = "../testdata"

func decodeNumbers(data []byte, out any) error { return jsontest.DecodeNumbers(data, out) }

// compactJSON renders a value for test messages.
func compactJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "<unencodable>"
	}
	return string(b)
}
