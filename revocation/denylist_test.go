package revocation

import (
	"math/rand/v2"
	"testing"
)

func TestKeysAreDomainSeparated(t *testing.T) {
	keys := map[Key]string{}
	add := func(name string, k Key) {
		if prev, dup := keys[k]; dup {
			t.Fatalf("%s and %s share a key", prev, name)
		}
		keys[k] = name
	}
	add("token x", TokenKey("x"))
	add("jti x", JTIKey("x"))
	add("subject x", SubjectKey("x"))
	add("session (ab, c)", SessionKey("ab", "c"))
	add("session (a, bc)", SessionKey("a", "bc"))
	add("session (x, '')", SessionKey("x", ""))
	for k, name := range keys {
		if !k.Kind().Valid() {
			t.Errorf("%s: key kind %q invalid", name, k.Kind())
		}
		back, err := ParseKey(k.String())
		if err != nil || back != k {
			t.Errorf("%s: key does not round-trip: %v", name, err)
		}
	}
	if TokenKey("x").Kind() != KindToken || SessionKey("a", "b").Kind() != KindSession {
		t.Fatal("kinds not carried in keys")
	}
}

func TestEntryRoundTrip(t *testing.T) {
	entries := []Entry{
		{Key: TokenKey("t"), Expires: 1800000000},
		{Key: SubjectKey("s"), Expires: 1800000000, Cutoff: 1799999999123, Keep: SessionKey("s", "k"), KeepFloor: 1799999000000},
		{Key: SubjectKey("s"), Expires: 1800000000, Cutoff: 1799999999123},
	}
	for _, e := range entries {
		back, err := ParseRecord(e.Record())
		if err != nil {
			t.Fatalf("%s: %v", e.Record(), err)
		}
		if back != e {
			t.Fatalf("round trip: got %+v, want %+v", back, e)
		}
	}
	for _, bad := range []string{"", "zz=1", TokenKey("t").String() + "=x", SubjectKey("s").String() + "=1:2:3", SubjectKey("s").String() + "=1:2:" + TokenKey("t").String() + ":0"} {
		if _, err := ParseRecord(bad); err == nil {
			t.Errorf("ParseRecord(%q) accepted", bad)
		}
	}
}

// Applying entries in any order, any number of times, gives one result.
func TestDenylistApplyIsOrderFree(t *testing.T) {
	subj := SubjectKey("u")
	entries := []Entry{
		{Key: TokenKey("a"), Expires: 100},
		{Key: TokenKey("a"), Expires: 200},
		{Key: subj, Expires: 500, Cutoff: 1000, Keep: SessionKey("u", "k")},
		{Key: subj, Expires: 600, Cutoff: 2000, Keep: SessionKey("u", "k2"), KeepFloor: 1000},
		{Key: subj, Expires: 400, Cutoff: 2000, Keep: SessionKey("u", "k3"), KeepFloor: 1000},
	}
	var want []Entry
	for trial := 0; trial < 50; trial++ {
		order := rand.Perm(len(entries))
		dl := NewDenylist()
		for _, i := range order {
			dl.Apply(entries[i])
			if rand.IntN(2) == 0 {
				dl.Apply(entries[i])
			}
		}
		var got []Entry
		for _, k := range []Key{TokenKey("a"), subj} {
			e, ok := dl.Lookup(k, 0)
			if !ok {
				t.Fatalf("entry %s missing", k)
			}
			got = append(got, e)
		}
		if want == nil {
			want = got
			continue
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("order %v: %+v, want %+v", order, got[i], want[i])
			}
		}
	}
	if want[0].Expires != 200 {
		t.Errorf("token expiry %d, want the later 200", want[0].Expires)
	}
	if want[1].Cutoff != 2000 || !want[1].Keep.IsZero() {
		t.Errorf("tied subject entries keeping different sessions must keep none: %+v", want[1])
	}
}

func TestDenylistSweep(t *testing.T) {
	dl := NewDenylist()
	dl.Apply(Entry{Key: TokenKey("a"), Expires: 10}, Entry{Key: TokenKey("b"), Expires: 20}, Entry{Key: SubjectKey("s"), Expires: 15, Cutoff: 1})
	if n := dl.Sweep(15); n != 2 {
		t.Fatalf("swept %d, want 2", n)
	}
	if dl.Total() != 1 || dl.Len(KindToken) != 1 {
		t.Fatalf("after sweep: total %d, tokens %d", dl.Total(), dl.Len(KindToken))
	}
}

