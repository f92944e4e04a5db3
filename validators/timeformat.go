package validators

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// TimestampFormat says how a sender writes a timestamp.
type TimestampFormat string

// The timestamp formats signed timestamps come in.
const (
	// TimestampUnix is decimal seconds since the epoch (Slack, Stripe,
	// Standard Webhooks).
	TimestampUnix TimestampFormat = "unix"
	// TimestampUnixMilli is decimal milliseconds since the epoch (Linear,
	// the Valohai client's unix_ms).
	TimestampUnixMilli TimestampFormat = "unix_ms"
	// TimestampRFC3339 is an RFC 3339 date-time, fractional seconds allowed.
	TimestampRFC3339 TimestampFormat = "rfc3339"
)

// ParseTimestampFormat reads a format keyword; "" means unix, the format
// of every preset sender that signs a timestamp header.
func ParseTimestampFormat(s string) (TimestampFormat, error) {
	switch f := TimestampFormat(strings.ToLower(s)); f {
	case "":
		return TimestampUnix, nil
	case TimestampUnix, TimestampUnixMilli, TimestampRFC3339:
		return f, nil
	default:
		return "", fmt.Errorf("unknown timestamp format %q: use unix, unix_ms or rfc3339", s)
	}
}

// errMalformedTimestamp is the one error Parse returns: the value comes
// from the sender, so the error says nothing more specific about it.
var errMalformedTimestamp = errors.New("malformed timestamp")

// maxEpochDigits bounds a numeric timestamp: 18 digits always fit in an
// int64, and no real clock needs more (1e18 ms is 31 million years).
const maxEpochDigits = 18

// Parse reads a timestamp in format f ("" is unix). Numbers must be plain
// decimal digits: no sign, space or fraction, so that one timestamp has one
// spelling.
func (f TimestampFormat) Parse(v string) (time.Time, error) {
	switch f {
	case TimestampUnix, "", TimestampUnixMilli:
		if v == "" || len(v) > maxEpochDigits {
			return time.Time{}, errMalformedTimestamp
		}
		for i := 0; i < len(v); i++ {
			if v[i] < '0' || v[i] > '9' {
				return time.Time{}, errMalformedTimestamp
			}
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return time.Time{}, errMalformedTimestamp
		}
		if f == TimestampUnixMilli {
			return time.UnixMilli(n), nil
		}
		return time.Unix(n, 0), nil
	case TimestampRFC3339:
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return time.Time{}, errMalformedTimestamp
		}
		return t, nil
	default:
		return time.Time{}, errMalformedTimestamp
	}
}

// withinTolerance reports whether t is no more than tolerance away from
// now, in the past or the future. It compares the signed difference with
// both bounds instead of taking an absolute value, because time.Sub
// saturates at the minimum Duration, whose negation overflows.
func withinTolerance(now, t time.Time, tolerance time.Duration) bool {
	d := now.Sub(t)
	return d >= -tolerance && d <= tolerance
}
