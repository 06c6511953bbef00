package revocation

import (
	"testing"
	"time"
)

// TestStoreCutsMergeByOneRule runs one table of subject and global cuts
// through both stores and holds every entry they write to cutSubject and
// mergeGlobal, folded over the same cuts: the embedded store calls them,
// the commit script (lua.go) is their mirror, so a change to one that the
// other does not follow fails here.
func TestStoreCutsMergeByOneRule(t *testing.T) {
	type cut struct {
		keep string        // the session spared; "": none
		back int64         // ms before the table began; 0: the store's clock
		ttl  time.Duration // 0: an hour
	}
	cases := []struct {
		name    string
		changes [][]cut // each inner list is one change
	}{
		{"all", [][]cut{{{}}}},
		{"all then all", [][]cut{{{}}, {{}}}},
		{"all then others", [][]cut{{{}}, {{keep: "a"}}}},
		{"others then all", [][]cut{{{keep: "a"}}, {{}}}},
		{"others then others, same session", [][]cut{{{keep: "a"}}, {{keep: "a"}}}},
		{"others then others, another session", [][]cut{{{keep: "a"}}, {{keep: "b"}}}},
		{"others, others elsewhere, others back", [][]cut{{{keep: "a"}}, {{keep: "b"}}, {{keep: "a"}}}},
		{"others, others elsewhere twice", [][]cut{{{keep: "a"}}, {{keep: "b"}}, {{keep: "b"}}}},
		{"backdated all after others", [][]cut{{{keep: "a"}}, {{back: 5000}}}},
		{"backdated others after all", [][]cut{{{}}, {{keep: "a", back: 5000}}}},
		{"backdated others twice", [][]cut{{{keep: "a", back: 8000}}, {{keep: "a", back: 3000}}, {{keep: "b", back: 9000}}}},
		{"two in one change, two sessions", [][]cut{{{keep: "a"}, {keep: "b"}}}},
		{"two in one change, one session", [][]cut{{{keep: "a"}, {keep: "a"}}}},
		{"two in one change, all last", [][]cut{{{keep: "a"}, {}}}},
		{"the longer TTL first", [][]cut{{{ttl: 2 * time.Hour}}, {{keep: "a", ttl: time.Minute}}}},
		{"the longer TTL last", [][]cut{{{keep: "a", ttl: time.Minute}}, {{ttl: 3 * time.Hour}}}},
	}
	globals := []struct {
		back, ahead int64 // ms before (or after) the table began; both 0: the store's clock
		ttl         time.Duration
	}{
		{ttl: time.Hour},
		{back: 5000, ttl: 2 * time.Hour},
		{ttl: time.Minute},
		{ahead: 60_000, ttl: time.Minute},
		{back: 1000, ttl: 3 * time.Hour},
	}
	for _, sk := range stores() {
		t.Run(sk.name, func(t *testing.T) {
			s := sk.open(t)
			start := time.Now().UnixMilli()
			for i, tc := range cases {
				subject := "rule-" + string(rune('a'+i))
				subj := SubjectKey(subject)
				var want Entry
				have := false
				for n, change := range tc.changes {
					var c Change
					for _, ct := range change {
						sc := SubjectCut{Subject: subj, TTL: ct.ttl}
						if sc.TTL == 0 {
							sc.TTL = time.Hour
						}
						if ct.keep != "" {
							sc.Keep = SessionKey(subject, ct.keep)
						}
						if ct.back > 0 {
							sc.At = UnixMillis(start - ct.back)
						}
						c.Subjects = append(c.Subjects, sc)
					}
					res := commit(t, s, c)
					var got []Entry
					for _, e := range res.Entries {
						if e.Key == subj {
							got = append(got, e)
						}
					}
					if len(got) != len(c.Subjects) {
						t.Fatalf("%s, change %d: %d subject entries written, want %d", tc.name, n, len(got), len(c.Subjects))
					}
					for j, sc := range c.Subjects {
						fresh := Entry{Key: subj, Expires: expiresIn(int64(res.Time/1000), sc.TTL), Cutoff: res.Time, Keep: sc.Keep}
						if sc.At > 0 {
							fresh.Cutoff = sc.At
						}
						if have {
							want = cutSubject(want, fresh)
						} else {
							want, have = fresh, true
						}
						if got[j] != want {
							t.Errorf("%s, change %d, cut %d: wrote %s, want %s (cutSubject)", tc.name, n, j, got[j].Record(), want.Record())
						}
					}
				}
			}

			var want Entry
			have := false
			for n, g := range globals {
				gc := &GlobalCut{TTL: g.ttl}
				switch {
				case g.back > 0:
					gc.Before = UnixMillis(start - g.back)
				case g.ahead > 0:
					gc.Before = UnixMillis(start + g.ahead)
				}
				res := commit(t, s, Change{Global: gc})
				fresh := Entry{Key: GlobalKey(), Expires: expiresIn(int64(res.Time/1000), gc.TTL), Cutoff: gc.Before}
				if fresh.Cutoff == 0 {
					fresh.Cutoff = res.Time
				}
				if have {
					want = mergeGlobal(want, fresh)
				} else {
					want, have = fresh, true
				}
				if len(res.Entries) != 1 || res.Entries[0] != want {
					t.Errorf("global cut %d: wrote %v, want %s (mergeGlobal)", n, res.Entries, want.Record())
				}
			}
		})
	}
}
