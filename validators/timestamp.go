package validators

import (
	"fmt"
	"time"
)

// DirectiveTimestamp is the directive name webhook_timestamp rejections
// carry.
const DirectiveTimestamp = "webhook_timestamp"

// DefaultFreshness is webhook_timestamp's tolerance when none is set: a
// minute either way, Linear's window and enough for clocks kept by NTP.
const DefaultFreshness = 60 * time.Second

// The timestamp formats only webhook_timestamp reads, beside unix, unix_ms
// and rfc3339. Read them with ParseTimestamp: TimestampFormat.Parse knows
// only the formats senders sign.
const (
	// TimestampHTTPDate is an HTTP date (RFC 9110 §5.6.7): the IMF-fixdate
	// "Sun, 06 Nov 1994 08:49:37 GMT", or the obsolete RFC 850 and asctime
	// forms recipients must still accept. Always GMT.
	TimestampHTTPDate TimestampFormat = "http_date"
	// TimestampAuto recognizes the format from the value, by rules that
	// never give one value two meanings: up to 11 digits are unix seconds,
	// exactly 13 digits unix milliseconds (other digit counts are
	// rejected, as they are either ambiguous or centuries away); otherwise
	// an RFC 3339 date-time; otherwise an HTTP date.
	TimestampAuto TimestampFormat = "auto"
)

// maxTimestampLen bounds a timestamp value before any parsing: the
// longest real one (RFC 3339 with nanoseconds and an offset, or an RFC 850
// date) is under 40 bytes.
const maxTimestampLen = 64

// Digit counts TimestampAuto gives a meaning: 11 digits of seconds reach
// the year 5138, 13 digits of milliseconds span 2001 to 2286.
const (
	autoMaxSecondsDigits = 11
	autoMillisDigits     = 13
)

// httpDateLayouts are the three HTTP date forms, each with GMT written
// literally so that no other zone is accepted.
var httpDateLayouts = []string{
	"Mon, 02 Jan 2006 15:04:05 GMT",  // IMF-fixdate (http.TimeFormat)
	"Monday, 02-Jan-06 15:04:05 GMT", // RFC 850
	"Mon Jan _2 15:04:05 2006",       // asctime (no zone: GMT)
}

// ParseFreshnessFormat reads webhook_timestamp's format keyword: unix,
// unix_ms, rfc3339, http_date or auto ("" means auto).
func ParseFreshnessFormat(s string) (TimestampFormat, error) {
	if s == "" {
		return TimestampAuto, nil
	}
	// Any ASCII letter case, as ParseTimestampFormat accepts.
	for _, f := range []TimestampFormat{TimestampUnix, TimestampUnixMilli, TimestampRFC3339, TimestampHTTPDate, TimestampAuto} {
		if equalFoldASCII(s, string(f)) {
			return f, nil
		}
	}
	return "", fmt.Errorf("unknown timestamp format %q: use unix, unix_ms, rfc3339, http_date or auto", s)
}

// equalFoldASCII compares ignoring ASCII case only.
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

// ParseTimestamp reads v in format f: any of unix, unix_ms, rfc3339,
// http_date and auto ("" is unix, as for TimestampFormat.Parse). The one
// error it returns says only that v is malformed, as v comes from the
// sender.
func ParseTimestamp(f TimestampFormat, v string) (time.Time, error) {
	if len(v) > maxTimestampLen {
		return time.Time{}, errMalformedTimestamp
	}
	switch f {
	case TimestampHTTPDate:
		return parseHTTPDate(v)
	case TimestampAuto:
		return parseAuto(v)
	default:
		return f.Parse(v)
	}
}

// parseAuto applies TimestampAuto's rules.
func parseAuto(v string) (time.Time, error) {
	if v != "" && allDigits(v) {
		switch {
		case len(v) <= autoMaxSecondsDigits:
			return TimestampUnix.Parse(v)
		case len(v) == autoMillisDigits:
			return TimestampUnixMilli.Parse(v)
		default:
			return time.Time{}, errMalformedTimestamp
		}
	}
	if t, err := TimestampRFC3339.Parse(v); err == nil {
		return t, nil
	}
	return parseHTTPDate(v)
}

