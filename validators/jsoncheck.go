package validators

import (
	"bytes"
	"errors"
	"io"

	"github.com/go-json-experiment/json/jsontext"
)

// MaxJSONDepth is the deepest nesting of objects and arrays a JSON body may
// have. Real webhooks nest a few levels; a body of 10 MB of '[' is an attack
// on every recursive JSON reader (README.md, "Hostile input").
const MaxJSONDepth = 1000

// Reasons a JSON body is refused (a bounded set, like every rejection
// reason).
const (
	ReasonJSONTooDeep      = "JSON nested deeper than 1000 levels"
	ReasonJSONDuplicateKey = "duplicate key in a JSON object"
)

var (
	errJSONTooDeep      = errors.New(ReasonJSONTooDeep)
	errJSONDuplicateKey = errors.New(ReasonJSONDuplicateKey)
	errJSONSyntax       = errors.New("not valid JSON")
)

// looksLikeJSONContainer reports whether body's first non-space byte opens
// an object or an array: the only bodies that can nest or repeat keys.
func looksLikeJSONContainer(body []byte) bool {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	return len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[')
}

// checkJSON scans body in time linear in its length, without deep
// recursion. It reports errJSONTooDeep past MaxJSONDepth,
// errJSONDuplicateKey when an object repeats a key (compared after
// unescaping, so "a" and "\u0061" are the same key), errJSONSyntax for
// anything else that is not one JSON value, and nil for a valid body.
// Whichever problem comes first in the body is the one reported.
//
// A valid body is recognised in one pass of validJSON (no tokens, no
// allocation for ordinary objects), which is what nearly every request
// takes. Only a body it refuses takes the token-by-token scan through
// jsontext, which says which problem came first; FuzzJSONValid holds the
// two to the same verdict on every input (bench/README.md, "CPU of the
// condition chain").
func checkJSON(body []byte) error {
	if validJSON(body, nil, nil) {
		return nil
	}
	return scanJSON(body)
}

// scanJSON is checkJSON token by token: slower, but it reports which
// problem comes first, and checks the depth after every token, so
// jsontext's own, larger nesting limit is never what stops a deep body.
func scanJSON(body []byte) error {
	// A bytes.Buffer is read in place; any other reader is copied into
	// the decoder's own buffer first.
	dec := jsontext.NewDecoder(bytes.NewBuffer(body))
	for tokens := 0; ; tokens++ {
		_, err := dec.ReadToken()
		if err == io.EOF {
			if tokens == 0 {
				return errJSONSyntax // no value at all
			}
			return nil
		}
		if err != nil {
			var serr *jsontext.SyntacticError
			if errors.As(err, &serr) && errors.Is(serr.Err, jsontext.ErrDuplicateName) {
				return errJSONDuplicateKey
			}
			return errJSONSyntax
		}
		switch depth := dec.StackDepth(); {
		case depth > MaxJSONDepth:
			return errJSONTooDeep
		case depth == 0:
			// One whole value read: only whitespace may follow (the
			// decoder itself would go on to a second value).
			if _, err := dec.ReadToken(); err != io.EOF {
				return errJSONSyntax
			}
			return nil
		}
	}
}

// looksLikeJSONObject reports whether body's first non-space byte opens an
// object.
func looksLikeJSONObject(body []byte) bool {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	return len(trimmed) > 0 && trimmed[0] == '{'
}
