package validators

import (
	"strings"
	"testing"
	"time"
)

// FuzzConfigScopeKeys checks the store keys built from configuration parts
// and sender-controlled key values (the expanded `key` option, delivery
// ids): no input panics, a scope never contains the '#' separator, and two
// requests share a quota counter or a dedupe key exactly when their
// configuration parts and key are equal. A sender therefore can neither
// escape its quota by dressing up the key, nor reach another route's or
// key's counter.
func FuzzConfigScopeKeys(f *testing.F) {
	f.Add(`{"host":["h"]}`, `{"path":["/t"]}`, "T1", `{"host":["h"]}`, `{"path":["/t"]}`, "T1")
	f.Add("h", "/a#b", "c", "h", "/a", "b#c")
	f.Add("a/b", "/c", "", "a", "/b/c", "")
	f.Add("h", "/t", "#10/1h0m0s#x", "h", "/t", "x")
	f.Add("\xff", "/\xfe", "\xfd", "\xef\xbf\xbd", "/\xef\xbf\xbd", "\xfd")
	limit := Limit{N: 10, Period: time.Hour}
	f.Fuzz(func(t *testing.T, a1, b1, key1, a2, b2, key2 string) {
		s1, s2 := ConfigScope(a1, b1), ConfigScope(a2, b2)
		for _, s := range []string{s1, s2} {
			if strings.Contains(s, "#") {
				t.Fatalf("scope %q contains the separator", s)
			}
		}
		sameScope := a1 == a2 && b1 == b2
		if (s1 == s2) != sameScope {
			t.Fatalf("scopes %q/%q equal=%v, but parts (%q,%q) and (%q,%q) same=%v", s1, s2, s1 == s2, a1, b1, a2, b2, sameScope)
		}
		same := sameScope && key1 == key2
		if q1, q2 := QuotaKey(s1, limit, key1), QuotaKey(s2, limit, key2); (q1 == q2) != same {
			t.Fatalf("quota keys %q and %q: equal=%v, want %v", q1, q2, q1 == q2, same)
		}
		if d1, d2 := DedupeKey(s1, key1), DedupeKey(s2, key2); (d1 == d2) != same {
			t.Fatalf("dedupe keys %q and %q: equal=%v, want %v", d1, d2, d1 == d2, same)
		}
	})
}