// parseHTTPDate reads the three HTTP date forms, in UTC.
func parseHTTPDate(v string) (time.Time, error) {
	for _, layout := range httpDateLayouts {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errMalformedTimestamp
}

func allDigits(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return true
}

// Timestamp is the webhook_timestamp condition: a request whose timestamp
// is missing, malformed or further than Tolerance from the receiver's
// clock is rejected.
//
// It stops replays only when the timestamp is signed: otherwise a replayer
// sends an old body with a fresh timestamp. Prefer webhook_hmac presets
// that sign it (slack, stripe, standard, linear); use this condition for
// senders that sign it some other way (a JWT, a {header.NAME} in an HMAC
// message) or for a best-effort check.
type Timestamp struct {
	// Source is where the timestamp is: a header, query parameter or body
	// field.
	Source Source
	// Format is unix, unix_ms, rfc3339, http_date or auto (the default
	// when empty).
	Format TimestampFormat
	// Tolerance is the largest allowed distance from the receiver's clock,
	// past or future; DefaultFreshness when zero.
	Tolerance time.Duration

	// prepared holds the checked settings once Validate succeeded, so that
	// Verify does not check them again per request.
	prepared *timestampSettings
}

type timestampSettings struct {
	format    TimestampFormat
	tolerance time.Duration
}

// Validate checks the configuration and prepares it for Verify. Errors
// name the setting at fault and how to fix it. Fields must not change
// after it.
func (t *Timestamp) Validate() error {
	format, tolerance, err := t.settings()
	if err != nil {
		return fmt.Errorf("%s: %w", DirectiveTimestamp, err)
	}
	t.prepared = &timestampSettings{format: format, tolerance: tolerance}
	return nil
}

// settings checks the configuration and returns the format and tolerance
// with their defaults applied. Verify uses what Validate prepared, or
// calls it per request (without caching, which would race with concurrent
// Verify calls) so that Verify is safe without Validate.
func (t *Timestamp) settings() (TimestampFormat, time.Duration, error) {
	if err := t.Source.check(); err != nil {
		return "", 0, fmt.Errorf("timestamp: %w", err)
	}
	format, err := ParseFreshnessFormat(string(t.Format))
	if err != nil {
		return "", 0, err
	}
	if t.Tolerance < 0 {
		return "", 0, fmt.Errorf("tolerance %s is negative: use a positive duration such as 60s", t.Tolerance)
	}
	tolerance := t.Tolerance
	if tolerance == 0 {
		tolerance = DefaultFreshness
	}
	return format, tolerance, nil
}

// Verify returns nil when r carries a timestamp within the tolerance, else
// a *Rejection for webhook_timestamp: "missing timestamp" (absent or
// empty), "malformed timestamp" or "timestamp outside tolerance". A
// configuration Validate would refuse fails closed.
func (t *Timestamp) Verify(r *Request) error {
	var format TimestampFormat
	var tolerance time.Duration
	if p := t.prepared; p != nil {
		format, tolerance = p.format, p.tolerance
	} else {
		var err error
		if format, tolerance, err = t.settings(); err != nil {
			return Reject(DirectiveTimestamp, reasonMisconfigured)
		}
	}
	v, ok, again := t.Source.GetOnce(r)
	if again {
		return Reject(DirectiveTimestamp, reasonRepeatedTimestamp)
	}
	if !ok || v == "" {
		return Reject(DirectiveTimestamp, reasonMissingTimestamp)
	}
	at, err := ParseTimestamp(format, v)
	if err != nil {
		return Reject(DirectiveTimestamp, reasonMalformedTimestamp)
	}
	if !withinTolerance(r.Clock(), at, tolerance) {
		return Reject(DirectiveTimestamp, reasonTimestampTolerance)
	}
	return nil
}

// String describes the condition, e.g. for debug logs.
func (t Timestamp) String() string {
	return fmt.Sprintf("webhook_timestamp{%s, format: %q, tolerance: %s}", t.Source, t.Format, t.Tolerance)
}
