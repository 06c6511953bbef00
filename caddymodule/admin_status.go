package caddymodule

import (
	"fmt"
	"net/http"
	"time"

	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// GET /revocation/status, /revocation/ready and /revocation/live: what
// the stores of the instance hold, and whether it can be trusted.

// StoreStatus describes one store in GET /revocation/status.
type StoreStatus struct {
	Store      string           `json:"store"`
	Describe   string           `json:"describe"`
	KeyPrefix  string           `json:"key_prefix"`
	Entries    map[string]int64 `json:"entries"`
	Loaded     bool             `json:"loaded"`
	Connected  bool             `json:"connected"`
	Confirmed  *time.Time       `json:"confirmed,omitempty"`
	StaleFor   float64          `json:"stale_seconds"`
	StaleAfter float64          `json:"stale_after_seconds"`
	Ready      bool             `json:"ready"`
	// Reason says why the store is not ready, or, when it is ready but
	// stale under fail_open, why it is degraded.
	Reason    string `json:"reason,omitempty"`
	LastError string `json:"last_error,omitempty"`
	// HashKey is the fingerprint of the hash_key identities are keyed
	// with (never the key), absent when none is configured.
	HashKey string `json:"hash_key_fingerprint,omitempty"`
	// UnkeyedUntil is when unkeyed identity entries (written before the
	// key, or by older replicas) stop being checked, absent when they
	// are not.
	UnkeyedUntil *time.Time `json:"unkeyed_until,omitempty"`
	// Load is the progress of a full load under way, absent when none is.
	Load *LoadStatus `json:"load,omitempty"`
	// Memory is how the local copy stands against memory_budget, absent
	// when there is no budget.
	Memory *MemoryStatus `json:"memory,omitempty"`
	// LoadedFrom says where the local copy's last full load read:
	// snapshot, compact snapshot, keys or carried (a reload kept it);
	// absent before the first and for the embedded store.
	LoadedFrom string `json:"loaded_from,omitempty"`
	// Compact is what the compact denylist did, absent when
	// compact_denylist is off.
	Compact *CompactStatus `json:"compact,omitempty"`

	// streamsOpen adds up, over the stores, to StatusResponse.StreamsOpen.
	streamsOpen int64
}

// MemoryStatus is a store's local copy against its memory budget.
type MemoryStatus struct {
	Budget  int64 `json:"budget_bytes"`
	Tables  int64 `json:"table_bytes"`
	Process int64 `json:"process_bytes"`
	// NotHeld is how many revocations the copy lacks for want of memory
	// (until they expire, at NotHeldUntil).
	NotHeld      int64      `json:"entries_not_held"`
	NotHeldUntil *time.Time `json:"not_held_until,omitempty"`
}

// CompactStatus is the compact denylist's counters
// (revocation.CompactStats).
type CompactStatus struct {
	// Static is how many fingerprints the static parts hold.
	Static int64 `json:"static_values"`
	// Matches is how many checks matched a fingerprint and asked Redis;
	// Confirmed of them were revoked, FalseMatches were another key's,
	// and Unconfirmed got no answer (and were blocked).
	Matches      int64 `json:"matches"`
	Confirmed    int64 `json:"confirmed"`
	FalseMatches int64 `json:"false_matches"`
	Unconfirmed  int64 `json:"unconfirmed"`
}

// LoadStatus is the progress of a full load of the local copy.
type LoadStatus struct {
	Entries int64 `json:"entries"`
	// Expected is an upper estimate (revocation.LoadProgress), zero when
	// unknown.
	Expected int64   `json:"expected_entries"`
	Seconds  float64 `json:"seconds"`
}

func (a *adminAPI) statuses() []StoreStatus {
	now := time.Now()
	var out []StoreStatus
	a.eachStore(func(s *sharedStore) {
		h := s.Health()
		st := StoreStatus{
			Store: h.Store.String(), Describe: s.desc, KeyPrefix: s.prefix,
			Entries: map[string]int64{}, Loaded: h.Loaded, Connected: h.Connected,
			LastError: h.LastError, streamsOpen: s.tracker.Len(),
			HashKey: s.hasher.Fingerprint(), LoadedFrom: h.LoadedFrom,
		}
		if dl := s.Denylist(); dl.Compact() {
			c := dl.CompactStats()
			st.Compact = &CompactStatus{Static: c.Static, Matches: c.Matches, Confirmed: c.Confirmed,
				FalseMatches: c.FalseMatches, Unconfirmed: c.Unconfirmed}
		}
		if u := s.hasher.UnkeyedUntil(); !u.IsZero() && s.hasher.ChecksUnkeyed() {
			st.UnkeyedUntil = &u
		}
		if p := h.Load; p != nil {
			st.Load = &LoadStatus{Entries: p.Entries, Expected: p.Expected, Seconds: now.Sub(p.Started).Seconds()}
		}
		for _, k := range revocation.Kinds {
			st.Entries[k.String()] = s.Denylist().Len(k)
		}
		if m := h.Memory; m != nil {
			st.Memory = &MemoryStatus{Budget: m.Budget, Tables: m.Tables, Process: m.Process, NotHeld: m.Dropped}
			if m.Over() {
				u := time.Unix(m.Until, 0).UTC()
				st.Memory.NotHeldUntil = &u
			}
		}
		if !h.Confirmed.IsZero() && h.Store.Shared() {
			c := h.Confirmed.UTC()
			st.Confirmed = &c
		}
		stale := s.Staleness(now)
		staleAfter := time.Duration(s.staleAfter.Load())
		st.StaleFor, st.StaleAfter = min(stale, 100*365*24*time.Hour).Seconds(), staleAfter.Seconds()
		st.Ready, st.Reason = readiness(h, stale, staleAfter, s.failClosed.Load())
		out = append(out, st)
	})
	return out
}

// readiness says whether an instance should get traffic for a store,
// and if not, why. It follows on_store_down: a stale store makes the
// instance unready only when some handler refuses requests for it
// (failClosed); with fail_open every handler keeps serving what it
// knows, so pulling every replica out of a Service during a Redis
// outage would refuse the very traffic fail_open asks to let through.
// A store that never loaded knows nothing, and is never ready. The
// reason is also given for a store that is ready but stale (fail_open).
func readiness(h revocation.Health, stale, staleAfter time.Duration, failClosed bool) (bool, string) {
	switch {
	case !h.Loaded && h.Load != nil && (h.Connected || h.LastError == ""):
		// Loading; once Redis has failed it, the reason is that it is
		// not loaded yet, and why.
		why := fmt.Sprintf("denylist loading: %d entries read", h.Load.Entries)
		if h.Load.Expected > 0 {
			why += fmt.Sprintf(" of at most %d", h.Load.Expected)
		}
		return false, why
	case !h.Loaded && h.LastError != "":
		return false, "denylist not loaded yet: " + h.LastError
	case !h.Loaded:
		return false, "denylist not loaded yet"
	case h.Memory != nil && h.Memory.Over():
		// Whatever on_store_down says: this replica alone lacks memory
		// (a restart with a larger limit helps), and its copy misses
		// revocations that others hold.
		return false, h.Memory.Reason()
	case staleAfter > 0 && stale > staleAfter:
		why := fmt.Sprintf("denylist not confirmed current for %s (stale_after %s)", stale.Round(time.Millisecond), staleAfter)
		if !h.Connected && h.LastError != "" {
			why += "; store unreachable: " + h.LastError
		}
		if !failClosed {
			// Ready, but say why it is degraded, for status pages.
			return true, why + "; serving what is known (on_store_down fail_open)"
		}
		return false, why
	}
	// A store that dropped its connection moments ago is still current
	// until stale_after: a blip must not pull every replica out of
	// service at once. /revocation/status shows the connection.
	return true, ""
}

func (a *adminAPI) handleStatus(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return apiErr(http.StatusMethodNotAllowed, "method %s not allowed; use GET", r.Method)
	}
	st := StatusResponse{Stores: a.statuses()}
	for _, s := range st.Stores {
		st.StreamsOpen += s.streamsOpen
	}
	return writeAdminJSON(w, http.StatusOK, st)
}

