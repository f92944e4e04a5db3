package validators

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testNow (1700000000) is Tuesday 2023-11-14 22:13:20 UTC.
const (
	testNowHTTPDate = "Tue, 14 Nov 2023 22:13:20 GMT"
	testNowRFC850   = "Tuesday, 14-Nov-23 22:13:20 GMT"
	testNowASCTime  = "Tue Nov 14 22:13:20 2023"
	testNowRFC3339  = "2023-11-14T22:13:20Z"
)

func TestParseTimestamp(t *testing.T) {
	tests := []struct {
		format TimestampFormat
		value  string
		want   time.Time // zero: malformed
	}{
		// Explicit formats.
		{TimestampUnix, "1700000000", testNow},
		{TimestampUnixMilli, "1700000000123", testNow.Add(123 * time.Millisecond)},
		{TimestampRFC3339, testNowRFC3339, testNow},
		{TimestampHTTPDate, testNowHTTPDate, testNow},
		{TimestampHTTPDate, testNowRFC850, testNow},
		{TimestampHTTPDate, testNowASCTime, testNow},
		{TimestampHTTPDate, "Tue Nov  7 22:13:20 2023", testNow.AddDate(0, 0, -7)},
		{TimestampHTTPDate, "Tue, 14 Nov 2023 22:13:20 EST", time.Time{}},
		{TimestampHTTPDate, "Tue, 14 Nov 2023 22:13:20 UTC", time.Time{}},
		{TimestampHTTPDate, "Tue, 14 Nov 2023 22:13:20", time.Time{}},
		{TimestampHTTPDate, "1700000000", time.Time{}},
		{TimestampHTTPDate, testNowRFC3339, time.Time{}},
		{TimestampUnix, testNowHTTPDate, time.Time{}},
		{TimestampRFC3339, testNowHTTPDate, time.Time{}},

		// auto: digits by count, then RFC 3339, then HTTP date.
		{TimestampAuto, "1700000000", testNow},
		{TimestampAuto, "0", time.Unix(0, 0)},
		{TimestampAuto, "99999999999", time.Unix(99999999999, 0)}, // 11 digits: still seconds
		{TimestampAuto, "1700000000123", testNow.Add(123 * time.Millisecond)},
		{TimestampAuto, "170000000012", time.Time{}},   // 12 digits: ambiguous
		{TimestampAuto, "17000000001234", time.Time{}}, // 14 digits: microseconds? rejected
		{TimestampAuto, "1700000000000000", time.Time{}},
		{TimestampAuto, testNowRFC3339, testNow},
		{TimestampAuto, "2023-11-14T23:13:20.25+01:00", testNow.Add(250 * time.Millisecond)},
		{TimestampAuto, testNowHTTPDate, testNow},
		{TimestampAuto, testNowRFC850, testNow},
		{TimestampAuto, testNowASCTime, testNow},
		{TimestampAuto, "", time.Time{}},
		{TimestampAuto, "1700000000.5", time.Time{}},
		{TimestampAuto, "-1700000000", time.Time{}},
		{TimestampAuto, "+1700000000", time.Time{}},
		{TimestampAuto, " 1700000000", time.Time{}},
		{TimestampAuto, "2023-11-14", time.Time{}},
		{TimestampAuto, "2023-11-14 22:13:20Z", time.Time{}},
		{TimestampAuto, "yesterday", time.Time{}},
		{TimestampAuto, testNowHTTPDate + strings.Repeat(" ", 64), time.Time{}},
		{TimestampAuto, strings.Repeat("9", 65), time.Time{}},
		// "" keeps TimestampFormat.Parse's meaning: unix.
		{"", "1700000000", testNow},
		{"", testNowRFC3339, time.Time{}},
	}
	for _, tt := range tests {
		got, err := ParseTimestamp(tt.format, tt.value)
		if tt.want.IsZero() {
			if err == nil {
				t.Errorf("ParseTimestamp(%q, %q) = %v, want malformed", tt.format, tt.value, got)
			} else if err.Error() != "malformed timestamp" {
				t.Errorf("ParseTimestamp(%q, %q) error = %q, want the fixed \"malformed timestamp\"", tt.format, tt.value, err)
			}
			continue
		}
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("ParseTimestamp(%q, %q) = %v, %v; want %v", tt.format, tt.value, got, err, tt.want)
		}
	}
}

