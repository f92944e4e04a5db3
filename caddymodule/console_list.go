package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hooklaunch/caddy-valohai/launch"
)

// The console's list: runs and rejections, newest first, filtered and paged.
// It is built on the trigger-log queries the admin API uses (ListRuns,
// ListRejections), which return the newest matches first; the time window and
// the page cursor are applied here.

const (
	consoleDefaultPage = 50
	consoleMaxPage     = 500
	// consoleMaxScan bounds how many entries of one kind one page view reads
	// from the store (the admin API's largest limit): a time window or a
	// cursor far in the past beyond it is reported, not silently cut.
	consoleMaxScan = 10000
	// statusRejected is the console's status filter for rejections only.
	statusRejected = "rejected"
)

// consoleQuery is the list page's filter, parsed from its URL query.
type consoleQuery struct {
	Trigger string
	Status  string // "", a launch.RunStatus, or "rejected"
	Path    string
	Since   time.Time // inclusive; zero = unbounded
	Until   time.Time // exclusive; zero = unbounded
	Last    string    // "", or a window such as 24h or 7d (as written)
	From    time.Time // the effective lower bound: the later of Since and now-Last
	Limit   int
	Cursor  *consoleCursor
}

// consoleCursor marks where the previous page ended: entries at At or
// older, less the first Skip entries stamped exactly At (shown already).
type consoleCursor struct {
	At   time.Time
	Skip int
}

func (c consoleCursor) String() string {
	return strconv.FormatInt(c.At.UnixNano(), 10) + "." + strconv.Itoa(c.Skip)
}

func parseConsoleCursor(s string) (*consoleCursor, error) {
	ns, skip, ok := strings.Cut(s, ".")
	if !ok {
		return nil, errors.New("malformed page cursor")
	}
	n, err := strconv.ParseInt(ns, 10, 64)
	if err != nil || n < 0 {
		return nil, errors.New("malformed page cursor")
	}
	k, err := strconv.Atoi(skip)
	if err != nil || k < 0 || k > consoleMaxScan {
		return nil, errors.New("malformed page cursor")
	}
	return &consoleCursor{At: time.Unix(0, n).UTC(), Skip: k}, nil
}

// consoleTimeLayouts are the accepted forms of since/until: what an HTML
// datetime-local input sends (read as UTC), a date, and RFC 3339.
var consoleTimeLayouts = []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02 15:04", "2006-01-02 15:04:05", "2006-01-02", time.RFC3339Nano}

