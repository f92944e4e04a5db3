package caddymodule

import (
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hooklaunch/caddy-valohai/launch"
	"github.com/hooklaunch/caddy-valohai/launch/store"
	"github.com/hooklaunch/caddy-valohai/launch/store/redistest"
)

// consoleLogStores are the two stores the console reads through the same
// queries: its paging must hold on both.
func consoleLogStores(t *testing.T) map[string]launch.Store {
	t.Helper()
	b, err := store.OpenBolt(filepath.Join(t.TempDir(), "v.db"), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := store.OpenRedis(redistest.Start(t), store.RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(); _ = r.Close() })
	return map[string]launch.Store{"bolt": b, "redis": r}
}

// fillTriggerLog stores runs of three triggers and rejections, several of
// them sharing a timestamp (the cursor's hard case), and returns every
// entry's key, newest first, in the console's order.
func fillTriggerLog(t *testing.T, s launch.Store, base time.Time) []string {
	t.Helper()
	type entry struct {
		at  time.Time
		key string
		run bool
	}
	var all []entry
	triggers := []string{"alpha", "beta", "gamma"}
	for i := range 40 {
		at := base.Add(time.Duration(i/3) * time.Second) // groups of three share a time
		run := &launch.Run{
			ID: fmt.Sprintf("run-%02d", i), Trigger: triggers[i%3], Path: "/hooks/" + triggers[i%3],
			CreatedAt: at, UpdatedAt: at, Status: launch.StatusCompleted,
			Actions: []launch.Action{{Kind: launch.ActionFetchRepository, State: launch.ActionDone}},
		}
		if i%4 == 0 {
			run.Status = launch.StatusError
			run.Actions[0].State = launch.ActionFailed
		}
		if err := s.CreateRun(t.Context(), run, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.CompleteRun(t.Context(), run.ID); err != nil {
			t.Fatal(err)
		}
		all = append(all, entry{at, "run:" + run.ID + ":" + run.Trigger + ":" + string(run.Status), true})
	}
	for i := range 15 {
		at := base.Add(time.Duration(i) * time.Second) // same times as runs
		rej := launch.Rejected{At: at, Host: "h", Path: "/hooks/alpha", Directive: "webhook_hmac", Reason: fmt.Sprintf("r%02d", i)}
		if err := s.LogRejection(t.Context(), rej); err != nil {
			t.Fatal(err)
		}
		all = append(all, entry{at, "rej:" + rej.Reason, false})
	}
	slices.SortStableFunc(all, func(a, b entry) int {
		if c := b.at.Compare(a.at); c != 0 {
			return c
		}
		switch {
		case a.run && b.run:
			return strings.Compare(b.key, a.key)
		case a.run:
			return -1
		case b.run:
			return 1
		}
		return 0
	})
	keys := make([]string, len(all))
	for i, e := range all {
		keys[i] = e.key
	}
	return keys
}

func entryKey(e consoleEntry) string {
	if e.Run != nil {
		return "run:" + e.Run.ID + ":" + e.Run.Trigger + ":" + string(e.Run.Status)
	}
	return "rej:" + e.Rejection.Reason
}

// walk pages through the list with the query q and returns every entry.
func walk(t *testing.T, s launch.Store, q string, allowed []string, now time.Time) []string {
	t.Helper()
	var out []string
	vals, _ := url.ParseQuery(q)
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("paging does not end")
		}
		cq, err := parseConsoleQuery(vals, now)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		list, err := listConsole(t.Context(), s, cq, allowed)
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Entries) > cq.Limit {
			t.Fatalf("a page of %d entries for limit %d", len(list.Entries), cq.Limit)
		}
		for _, e := range list.Entries {
			out = append(out, entryKey(e))
		}
		if list.Next == nil {
			return out
		}
		vals = cq.values()
		vals.Set("before", list.Next.String())
	}
}

