package convert

import (
	"bytes"
	"encoding/json"
	"errors"
)

// testdataDir holds the fixtures, shared with the launch package's tests.
const testdataDir = "../testdata"

// decodeNumbers decodes JSON keeping numbers as json.Number, as the
// launch client decodes Valohai's answers.
func decodeNumbers(data []byte, out any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// compactJSON renders a value for test messages.
func compactJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "<unencodable>"
	}
	return string(b)
}