func TestParseFreshnessFormat(t *testing.T) {
	for in, want := range map[string]TimestampFormat{
		"":          TimestampAuto,
		"auto":      TimestampAuto,
		"unix":      TimestampUnix,
		"UNIX_MS":   TimestampUnixMilli,
		"rfc3339":   TimestampRFC3339,
		"HTTP_Date": TimestampHTTPDate,
	} {
		got, err := ParseFreshnessFormat(in)
		if err != nil || got != want {
			t.Errorf("ParseFreshnessFormat(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"iso8601", "unix_s", "unıx", "http-date"} {
		_, err := ParseFreshnessFormat(bad)
		if err == nil || !strings.Contains(err.Error(), "use unix, unix_ms, rfc3339, http_date or auto") {
			t.Errorf("ParseFreshnessFormat(%q) error = %v", bad, err)
		}
	}
}

func TestTimestampVerify(t *testing.T) {
	unix := func(d time.Duration) string { return strconv.FormatInt(testNow.Add(d).Unix(), 10) }
	header := func(v string) *Request {
		return &Request{Header: http.Header{"X-Timestamp": {v}}, Now: clockAt(testNow)}
	}
	tests := []struct {
		name    string
		cond    Timestamp
		req     *Request
		wantErr string
	}{
		{"now, auto", Timestamp{Source: Source{Kind: SourceHeader, Name: "X-Timestamp"}}, header(unix(0)), ""},
		{"59s old", Timestamp{Source: Source{Kind: SourceHeader, Name: "X-Timestamp"}}, header(unix(-59 * time.Second)), ""},
		{"60s old is the edge", Timestamp{Source: Source{Kind: SourceHeader, Name: "X-Timestamp"}}, header(unix(-60 * time.Second)), ""},
		{"61s old", Timestamp{Source: Source{Kind: SourceHeader, Name: "X-Timestamp"}}, header(unix(-61 * time.Second)), "webhook_timestamp: timestamp outside tolerance"},
		{"61s in the future", Timestamp{Source: Source{Kind: SourceHeader, Name: "X-Timestamp"}}, header(unix(61 * time.Second)), "webhook_timestamp: timestamp outside tolerance"},
		{"longer tolerance", Timestamp{Source: Source{Kind: SourceHeader, Name: "X-Timestamp"}, Tolerance: 5 * time.Minute}, header(unix(-4 * time.Minute)), ""},
		{"missing", Timestamp{Source: Source{Kind: SourceHeader, Name: "X-Timestamp"}}, &Request{Header: http.Header{}}, "webhook_timestamp: missing timestamp"},
		{"empty", Timestamp{Source: Source{Kind: SourceHeader, Name: "X-Timestamp"}}, header(""), "webhook_timestamp: missing timestamp"},
		{"malformed", Timestamp{Source: Source{Kind: SourceHeader, Name: "X-Timestamp"}}, header("soon"), "webhook_timestamp: malformed timestamp"},
		{"ms in auto", Timestamp{Source: Source{Kind: SourceHeader, Name: "X-Timestamp"}}, header(strconv.FormatInt(testNow.UnixMilli(), 10)), ""},
		{"ms given to unix", Timestamp{Source: Source{Kind: SourceHeader, Name: "X-Timestamp"}, Format: TimestampUnix}, header(strconv.FormatInt(testNow.UnixMilli(), 10)), "webhook_timestamp: timestamp outside tolerance"},
		{"seconds given to unix_ms", Timestamp{Source: Source{Kind: SourceHeader, Name: "X-Timestamp"}, Format: TimestampUnixMilli}, header(unix(0)), "webhook_timestamp: timestamp outside tolerance"},
		{"rfc3339 given to unix", Timestamp{Source: Source{Kind: SourceHeader, Name: "X-Timestamp"}, Format: TimestampUnix}, header(testNowRFC3339), "webhook_timestamp: malformed timestamp"},
		{"http date", Timestamp{Source: Source{Kind: SourceHeader, Name: "Date"}, Format: TimestampHTTPDate}, &Request{Header: http.Header{"Date": {testNowHTTPDate}}, Now: clockAt(testNow.Add(30 * time.Second))}, ""},
		{"stale http date", Timestamp{Source: Source{Kind: SourceHeader, Name: "Date"}, Format: TimestampHTTPDate}, &Request{Header: http.Header{"Date": {testNowHTTPDate}}, Now: clockAt(testNow.Add(90 * time.Second))}, "webhook_timestamp: timestamp outside tolerance"},
		{"query", Timestamp{Source: Source{Kind: SourceQuery, Name: "ts"}, Format: TimestampRFC3339}, &Request{Query: url.Values{"ts": {testNowRFC3339}}, Now: clockAt(testNow)}, ""},
		{
			"JSON number field in ms", Timestamp{Source: Source{Kind: SourceField, Name: "webhookTimestamp"}, Format: TimestampUnixMilli},
			&Request{Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`{"webhookTimestamp":` + strconv.FormatInt(testNow.UnixMilli(), 10) + `}`), Now: clockAt(testNow)}, "",
		},
		{
			"form field", Timestamp{Source: Source{Kind: SourceField, Name: "sent_at"}},
			&Request{Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, Body: []byte("sent_at=" + url.QueryEscape(testNowRFC3339)), Now: clockAt(testNow)}, "",
		},
		{
			"JSON field absent", Timestamp{Source: Source{Kind: SourceField, Name: "webhookTimestamp"}},
			&Request{Body: []byte(`{"other":1}`), Now: clockAt(testNow)}, "webhook_timestamp: missing timestamp",
		},
		{
			"JSON field not a number", Timestamp{Source: Source{Kind: SourceField, Name: "webhookTimestamp"}},
			&Request{Body: []byte(`{"webhookTimestamp":{"ms":1}}`), Now: clockAt(testNow)}, "webhook_timestamp: malformed timestamp",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cond.Validate(); err != nil {
				t.Fatal(err)
			}
			checkVerdict(t, tt.cond.Verify(tt.req), tt.wantErr, DirectiveTimestamp)
		})
	}
}