func TestConsoleListPaging(t *testing.T) {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now := base.Add(time.Hour)
	for name, s := range consoleLogStores(t) {
		t.Run(name, func(t *testing.T) {
			all := fillTriggerLog(t, s, base)
			filter := func(keep func(string) bool) []string {
				var out []string
				for _, k := range all {
					if keep(k) {
						out = append(out, k)
					}
				}
				return out
			}
			isRun := func(k string) bool { return strings.HasPrefix(k, "run:") }
			at := func(k string) time.Time {
				var i int
				if isRun(k) {
					fmt.Sscanf(k, "run:run-%d", &i)
					return base.Add(time.Duration(i/3) * time.Second)
				}
				fmt.Sscanf(k, "rej:r%d", &i)
				return base.Add(time.Duration(i) * time.Second)
			}
			since, until := base.Add(4*time.Second), base.Add(9*time.Second)
			for _, tc := range []struct {
				query   string
				allowed []string
				want    []string
			}{
				{"", nil, all},
				{"limit=1", nil, all},
				{"limit=2", nil, all},
				{"limit=7", nil, all},
				{"limit=500", nil, all},
				{"trigger=beta&limit=4", nil, filter(func(k string) bool { return strings.Contains(k, ":beta:") })},
				{"status=error&limit=3", nil, filter(func(k string) bool { return strings.HasSuffix(k, ":error") })},
				{"status=rejected&limit=4", nil, filter(func(k string) bool { return !isRun(k) })},
				{"path=/hooks/alpha&limit=5", nil, filter(func(k string) bool { return !isRun(k) || strings.Contains(k, ":alpha:") })},
				{"since=" + since.Format(time.RFC3339) + "&until=" + until.Format(time.RFC3339) + "&limit=4", nil,
					filter(func(k string) bool { return !at(k).Before(since) && at(k).Before(until) })},
				{"until=" + base.Add(2*time.Second).Format(time.RFC3339) + "&limit=2", nil, filter(func(k string) bool { return at(k).Before(base.Add(2 * time.Second)) })},
				// A console limited to triggers: their runs, in one order, no rejections.
				{"limit=3", []string{"gamma", "alpha"}, filter(func(k string) bool { return strings.Contains(k, ":alpha:") || strings.Contains(k, ":gamma:") })},
				{"trigger=beta", []string{"gamma", "alpha"}, nil},
				{"last=1h&limit=6", nil, all},
				{"last=30m", nil, nil}, // everything is an hour old
			} {
				got := walk(t, s, tc.query, tc.allowed, now)
				if strings.Join(got, " ") != strings.Join(tc.want, " ") {
					t.Errorf("%q (allowed %v):\n got %v\nwant %v", tc.query, tc.allowed, got, tc.want)
				}
			}
		})
	}
}

func TestConsoleQueryParsing(t *testing.T) {
	now := time.Date(2026, 12, 6, 18, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		query string
		check func(consoleQuery) bool
		err   string
	}{
		{"since=2026-12-06T17:00", func(q consoleQuery) bool { return q.From.Equal(now.Add(-time.Hour)) }, ""},
		{"since=2026-12-06T17:00:30", func(q consoleQuery) bool { return q.Since.Equal(now.Add(-59*time.Minute - 30*time.Second)) }, ""},
		{"since=2026-12-06", func(q consoleQuery) bool { return q.Since.Equal(now.Add(-18 * time.Hour)) }, ""},
		{"since=2026-12-06T19:00:00%2B02:00", func(q consoleQuery) bool { return q.Since.Equal(now.Add(-time.Hour)) }, ""},
		{"last=7d", func(q consoleQuery) bool { return q.From.Equal(now.Add(-7 * 24 * time.Hour)) }, ""},
		{"last=90m&since=2026-12-06T17:00", func(q consoleQuery) bool { return q.From.Equal(now.Add(-time.Hour)) }, ""},
		{"last=1h&since=2026-12-06T10:00", func(q consoleQuery) bool { return q.From.Equal(now.Add(-time.Hour)) }, ""},
		{"limit=500", func(q consoleQuery) bool { return q.Limit == 500 }, ""},
		{"", func(q consoleQuery) bool { return q.Limit == consoleDefaultPage && q.From.IsZero() && q.Cursor == nil }, ""},
		{"before=1700000000000000000.3", func(q consoleQuery) bool {
			return q.Cursor.At.Equal(time.Unix(1700000000, 0)) && q.Cursor.Skip == 3
		}, ""},
		{"limit=501", nil, "limit"},
		{"last=0h", nil, "last"},
		{"last=400d", nil, "last"},
		{"last=-1h", nil, "last"},
		{"until=tomorrow", nil, "until"},
		{"status=Completed", nil, "status"},
		{"before=1.2.3", nil, "before"},
		{"before=-5.0", nil, "before"},
		{"before=5.-1", nil, "before"},
		{"trigger=" + strings.Repeat("t", 257), nil, "trigger"},
	} {
		v, err := url.ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		q, err := parseConsoleQuery(v, now)
		switch {
		case tc.err != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.err)):
			t.Errorf("%q: err %v, want one about %s", tc.query, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.query, err)
		case tc.err == "" && !tc.check(q):
			t.Errorf("%q: parsed %+v", tc.query, q)
		}
	}
}

