package revocation

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// The tracker's figures for issue 18: memory per open stream, and the
// time a revocation takes to find the streams it ends, at 10k and 100k
// open streams. Each stream carries one token of its own subject and
// session (token, raw, jti, session, issuer-session and subject keys),
// as a WebSocket opened with a bearer token does; the first thousand
// are ten streams each of a hundred subjects (tabs of one user).
//
//	go test -run '^$' -bench Tracker -benchmem ./revocation/

var trackerSizes = []int{1e4, 1e5}

// groupedStreams are the first streams, ten per subject (tabs of one
// user); every other stream has a subject of its own.
const groupedStreams = 1000

// trackedID is the identity of stream i.
func trackedID(i int, issued int64) Identity {
	user := i + 1<<30
	if i < groupedStreams {
		user = i / 10
	}
	return Identity{
		Token:         keyN(i, KindToken),
		Raw:           keyN(i+1<<40, KindToken),
		JTI:           keyN(i, KindJTI),
		Session:       keyN(user, KindSession),
		IssuerSession: keyN(user+1<<41, KindSession),
		Subject:       keyN(user, KindSubject),
		Issued:        UnixMillis(issued),
	}
}

// filledTracker registers n streams, issued over the last hour, on a
// tracker fed by an empty denylist.
func filledTracker(n int) (*Tracker, *Denylist, []*Tracked) {
	dl := NewDenylist()
	tr := NewTracker()
	dl.SetApplied(func(es []Entry) { tr.Applied(dl, es, time.Now().Unix()) })
	now := time.Now().UnixMilli()
	ts := make([]*Tracked, n)
	for i := range ts {
		ts[i] = tr.Add([]Identity{trackedID(i, now-int64(i%3600)*1000)}, func(Reason, int) {})
	}
	return tr, dl, ts
}

// BenchmarkTrackerMemory reports the Go heap that n tracked streams hold,
// per stream (the tracker's index and the registration; the request's
// own cost, the proxy's buffers and goroutines, is Caddy's).
func BenchmarkTrackerMemory(b *testing.B) {
	for _, n := range trackerSizes {
		b.Run(fmt.Sprintf("streams=%d", n), func(b *testing.B) {
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				tr, _, ts := filledTracker(n)
				runtime.GC()
				runtime.ReadMemStats(&after)
				// The slice of handles is the benchmark's, not the tracker's.
				held := float64(after.HeapAlloc-before.HeapAlloc) - float64(8*n)
				b.ReportMetric(held/float64(n), "B/stream")
				runtime.KeepAlive(tr)
				runtime.KeepAlive(ts)
			}
		})
	}
}

// BenchmarkTrackerFind is the cost, at the replica applying a
// revocation, of finding the streams it ends and checking them, at n
// open streams: entries that match one stream (token), ten streams (a
// subject of ten tabs, cut), none (a token nobody streams with, the
// common case), and a global cutoff older than every stream. A matched
// stream is ended once, so each iteration registers it again; that Add
// is measured apart (add-remove) to be subtracted.
func BenchmarkTrackerFind(b *testing.B) {
	exp := time.Now().Add(time.Hour).Unix()
	// The baseline, in the same run: applying an entry to a denylist
	// that no tracker follows.
	b.Run("baseline-apply-untracked", func(b *testing.B) {
		dl := NewDenylist()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			dl.Apply(Entry{Key: keyN(1<<35+i, KindToken), Expires: UnixSeconds(exp)})
		}
	})
	for _, n := range trackerSizes {
		tr, dl, ts := filledTracker(n)
		now := time.Now().UnixMilli()
		b.Run(fmt.Sprintf("streams=%d/none", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				dl.Apply(Entry{Key: keyN(n+i, KindToken), Expires: UnixSeconds(exp)})
			}
		})
		b.Run(fmt.Sprintf("streams=%d/global-none", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tr.Applied(dl, []Entry{{Key: GlobalKey(), Expires: UnixSeconds(exp), Cutoff: UnixMillis(now - 7200e3)}}, exp-3600)
			}
		})
		b.Run(fmt.Sprintf("streams=%d/add-remove", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				t := tr.Add([]Identity{trackedID(n+i, now)}, func(Reason, int) {})
				tr.Remove(t)
			}
		})
		b.Run(fmt.Sprintf("streams=%d/token", n), func(b *testing.B) {
			b.ReportAllocs()
			ended := 0
			for i := 0; b.Loop(); i++ {
				id := trackedID(n+i, now)
				t := tr.Add([]Identity{id}, func(Reason, int) { ended++ })
				dl.Apply(Entry{Key: id.Token, Expires: UnixSeconds(exp)})
				tr.Remove(t)
			}
			if ended != b.N {
				b.Fatalf("%d streams ended, want %d", ended, b.N)
			}
		})
		b.Run(fmt.Sprintf("streams=%d/subject-of-ten", n), func(b *testing.B) {
			// A cut of one of the grouped subjects ends its ten streams;
			// they are opened again (their ended mark cleared) outside
			// the timer. Each cut comes later than the one before.
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				user := i % (groupedStreams / 10)
				dl.Apply(Entry{Key: keyN(user, KindSubject), Expires: UnixSeconds(exp), Cutoff: UnixMillis(now + int64(i))})
				b.StopTimer()
				for _, t := range ts[user*10 : user*10+10] {
					if !t.ended.Load() {
						b.Fatal("a stream of the cut subject is still open")
					}
					t.ended.Store(false)
				}
				b.StartTimer()
			}
		})
		runtime.KeepAlive(ts)
	}
}