// The receiver's clock comes from the request: with no clock set, the
// real one is used.
func TestTimestampVerifyRealClock(t *testing.T) {
	c := Timestamp{Source: Source{Kind: SourceHeader, Name: "X-Timestamp"}}
	now := strconv.FormatInt(time.Now().Unix(), 10)
	checkVerdict(t, c.Verify(&Request{Header: http.Header{"X-Timestamp": {now}}}), "", DirectiveTimestamp)
	old := strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)
	checkVerdict(t, c.Verify(&Request{Header: http.Header{"X-Timestamp": {old}}}), "webhook_timestamp: timestamp outside tolerance", DirectiveTimestamp)
}

func TestTimestampValidate(t *testing.T) {
	tests := []struct {
		name    string
		cond    Timestamp
		wantErr string
	}{
		{"no source", Timestamp{}, "webhook_timestamp: timestamp: no source configured"},
		{"source without name", Timestamp{Source: Source{Kind: SourceQuery}}, "webhook_timestamp: timestamp: source query needs a name"},
		{"unknown format", Timestamp{Source: Source{Kind: SourceHeader, Name: "X-Timestamp"}, Format: "iso"}, `webhook_timestamp: unknown timestamp format "iso": use unix, unix_ms, rfc3339, http_date or auto`},
		{"negative tolerance", Timestamp{Source: Source{Kind: SourceHeader, Name: "X-Timestamp"}, Tolerance: -time.Second}, "webhook_timestamp: tolerance -1s is negative"},
	}
	for _, tt := range tests {
		err := tt.cond.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
			t.Errorf("%s: Validate() = %v, want prefix %q", tt.name, err, tt.wantErr)
		}
		// Used anyway, it fails closed.
		r := &Request{Header: http.Header{"X-Timestamp": {"1700000000"}}, Now: clockAt(testNow)}
		checkVerdict(t, tt.cond.Verify(r), "webhook_timestamp: condition misconfigured", DirectiveTimestamp)
	}
}