// Every valid encoding of one signed token is one token: the signature
// segment can be re-encoded without the key, so it is not part of the
// token's identity. Opaque tokens, dots or not, are identified whole.
func TestTokenKeyIgnoresSignatureEncoding(t *testing.T) {
	jws := "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
	if TokenKey(jws) != TokenKey("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJm") {
		t.Fatal("two encodings of one signature give two keys")
	}
	if TokenKey(jws) == TokenKey("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJl") {
		t.Fatal("different payloads share a key")
	}
	if TokenKey("v1.key-id.secret-one") == TokenKey("v1.key-id.secret-two") {
		t.Fatal("opaque tokens with dots share a key")
	}
	if TokenKey("bm90LWpzb24.eyJzdWIiOiJhbGljZSJ9.a") == TokenKey("bm90LWpzb24.eyJzdWIiOiJhbGljZSJ9.b") {
		t.Fatal("a header that is not a JWS header is treated as one")
	}
}

// When the store lost an "all" (Redis restarted empty) and later wrote an
// "others" that knows nothing of it, a replica that applied both keeps
// blocking what the "all" blocked, whatever the order it saw them in.
func TestDenylistKeepsEarlierCutWhenStoreForgotIt(t *testing.T) {
	subj := SubjectKey("alice")
	laptop := SessionKey("alice", "laptop")
	all := Entry{Key: subj, Expires: 1 << 31, Cutoff: 1000}
	others := Entry{Key: subj, Expires: 1 << 31, Cutoff: 2000, Keep: laptop} // KeepFloor 0: the store forgot "all"
	for _, order := range [][]Entry{{all, others}, {others, all}} {
		dl := NewDenylist()
		dl.Apply(order...)
		old := Identity{Subject: subj, Session: laptop, Issued: 500}
		if got := dl.Check(&old, 0); got != BlockedSubject {
			t.Fatalf("laptop token from before the forgotten 'all': %v", got)
		}
		between := Identity{Subject: subj, Session: laptop, Issued: 1500}
		if got := dl.Check(&between, 0); got != NotBlocked {
			t.Fatalf("kept laptop token issued after 'all': %v", got)
		}
	}
}

func TestParseRecordsKeepsWhatItCanRead(t *testing.T) {
	good := Entry{Key: TokenKey("t"), Expires: 1800000000}
	got, err := ParseRecords("garbage " + good.Record() + " " + SubjectKey("s").String() + "=bad")
	if err == nil {
		t.Fatal("unreadable records not reported")
	}
	if len(got) != 1 || got[0] != good {
		t.Fatalf("readable record lost: %+v", got)
	}
}

// TestCheckInfoSeesEveryApply: a credential remembered clean is found
// revoked as soon as an entry naming any of its identities is applied,
// and a blocked verdict is never remembered.
func TestCheckInfoSeesEveryApply(t *testing.T) {
	const now, issued = 1800000000, 1799999000000
	id := Identity{Token: TokenKey("t"), JTI: JTIKey("j"), Session: SessionKey("s", "k"), Subject: SubjectKey("s"), Issued: issued}
	for _, c := range []struct {
		entry Entry
		want  Reason
	}{
		{Entry{Key: id.Token, Expires: now + 60}, BlockedToken},
		{Entry{Key: id.JTI, Expires: now + 60}, BlockedJTI},
		{Entry{Key: id.Session, Expires: now + 60}, BlockedSession},
		{Entry{Key: id.Subject, Expires: now + 60, Cutoff: issued}, BlockedSubject},
		{Entry{Key: GlobalKey(), Expires: now + 60, Cutoff: issued}, BlockedGlobal},
	} {
		d := NewDenylist()
		info := &TokenInfo{ID: id}
		for range 2 {
			if got := d.CheckInfo(info, now); got != NotBlocked {
				t.Fatalf("%s: %v before any entry", c.want, got)
			}
		}
		d.Apply(Entry{Key: JTIKey("another"), Expires: now + 60})
		if got := d.CheckInfo(info, now); got != NotBlocked {
			t.Fatalf("%s: %v after an unrelated entry", c.want, got)
		}
		d.Apply(c.entry)
		for range 2 {
			if got := d.CheckInfo(info, now); got != c.want {
				t.Errorf("%s: CheckInfo says %v once the entry is applied", c.want, got)
			}
		}
		// Once the entry has expired, the credential is clean again.
		if got := d.CheckInfo(info, now+61); got != NotBlocked {
			t.Errorf("%s: %v after the entry expired", c.want, got)
		}
	}
}
