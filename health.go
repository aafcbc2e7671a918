package flowcred

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// The health index (design.md, "Observability"): an entry at
// health/<handle> for every binding that is not ok, written when its health
// changes (never per refresh), so that the health endpoint lists them at a
// cost proportional to how many there are. The counts by health are kept
// in memory: built at start-up from the index and the list of bindings, then
// moved by each transition. A transition also logs one info line and
// queues the webhook event it means (webhooks.go).

const healthPrefix = "health/"

// reauthPrefix indexes the bindings whose refresh token has a known end
// (reauth_due_at), whatever their health, for the reauth_soon check: the
// periodic function reads these entries only.
const reauthPrefix = "reauth_due/"

// reauthEntry is a binding's entry in the reauth_due index.
type reauthEntry struct {
	Kind        string    `json:"kind"`
	Health      string    `json:"health"`
	ReauthDueAt time.Time `json:"reauth_due_at"`
	// SoonSentFor is the reauth_due_at a binding.reauth_soon event was
	// sent for (once per due date).
	SoonSentFor time.Time `json:"soon_sent_for,omitempty"`
}

// healthEntry is a binding's index entry.
type healthEntry struct {
	Kind          string    `json:"kind"`
	Health        string    `json:"health"`
	LastErrorCode string    `json:"last_error_code,omitempty"`
	LastErrorAt   time.Time `json:"last_error_at,omitempty"`
	ReauthDueAt   time.Time `json:"reauth_due_at,omitempty"`
}

// healthCounts is the in-memory count of bindings by health.
type healthCounts struct {
	mu     sync.Mutex
	counts map[string]int
}

func (h *healthCounts) move(from, to string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.counts == nil {
		h.counts = map[string]int{}
	}
	if from != "" && h.counts[from] > 0 {
		h.counts[from]--
	}
	if to != "" {
		h.counts[to]++
	}
}

func (h *healthCounts) set(c map[string]int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.counts = c
}

// countsNow is a copy of the counts.
func (h *healthCounts) countsNow() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]int, len(h.counts))
	for k, v := range h.counts {
		if v > 0 {
			out[k] = v
		}
	}
	return out
}

// healthIndexMarker says the index covers every binding (it is built once
// for bindings stored before it existed).
const healthIndexMarker = "health_index_v1"

// loadHealth builds the counts: the index's entries by health, and every
// other binding as ok. One list of bindings per start-up, never per read.
func (b *backend) loadHealth(ctx context.Context, s logical.Storage) error {
	bindings, err := s.List(ctx, bindingStoragePrefix)
	if err != nil {
		return err
	}
	if m, err := s.Get(ctx, healthIndexMarker); err != nil {
		return err
	} else if m == nil && b.WriteSafeReplicationState() {
		if err := b.buildHealthIndex(ctx, s, bindings); err != nil {
			return err
		}
	}
	idx, err := s.List(ctx, healthPrefix)
	if err != nil {
		return err
	}
	c := map[string]int{}
	for _, h := range idx {
		e, err := getJSON[healthEntry](ctx, s, healthPrefix+h, "health entry")
		if err == nil && e != nil {
			c[e.Health]++
		}
	}
	c[healthOK] += max(0, len(bindings)-len(idx))
	b.health.set(c)
	return nil
}

// buildHealthIndex writes the index entry of every binding that is not ok,
// once.
func (b *backend) buildHealthIndex(ctx context.Context, s logical.Storage, bindings []string) error {
	for _, h := range bindings {
		e, err := getBinding(ctx, s, h)
		if err != nil || e == nil {
			continue
		}
		st, err := getTokenState(ctx, s, h)
		if err != nil {
			return err
		}
		if st != nil && st.BindingID != e.ID {
			st = nil
		}
		if err := b.putHealthEntry(ctx, s, h, e, st); err != nil {
			return err
		}
	}
	return s.Put(ctx, &logical.StorageEntry{Key: healthIndexMarker, Value: []byte("1")})
}

// putHealthEntry writes a binding's index entries: its health entry
// (deleted when it is ok) and its reauth_due entry (deleted when the end of
// its refresh token is not known).
func (b *backend) putHealthEntry(ctx context.Context, s logical.Storage, handle string, e *bindingEntry, st *tokenState) error {
	to := bindingHealth(e, st)
	var err error
	if to == healthOK {
		err = s.Delete(ctx, healthPrefix+handle)
	} else {
		entry := &healthEntry{Kind: e.Kind, Health: to}
		if st != nil {
			entry.LastErrorCode, entry.LastErrorAt, entry.ReauthDueAt = st.Status.LastErrorCode, st.Status.LastErrorAt, st.ReauthDueAt
		}
		err = putJSON(ctx, s, healthPrefix+handle, fmt.Sprintf("health entry of %q", handle), entry)
	}
	if err != nil {
		return err
	}
	if st == nil || st.ReauthDueAt.IsZero() {
		return s.Delete(ctx, reauthPrefix+handle)
	}
	due := &reauthEntry{Kind: e.Kind, Health: to, ReauthDueAt: st.ReauthDueAt}
	if old, err := getJSON[reauthEntry](ctx, s, reauthPrefix+handle, "reauth entry"); err == nil && old != nil {
		due.SoonSentFor = old.SoonSentFor
	}
	return putJSON(ctx, s, reauthPrefix+handle, fmt.Sprintf("reauth entry of %q", handle), due)
}

// recordedHealth is the health the index holds for a binding (ok when it
// has no entry).
func recordedHealth(ctx context.Context, s logical.Storage, handle string) (string, error) {
	e, err := getJSON[healthEntry](ctx, s, healthPrefix+handle, "health entry")
	if err != nil || e == nil {
		return healthOK, err
	}
	return e.Health, nil
}

