package validators

import (
	"path"
	"strings"
	"testing"
	"time"
)

// FuzzTriggerScopeKeys checks the store keys built from sender-controlled
// values (Host header, path, the expanded `key` option, delivery ids): no
// input panics, a scope never contains the '#' separator, and two requests
// share a quota counter or a dedupe key exactly when they name the same
// trigger (host and path up to case and path cleaning) with the same key.
// A sender therefore can neither escape its quota by dressing up the key or
// the URL, nor reach another trigger's or key's counter.
func FuzzTriggerScopeKeys(f *testing.F) {
	f.Add("hooks.example.com", "/github", "T1", "hooks.example.com", "/GitHub/", "T1")
	f.Add("h", "/a#b", "c", "h", "/a", "b#c")
	f.Add("a/b", "/c", "", "a", "/b/c", "")
	f.Add("h:8080", "/t", "k", "h:8081", "/t", "k")
	f.Add("h", "/t", "#10/1h0m0s#x", "h", "/t", "x")
	f.Add("H", "//t/../u", "\x00", "h", "/u", "\x00")
	f.Add("h%2Fx", "/t", "", "h/x", "/t", "")
	f.Add("\xff", "/\xfe", "\xfd", "\xef\xbf\xbd", "/\xef\xbf\xbd", "\xfd")
	limit := Limit{N: 10, Period: time.Hour}
	norm := func(host, p string) [2]string {
		return [2]string{strings.ToLower(host), strings.ToLower(path.Clean("/" + p))}
	}
	f.Fuzz(func(t *testing.T, host1, path1, key1, host2, path2, key2 string) {
		s1, s2 := TriggerScope(host1, path1), TriggerScope(host2, path2)
		for _, s := range []string{s1, s2} {
			if strings.Contains(s, "#") {
				t.Fatalf("scope %q contains the separator", s)
			}
		}
		sameTrigger := norm(host1, path1) == norm(host2, path2)
		if (s1 == s2) != sameTrigger {
			t.Fatalf("scopes %q/%q equal=%v, but triggers %q%q and %q%q same=%v", s1, s2, s1 == s2, host1, path1, host2, path2, sameTrigger)
		}
		same := sameTrigger && key1 == key2
		if q1, q2 := QuotaKey(s1, limit, key1), QuotaKey(s2, limit, key2); (q1 == q2) != same {
			t.Fatalf("quota keys %q and %q: equal=%v, want %v", q1, q2, q1 == q2, same)
		}
		if d1, d2 := DedupeKey(s1, key1), DedupeKey(s2, key2); (d1 == d2) != same {
			t.Fatalf("dedupe keys %q and %q: equal=%v, want %v", d1, d2, d1 == d2, same)
		}
	})
}