func parseConsoleTime(name, s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range consoleTimeLayouts {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%s: %s is not a time; use a UTC date and time such as 2026-12-06T18:00, a date such as 2026-12-06, or RFC 3339", name, quoteForMessage(s))
}

// parseConsoleWindow reads a "last" window: a Go duration (90m, 24h) or a
// number of days (7d), at most a year.
func parseConsoleWindow(s string) (time.Duration, error) {
	bad := fmt.Errorf("last: %s is not a time window; use e.g. 1h, 24h or 7d", quoteForMessage(s))
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 1 || n > 366 {
			return 0, bad
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		d, err = time.ParseDuration(s)
		if err != nil || d <= 0 || d > 366*24*time.Hour {
			return 0, bad
		}
	}
	return d, nil
}

// quoteForMessage is an echoed bad value as Go quotes it (%q), kept short:
// at most maxEcho bytes of the quoted form, cut between characters, "…"
// marking the cut. The bound is on the quoted form, since quoting turns
// each control or invalid byte into four ("\x19"). The page escapes it
// like everything else.
func quoteForMessage(s string) string {
	const maxEcho = 64
	q := strconv.Quote(s)
	if len(q) <= maxEcho {
		return q
	}
	cut := ""
	for i := range s { // i: each character's first byte
		next := strconv.Quote(s[:i])
		if len(next)+len("…") > maxEcho {
			break
		}
		cut = next
	}
	return cut + "…"
}

// parseConsoleQuery reads the list filters. Every bad value is an error
// naming the field and the accepted forms.
func parseConsoleQuery(q url.Values, now time.Time) (consoleQuery, error) {
	cq := consoleQuery{
		Trigger: strings.TrimSpace(q.Get("trigger")),
		Status:  q.Get("status"),
		Path:    strings.TrimSpace(q.Get("path")),
		Limit:   consoleDefaultPage,
	}
	if len(cq.Trigger) > 256 {
		return cq, errors.New("trigger: a trigger name is at most 256 bytes")
	}
	if len(cq.Path) > 2048 {
		return cq, errors.New("path: a path is at most 2048 bytes")
	}
	switch launch.RunStatus(cq.Status) {
	case "", launch.StatusPending, launch.StatusCompleted, launch.StatusError, launch.StatusCompleteWithError, statusRejected:
	default:
		return cq, fmt.Errorf("status: %s is not a status; use pending, completed, error, complete_with_error or rejected", quoteForMessage(cq.Status))
	}
	var err error
	if s := q.Get("since"); strings.TrimSpace(s) != "" {
		if cq.Since, err = parseConsoleTime("since", s); err != nil {
			return cq, err
		}
	}
	if s := q.Get("until"); strings.TrimSpace(s) != "" {
		if cq.Until, err = parseConsoleTime("until", s); err != nil {
			return cq, err
		}
	}
	cq.From = cq.Since
	if s := strings.TrimSpace(q.Get("last")); s != "" {
		d, err := parseConsoleWindow(s)
		if err != nil {
			return cq, err
		}
		cq.Last = s
		if from := now.Add(-d); from.After(cq.From) {
			cq.From = from
		}
	}
	if !cq.Since.IsZero() && !cq.Until.IsZero() && !cq.Until.After(cq.Since) {
		return cq, errors.New("until must be later than since")
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > consoleMaxPage {
			return cq, fmt.Errorf("limit: %s is not a page size; use 1-%d", quoteForMessage(s), consoleMaxPage)
		}
		cq.Limit = n
	}
	if s := q.Get("before"); s != "" {
		if cq.Cursor, err = parseConsoleCursor(s); err != nil {
			return cq, errors.New("before: malformed page cursor; start again from the newest page")
		}
	}
	return cq, nil
}

// values is the query that selects the same filters (without the cursor).
func (cq consoleQuery) values() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("trigger", cq.Trigger)
	set("status", cq.Status)
	set("path", cq.Path)
	if !cq.Since.IsZero() {
		v.Set("since", cq.Since.Format(time.RFC3339Nano))
	}
	if !cq.Until.IsZero() {
		v.Set("until", cq.Until.Format(time.RFC3339Nano))
	}
	set("last", cq.Last)
	if cq.Limit != consoleDefaultPage {
		v.Set("limit", strconv.Itoa(cq.Limit))
	}
	return v
}

// in reports whether an entry stamped t falls in the time window and at or
// before the cursor.
func (cq consoleQuery) in(t time.Time) bool {
	return (cq.From.IsZero() || !t.Before(cq.From)) &&
		(cq.Until.IsZero() || t.Before(cq.Until)) &&
		(cq.Cursor == nil || !t.After(cq.Cursor.At))
}

// past reports whether t is older than the window: lists are newest first,
// so nothing after it can match.
func (cq consoleQuery) past(t time.Time) bool {
	return !cq.From.IsZero() && t.Before(cq.From)
}

// consoleEntry is one line of the list: a run or a rejection.
type consoleEntry struct {
	At        time.Time
	Run       *runView
	Rejection *launch.Rejected
}

// consoleList is one page of the list.
type consoleList struct {
	Entries []consoleEntry
	// Next is the cursor of the following page, nil on the last one.
	Next *consoleCursor
	// Truncated is set when the store held more entries than one page view
	// reads (consoleMaxScan) before the window's end: older matches may exist.
	Truncated bool
	// RejectionsHidden says why rejections are not listed, if they are not.
	RejectionsHidden string
}