// bindingWritten brings the index up to date after a binding write
// (created: it was not counted before).
func (b *backend) bindingWritten(ctx context.Context, s logical.Storage, handle string, e *bindingEntry, created bool) {
	from := ""
	if !created {
		h, err := recordedHealth(ctx, s, handle)
		if err != nil {
			return
		}
		from = h
	}
	st, err := b.currentTokenState(ctx, s, handle, e)
	if err != nil {
		return
	}
	if st != nil && st.BindingID != e.ID {
		st = nil
	}
	if err := b.putHealthEntry(ctx, s, handle, e, st); err != nil {
		b.Logger().Warn("updating the health index failed", "handle", handle, "error", err)
	}
	if to := bindingHealth(e, st); to != from {
		b.health.move(from, to)
	}
}

// bindingDeleted removes a deleted binding from the index and the counts.
func (b *backend) bindingDeleted(ctx context.Context, s logical.Storage, handle string) {
	from, err := recordedHealth(ctx, s, handle)
	if err != nil {
		return
	}
	_ = s.Delete(ctx, healthPrefix+handle)
	_ = s.Delete(ctx, reauthPrefix+handle)
	b.health.move(from, "")
}

// recordHealth notes a binding's token state change from before (nil: it
// had none) to after, the state just stored. connected: a connect
// completed. A binding's creation and deletion are bindingWritten and
// bindingDeleted.
func (b *backend) recordHealth(ctx context.Context, s logical.Storage, handle string, e *bindingEntry, before, after *tokenState, connected bool) {
	from, to := bindingHealth(e, before), bindingHealth(e, after)
	var dueBefore time.Time
	if before != nil {
		dueBefore = before.ReauthDueAt
	}
	if from == to && !connected && dueBefore.Equal(after.ReauthDueAt) {
		return
	}
	if err := b.putHealthEntry(ctx, s, handle, e, after); err != nil {
		b.Logger().Warn("updating the health index failed", "handle", handle, "error", err)
	}
	if from == to && !connected {
		return
	}
	b.health.move(from, to)
	code := after.Status.LastErrorCode
	b.Logger().Info("binding health changed", "handle", handle, "kind", e.Kind, "from", from, "to", to, "error_code", code)
	if typ := eventType(from, to, connected); typ != "" {
		b.enqueueEvent(ctx, s, &webhookEvent{Type: typ, Handle: handle, Kind: e.Kind, Health: to, LastErrorCode: code})
	}
}

// eventType is the webhook type of a transition (design.md's table), or "".
func eventType(from, to string, connected bool) string {
	switch {
	case connected && to == healthOK:
		return "binding.authorized"
	case to == healthNeedsReauth:
		return "binding.needs_reauth"
	case to == healthDegraded && from == healthOK:
		return "binding.degraded"
	case to == healthOK && from == healthDegraded:
		return "binding.recovered"
	}
	return ""
}

// healthPage lists up to limit index entries after the handle after.
func (b *backend) healthPage(ctx context.Context, s logical.Storage, after string, limit int) ([]map[string]interface{}, string, error) {
	keys, err := s.List(ctx, healthPrefix)
	if err != nil {
		return nil, "", err
	}
	out := []map[string]interface{}{}
	next := ""
	for _, h := range sortedStrings(keys) {
		if after != "" && strings.Compare(h, after) <= 0 {
			continue
		}
		if len(out) == limit {
			next = out[len(out)-1]["handle"].(string)
			break
		}
		e, err := getJSON[healthEntry](ctx, s, healthPrefix+h, "health entry")
		if err != nil || e == nil {
			continue
		}
		row := map[string]interface{}{"handle": h, "kind": e.Kind, "health": e.Health}
		if e.LastErrorCode != "" {
			row["last_error_code"] = e.LastErrorCode
		}
		if !e.LastErrorAt.IsZero() {
			row["last_error_at"] = e.LastErrorAt.UTC().Format(time.RFC3339)
		}
		if !e.ReauthDueAt.IsZero() {
			row["reauth_due_at"] = e.ReauthDueAt.UTC().Format(time.RFC3339)
		}
		out = append(out, row)
	}
	return out, next, nil
}

func sortedStrings(in []string) []string {
	out := append([]string(nil), in...)
	sort.Strings(out)
	return out
}

// reauthSoonTick sends binding.reauth_soon once for each binding whose
// refresh token ends within reauth_warning_window (from the periodic
// function, on the writable node). It reads the reauth_due index only.
func (b *backend) reauthSoonTick(ctx context.Context, s logical.Storage) {
	cfg, err := b.getConfig(ctx, s)
	if err != nil {
		return
	}
	keys, err := s.List(ctx, reauthPrefix)
	if err != nil {
		return
	}
	now := b.now()
	for _, h := range keys {
		e, err := getJSON[reauthEntry](ctx, s, reauthPrefix+h, "reauth entry")
		if err != nil || e == nil || e.ReauthDueAt.Equal(e.SoonSentFor) || e.ReauthDueAt.Sub(now) >= cfg.reauthWindow() {
			continue
		}
		e.SoonSentFor = e.ReauthDueAt
		if err := putJSON(ctx, s, reauthPrefix+h, "reauth entry", e); err != nil {
			continue
		}
		b.Logger().Info("binding's refresh token ends soon", "handle", h, "kind", e.Kind, "reauth_due_at", e.ReauthDueAt.UTC().Format(time.RFC3339))
		b.enqueueEvent(ctx, s, &webhookEvent{Type: "binding.reauth_soon", Handle: h, Kind: e.Kind, Health: e.Health})
	}
}