// ReadyResponse is the answer to GET /revocation/ready.
type ReadyResponse struct {
	Ready bool `json:"ready"`
	// Reasons says, per store, why the instance is not ready; absent
	// when it is.
	Reasons []string `json:"reasons,omitempty"`
}

// StatusResponse is the answer to GET /revocation/status.
type StatusResponse struct {
	Stores []StoreStatus `json:"stores"`
	// StreamsOpen is the number of open streams tracked: proxied
	// requests that carried a credential and are still open, which a
	// revocation of that credential ends.
	StreamsOpen int64 `json:"streams_open"`
}

func (a *adminAPI) handleReady(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return apiErr(http.StatusMethodNotAllowed, "method %s not allowed; use GET", r.Method)
	}
	status, answer := readyAnswer(a.statuses())
	return writeAdminJSON(w, status, answer)
}

// readyAnswer is the status and body of GET /revocation/ready for the
// stores of the instance.
func readyAnswer(sts []StoreStatus) (int, ReadyResponse) {
	answer := ReadyResponse{Ready: len(sts) > 0}
	if len(sts) == 0 {
		answer.Reasons = append(answer.Reasons, "no revocation handler is configured")
	}
	for _, s := range sts {
		if !s.Ready {
			answer.Ready = false
			answer.Reasons = append(answer.Reasons, s.Describe+": "+s.Reason)
		}
	}
	if !answer.Ready {
		return http.StatusServiceUnavailable, answer
	}
	return http.StatusOK, answer
}

func (a *adminAPI) handleLive(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return apiErr(http.StatusMethodNotAllowed, "method %s not allowed; use GET", r.Method)
	}
	return writeAdminJSON(w, http.StatusOK, map[string]bool{"live": true})
}
