package flowcred

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// handleMap holds per-handle in-memory state. Entries exist only for handles
// that were used, so memory grows with what is read, not with what is bound.
type handleMap struct {
	mu sync.RWMutex
	m  map[string]*handleCache
}

func (hm *handleMap) init() { hm.m = map[string]*handleCache{} }

// get returns the handle's entry, creating it.
func (hm *handleMap) get(handle string) *handleCache {
	hm.mu.RLock()
	hc := hm.m[handle]
	hm.mu.RUnlock()
	if hc != nil {
		return hc
	}
	hm.mu.Lock()
	defer hm.mu.Unlock()
	if hc = hm.m[handle]; hc == nil {
		hc = &handleCache{lock: make(chan struct{}, 1)}
		hm.m[handle] = hc
	}
	return hc
}

// peek returns the entry without creating one.
func (hm *handleMap) peek(handle string) *handleCache {
	hm.mu.RLock()
	defer hm.mu.RUnlock()
	return hm.m[handle]
}

// drop forgets the cached binding and token of a handle (storage changed
// underneath). A pending, not yet persisted token state is kept.
func (hm *handleMap) drop(handle string) {
	if hc := hm.peek(handle); hc != nil {
		hc.reset()
	}
}

func (hm *handleMap) clear() {
	hm.mu.Lock()
	defer hm.mu.Unlock()
	hm.m = map[string]*handleCache{}
}

// handleCache is one handle's in-memory state.
type handleCache struct {
	// lock is a one-slot semaphore: held while the binding is written or a
	// token is refreshed, so concurrent reads of one handle cause one
	// upstream request. A channel rather than a mutex so waiters honour
	// their request's context.
	lock chan struct{}

	// snap is the last loaded binding and token, read lock-free on the hot path.
	snap atomic.Pointer[snapshot]

	// lastRead is the unix-nano time of the last token read, for background refresh.
	lastRead atomic.Int64

	// The fields below are guarded by lock.

	// pending is a token state obtained upstream whose storage write failed.
	// It holds the newest refresh token and is written before anything else.
	pending *tokenState
	// lastFailure is the last failed refresh, shared with requests that were
	// waiting for it so they do not each call the provider again.
	lastFailure *refreshFailure
}

func (hc *handleCache) acquire(ctx context.Context) error {
	select {
	case hc.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (hc *handleCache) release() { <-hc.lock }

// reset drops the cached snapshot; the next read reloads from storage.
func (hc *handleCache) reset() { hc.snap.Store(nil) }

func (hc *handleCache) touch(now time.Time) {
	n := now.UnixNano()
	// Avoid a cache-line write on every read when nothing changed much.
	if n-hc.lastRead.Load() > int64(time.Second) {
		hc.lastRead.Store(n)
	}
}

// snapshot is an immutable view of a handle used to serve reads.
type snapshot struct {
	binding *bindingEntry
	// state is the stored token state, nil if none.
	state *tokenState
	// mat is the servable material, nil if there is none yet.
	mat *material
	// epoch is the secrets epoch the material was resolved under (static kinds).
	epoch uint64
}

// refreshFailure remembers a failed refresh.
type refreshFailure struct {
	at  time.Time
	err *upstreamError
	// retryAfter: no new upstream attempt before this time (unless forced).
	retryAfter time.Time
}