// listConsole reads one page. allowed limits the runs to those triggers
// (nil: every trigger); rejections carry no trigger name, so a console
// limited to triggers lists none.
func listConsole(ctx context.Context, store launch.Store, cq consoleQuery, allowed []string) (consoleList, error) {
	var out consoleList
	skip := 0
	if cq.Cursor != nil {
		skip = cq.Cursor.Skip
	}
	need := skip + cq.Limit + 1

	var entries []consoleEntry
	if cq.Status != statusRejected {
		triggers := []string{""}
		switch {
		case cq.Trigger != "" && allowed != nil && !slices.Contains(allowed, cq.Trigger):
			triggers = nil
		case cq.Trigger != "":
			triggers = []string{cq.Trigger}
		case allowed != nil:
			triggers = allowed
		}
		for _, trig := range triggers {
			f := launch.RunFilter{Trigger: trig, Path: cq.Path, Status: launch.RunStatus(cq.Status)}
			runs, truncated, err := collectNewest(cq, need,
				func(limit int) ([]*launch.Run, error) {
					f.Limit = limit
					return store.ListRuns(ctx, f)
				},
				func(r *launch.Run) time.Time { return r.CreatedAt })
			if err != nil {
				return out, err
			}
			out.Truncated = out.Truncated || truncated
			for _, r := range runs {
				v := viewRun(r)
				entries = append(entries, consoleEntry{At: r.CreatedAt, Run: &v})
			}
		}
	}

	switch {
	case allowed != nil:
		out.RejectionsHidden = "Rejections are not listed here: a rejected request never reached a trigger, so a console limited to triggers cannot tell whose it was. An unrestricted valohai_console lists them."
	case cq.Trigger != "" || (cq.Status != "" && cq.Status != statusRejected):
		out.RejectionsHidden = "Rejections are hidden by the trigger or status filter: a rejected request has neither."
	default:
		rejs, truncated, err := collectNewest(cq, need,
			func(limit int) ([]launch.Rejected, error) {
				return store.ListRejections(ctx, launch.RunFilter{Path: cq.Path, Limit: limit})
			},
			func(r launch.Rejected) time.Time { return r.At })
		if err != nil {
			return out, err
		}
		out.Truncated = out.Truncated || truncated
		for i := range rejs {
			entries = append(entries, consoleEntry{At: rejs[i].At, Rejection: &rejs[i]})
		}
	}

	// Newest first; at equal times runs before rejections, runs by id, so
	// that a cursor's Skip counts the same entries on every page view.
	slices.SortStableFunc(entries, func(a, b consoleEntry) int {
		if c := b.At.Compare(a.At); c != 0 {
			return c
		}
		switch {
		case a.Run != nil && b.Run != nil:
			return strings.Compare(b.Run.ID, a.Run.ID)
		case a.Run != nil:
			return -1
		case b.Run != nil:
			return 1
		}
		return 0
	})
	if cq.Cursor != nil {
		for skip > 0 && len(entries) > 0 && entries[0].At.Equal(cq.Cursor.At) {
			entries = entries[1:]
			skip--
		}
	}
	if len(entries) > cq.Limit {
		entries = entries[:cq.Limit]
		last := entries[len(entries)-1].At
		next := &consoleCursor{At: last}
		for _, e := range entries {
			if e.At.Equal(last) {
				next.Skip++
			}
		}
		if cq.Cursor != nil && cq.Cursor.At.Equal(last) {
			next.Skip += cq.Cursor.Skip
		}
		out.Next = next
	}
	out.Entries = entries
	return out, nil
}

// collectNewest reads the newest entries of one store query until it holds
// need entries inside the query's window and cursor, the store runs out, or
// the window's start is passed. Store queries are newest first with a limit
// counting entries read, so the limit grows until one of those holds, up to
// consoleMaxScan (truncated is then true).
func collectNewest[T any](cq consoleQuery, need int, fetch func(limit int) ([]T, error), at func(T) time.Time) (out []T, truncated bool, err error) {
	limit := need
	for {
		limit = min(limit, consoleMaxScan)
		items, err := fetch(limit)
		if err != nil {
			return nil, false, err
		}
		out = out[:0]
		passed := false
		for _, it := range items {
			t := at(it)
			if cq.past(t) {
				passed = true
				break
			}
			if cq.in(t) {
				out = append(out, it)
			}
		}
		if len(out) >= need || len(items) < limit || passed {
			return out, false, nil
		}
		if limit == consoleMaxScan {
			return out, true, nil
		}
		limit *= 4
	}
}
