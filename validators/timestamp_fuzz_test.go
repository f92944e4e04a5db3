package validators

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzParseTimestamp feeds arbitrary values to every timestamp format.
// None may panic; each accepted value must mean what an independent
// reading says (strconv for numbers, time.Parse for RFC 3339, net/http's
// ParseTime for HTTP dates); auto must accept exactly the values one rule
// gives a meaning to; and webhook_timestamp must agree with the parser.
func FuzzParseTimestamp(f *testing.F) {
	for _, v := range []string{
		"1700000000", "0", "99999999999", "170000000012", "1700000000123", "17000000001234",
		"999999999999999999", "9999999999999999999", "+1", "-1", " 1", "1.5", "1e9", "",
		testNowRFC3339, "2023-11-14T23:13:20.123456789+01:00", "2023-11-14T22:13:20", "0000-01-01T00:00:00Z",
		"9999-12-31T23:59:59.999999999-23:59", "2023-11-14t22:13:20z",
		testNowHTTPDate, testNowRFC850, testNowASCTime, "Tue Nov  7 22:13:20 2023",
		"Tue, 14 Nov 2023 22:13:20 UTC", "Tuesday, 14-Nov-23 22:13:20 EST", "Mon, 31 Feb 2023 25:61:61 GMT",
		"\x00", "\xff\xfe", "１７００００００００",
	} {
		for format := uint8(0); format < 5; format++ {
			f.Add(format, v)
		}
	}
	formats := []TimestampFormat{TimestampUnix, TimestampUnixMilli, TimestampRFC3339, TimestampHTTPDate, TimestampAuto}
	cond := &Timestamp{Source: Source{Kind: SourceHeader, Name: "X-Timestamp"}}
	if err := cond.Validate(); err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, sel uint8, v string) {
		format := formats[int(sel)%len(formats)]
		got, err := ParseTimestamp(format, v)
		if err != nil {
			if err != errMalformedTimestamp {
				t.Fatalf("ParseTimestamp(%s, %q) error %v, want errMalformedTimestamp", format, v, err)
			}
		} else {
			want, ok := independent(format, v)
			if !ok {
				t.Fatalf("ParseTimestamp(%s, %q) = %v, but an independent reading refuses it", format, v, got)
			}
			if !got.Equal(want) {
				t.Fatalf("ParseTimestamp(%s, %q) = %v, an independent reading gives %v", format, v, got, want)
			}
		}

		// auto: exactly one rule applies to any value it accepts.
		var meanings []time.Time
		if digitsOnly(v) && len(v) <= autoMaxSecondsDigits {
			meanings = append(meanings, mustIndependent(t, TimestampUnix, v))
		}
		if digitsOnly(v) && len(v) == autoMillisDigits {
			meanings = append(meanings, mustIndependent(t, TimestampUnixMilli, v))
		}
		for _, other := range []TimestampFormat{TimestampRFC3339, TimestampHTTPDate} {
			if len(v) <= maxTimestampLen {
				if m, ok := independent(other, v); ok {
					meanings = append(meanings, m)
				}
			}
		}
		if len(meanings) > 1 {
			t.Fatalf("%q has %d meanings under auto's rules: %v", v, len(meanings), meanings)
		}
		auto, autoErr := ParseTimestamp(TimestampAuto, v)
		if (autoErr == nil) != (len(meanings) == 1) {
			t.Fatalf("auto on %q: %v, %v; the rules give %v", v, auto, autoErr, meanings)
		}
		if autoErr == nil && !auto.Equal(meanings[0]) {
			t.Fatalf("auto on %q = %v, the rule gives %v", v, auto, meanings[0])
		}

		// webhook_timestamp (auto, 60 s) agrees with the parser.
		r := &Request{Header: http.Header{"X-Timestamp": {v}}, Now: clockAt(testNow)}
		verr := cond.Verify(r)
		var want string
		switch {
		case v == "":
			want = "webhook_timestamp: missing timestamp"
		case autoErr != nil:
			want = "webhook_timestamp: malformed timestamp"
		case !withinTolerance(testNow, auto, DefaultFreshness):
			want = "webhook_timestamp: timestamp outside tolerance"
		}
		checkVerdict(t, verr, want, DirectiveTimestamp)
	})
}

func digitsOnly(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return v != ""
}

// independent reads v in format without the code under test: strconv for
// plain decimal numbers, time.Parse for RFC 3339, http.ParseTime (limited
// to GMT, as HTTP dates are) for HTTP dates.
func independent(format TimestampFormat, v string) (time.Time, bool) {
	if len(v) > maxTimestampLen {
		return time.Time{}, false
	}
	switch format {
	case TimestampUnix, TimestampUnixMilli:
		if !digitsOnly(v) || len(v) > maxEpochDigits {
			return time.Time{}, false
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		if format == TimestampUnixMilli {
			return time.UnixMilli(n), true
		}
		return time.Unix(n, 0), true
	case TimestampRFC3339:
		t, err := time.Parse(time.RFC3339Nano, v)
		return t, err == nil
	case TimestampHTTPDate:
		t, err := http.ParseTime(v)
		if err != nil {
			return time.Time{}, false
		}
		// net/http takes any zone name in the RFC 850 form; HTTP dates
		// are GMT (the asctime form names none).
		if !strings.HasSuffix(v, " GMT") && !isASCTime(v) {
			return time.Time{}, false
		}
		return t.UTC(), true
	case TimestampAuto:
		if digitsOnly(v) {
			switch {
			case len(v) <= autoMaxSecondsDigits:
				return independent(TimestampUnix, v)
			case len(v) == autoMillisDigits:
				return independent(TimestampUnixMilli, v)
			}
			return time.Time{}, false
		}
		if t, ok := independent(TimestampRFC3339, v); ok {
			return t, true
		}
		return independent(TimestampHTTPDate, v)
	}
	return time.Time{}, false
}

func mustIndependent(t *testing.T, format TimestampFormat, v string) time.Time {
	t.Helper()
	m, ok := independent(format, v)
	if !ok {
		t.Fatalf("independent %s reading of %q failed", format, v)
	}
	return m
}

// isASCTime reports whether v parses in the asctime layout, the one HTTP
// date form without a zone name.
func isASCTime(v string) bool {
	_, err := time.Parse(time.ANSIC, v)
	return err == nil
}
