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

// lock returns the handle's entry with its lock held, waiting on ctx. An
// entry removed while this request waited is not used: two entries of one
// handle would let two refreshes run at once and spend a rotating grant.
func (hm *handleMap) lock(ctx context.Context, handle string) (*handleCache, error) {
	for {
		hc := hm.get(handle)
		if err := hc.acquire(ctx); err != nil {
			return nil, err
		}
		if hm.peek(handle) == hc {
			return hc, nil
		}
		hc.release()
	}
}

// unlock releases the handle's lock. An entry left with nothing loaded (no
// binding, or dropped) and nothing pending is removed first, so entries
// exist only for bound handles.
func (hm *handleMap) unlock(handle string, hc *handleCache) {
	if snap := hc.snap.Load(); (snap == nil || snap.binding == nil) && hc.pending == nil {
		hm.remove(handle, hc)
	}
	hc.release()
}

// remove deletes the handle's entry if it is still hc.
func (hm *handleMap) remove(handle string, hc *handleCache) {
	hm.mu.Lock()
	defer hm.mu.Unlock()
	if hm.m[handle] == hc {
		delete(hm.m, handle)
	}
}

// drop forgets the cached binding and token of a handle (storage changed
// underneath). An idle entry is removed; a busy one is reset, and its
// holder removes it if no binding is left. A pending, not yet persisted
// token state is kept.
func (hm *handleMap) drop(handle string) {
	hc := hm.peek(handle)
	if hc == nil {
		return
	}
	hc.reset()
	select {
	case hc.lock <- struct{}{}:
		if hc.pending == nil {
			hm.remove(handle, hc)
		}
		hc.release()
	default:
	}
}

// entries returns the current entries, for Clean.
func (hm *handleMap) entries() map[string]*handleCache {
	hm.mu.RLock()
	defer hm.mu.RUnlock()
	out := make(map[string]*handleCache, len(hm.m))
	for h, hc := range hm.m {
		out[h] = hc
	}
	return out
}

// len is the number of entries.
func (hm *handleMap) len() int {
	hm.mu.RLock()
	defer hm.mu.RUnlock()
	return len(hm.m)
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

	// resets counts invalidations: a refresh publishes what it loaded only
	// if none happened since it started (see publish).
	resets atomic.Uint64

	// unscheduled is set when background refresh skipped the handle (not
	// read within background_window); the next read schedules it again.
	unscheduled atomic.Bool

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
func (hc *handleCache) reset() {
	hc.resets.Add(1)
	hc.snap.Store(nil)
}

// publish stores a snapshot loaded or built when the reset count was seen.
// If an invalidation came in between, the snapshot may hold a binding that
// storage no longer has, so it is dropped again: either this check sees the
// new count, or the reset's own Store(nil) comes after this Store.
func (hc *handleCache) publish(snap *snapshot, seen uint64) {
	hc.snap.Store(snap)
	if hc.resets.Load() != seen {
		hc.snap.Store(nil)
	}
}

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