// FuzzConsoleQuery: any query string a browser may send parses or is
// refused, never panics; what parses keeps its bounds and survives the
// round trip through the links the page builds.
func FuzzConsoleQuery(f *testing.F) {
	for _, s := range []string{
		"", "trigger=a&status=error&path=/x&limit=10", "since=2026-12-06T17:00&until=2026-12-07",
		"last=7d", "last=90m", "before=1700000000000000000.3", "before=9223372036854775807.10000",
		"since=2026-12-06T19:00:00%2B02:00", "limit=-1", "status=rejected&before=0.0",
	} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 6, 18, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := parseConsoleQuery(v, now)
		if err != nil {
			if len(err.Error()) > 300 {
				t.Fatalf("an error message of %d bytes", len(err.Error()))
			}
			return
		}
		if q.Limit < 1 || q.Limit > consoleMaxPage {
			t.Fatalf("limit %d", q.Limit)
		}
		if !q.Since.IsZero() && !q.Until.IsZero() && !q.Until.After(q.Since) {
			t.Fatalf("until %v not after since %v", q.Until, q.Since)
		}
		if q.Cursor != nil {
			c, err := parseConsoleCursor(q.Cursor.String())
			if err != nil || !c.At.Equal(q.Cursor.At) || c.Skip != q.Cursor.Skip {
				t.Fatalf("cursor %v does not round-trip: %v %v", q.Cursor, c, err)
			}
		}
		again, err := parseConsoleQuery(q.values(), now)
		if err != nil {
			t.Fatalf("the page's own link query %q is refused: %v", q.values().Encode(), err)
		}
		if again.Trigger != q.Trigger || again.Status != q.Status || again.Path != q.Path || again.Limit != q.Limit ||
			!again.Since.Equal(q.Since) || !again.Until.Equal(q.Until) || !again.From.Equal(q.From) {
			t.Fatalf("round trip changed the filter: %+v -> %+v", q, again)
		}
	})
}

// A bad value is echoed quoted and short whatever bytes it holds: the
// bound is on the quoted form (a control byte quotes as four), and the cut
// falls between characters, never inside an escape or a UTF-8 sequence.
// FuzzConsoleQuery found the byte-counted cut letting 47 control bytes
// through as a 301-byte message.
func TestQuoteForMessageBoundsTheQuotedForm(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"7x", `"7x"`},
		{strings.Repeat("\x19", 47), `"` + strings.Repeat(`\x19`, 14) + `"…`},
		{strings.Repeat("é", 40), `"` + strings.Repeat("é", 29) + `"…`},
		{strings.Repeat("a", 62), `"` + strings.Repeat("a", 62) + `"`},
		{strings.Repeat("a", 63), `"` + strings.Repeat("a", 59) + `"…`},
	} {
		got := quoteForMessage(tc.in)
		if got != tc.want {
			t.Errorf("quoteForMessage(%q) = %s, want %s", tc.in, got, tc.want)
		}
		if len(got) > 64 {
			t.Errorf("quoteForMessage(%q) is %d bytes", tc.in, len(got))
		}
	}
	_, err := parseConsoleQuery(url.Values{"since": {"\xf5" + strings.Repeat("\x19", 46)}}, time.Now())
	if err == nil || len(err.Error()) > 200 || !strings.HasPrefix(err.Error(), `since: "\xf5\x19`) {
		t.Fatalf("since with control bytes: %v", err)
	}
}
