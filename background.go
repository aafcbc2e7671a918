package flowcred

import (
	"container/heap"
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// backgroundLookahead: a token is refreshed in the background when it would
// otherwise fall under the margin before the next ticks (Vault calls
// PeriodicFunc about once a minute).
const backgroundLookahead = 2 * time.Minute

// backgroundWorkers bounds concurrent background refreshes.
const backgroundWorkers = 4

// refreshScheduler is a min-heap of handles by the time their token should
// be refreshed. Only handles whose token was obtained are in it, so a tick
// costs what is due, not what is bound.
type refreshScheduler struct {
	mu      sync.Mutex
	h       dueHeap
	index   map[string]*dueItem
	running atomic.Bool
}

type dueItem struct {
	handle string
	due    time.Time
	pos    int
}

type dueHeap []*dueItem

func (h dueHeap) Len() int            { return len(h) }
func (h dueHeap) Less(i, j int) bool  { return h[i].due.Before(h[j].due) }
func (h dueHeap) Swap(i, j int)       { h[i], h[j] = h[j], h[i]; h[i].pos = i; h[j].pos = j }
func (h *dueHeap) Push(x interface{}) { it := x.(*dueItem); it.pos = len(*h); *h = append(*h, it) }
func (h *dueHeap) Pop() interface{} {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return it
}

func newRefreshScheduler() *refreshScheduler {
	return &refreshScheduler{index: map[string]*dueItem{}}
}

// schedule sets (or moves) a handle's due time.
func (rs *refreshScheduler) schedule(handle string, due time.Time) {
	if due.IsZero() {
		rs.remove(handle)
		return
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if it, ok := rs.index[handle]; ok {
		it.due = due
		heap.Fix(&rs.h, it.pos)
		return
	}
	it := &dueItem{handle: handle, due: due}
	heap.Push(&rs.h, it)
	rs.index[handle] = it
}

func (rs *refreshScheduler) remove(handle string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if it, ok := rs.index[handle]; ok {
		heap.Remove(&rs.h, it.pos)
		delete(rs.index, handle)
	}
}

// popDue removes and returns the handles due at now.
func (rs *refreshScheduler) popDue(now time.Time) []string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	var out []string
	for rs.h.Len() > 0 && !rs.h[0].due.After(now) {
		it := heap.Pop(&rs.h).(*dueItem)
		delete(rs.index, it.handle)
		out = append(out, it.handle)
	}
	return out
}

func (rs *refreshScheduler) len() int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.h.Len()
}

func (rs *refreshScheduler) clear() {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.h = nil
	rs.index = map[string]*dueItem{}
}

// backgroundDue is when a token should be refreshed in the background: ahead
// of the margin by the lookahead, but not before half its lifetime.
func (b *backend) backgroundDue(cfg *configEntry, m *material) time.Time {
	if m.static || m.expiry.IsZero() {
		return time.Time{}
	}
	due := m.expiry.Add(-m.margin(cfg) - backgroundLookahead)
	if half := m.obtainedAt.Add(m.expiry.Sub(m.obtainedAt) / 2); due.Before(half) {
		due = half
	}
	return due
}

// touched records a read of a handle served m, and schedules the handle
// again if background refresh had skipped it.
func (b *backend) touched(hc *handleCache, handle string, cfg *configEntry, m *material, now time.Time) {
	hc.touch(now)
	if hc.unscheduled.Load() && hc.unscheduled.CompareAndSwap(true, false) {
		b.scheduler.schedule(handle, b.backgroundDue(cfg, m))
	}
}

// periodic refreshes recently read handles that are due. It runs only where
// storage is writable (the active node, not a standby or secondary).
func (b *backend) periodic(ctx context.Context, req *logical.Request) error {
	if !b.scheduler.running.CompareAndSwap(false, true) {
		return nil // the previous tick is still working
	}
	defer b.scheduler.running.Store(false)
	if !b.WriteSafeReplicationState() {
		return nil
	}
	b.reauthSoonTick(ctx, req.Storage)
	return b.backgroundTick(ctx, req.Storage)
}

// backgroundTick refreshes the due handles; separate from periodic for tests.
func (b *backend) backgroundTick(ctx context.Context, s logical.Storage) error {
	cfg, err := b.getConfig(ctx, s)
	if err != nil {
		return err
	}
	if !cfg.BackgroundRefresh {
		return nil
	}
	now := b.now()
	due := b.scheduler.popDue(now)
	if len(due) == 0 {
		return nil
	}
	work := make(chan string)
	var wg sync.WaitGroup
	for i := 0; i < min(backgroundWorkers, len(due)); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for handle := range work {
				b.backgroundRefresh(ctx, s, cfg, handle, now)
			}
		}()
	}
	for _, h := range due {
		work <- h
	}
	close(work)
	wg.Wait()
	return nil
}

func (b *backend) backgroundRefresh(ctx context.Context, s logical.Storage, cfg *configEntry, handle string, now time.Time) {
	hc := b.handles.peek(handle)
	if hc == nil {
		return
	}
	last := time.Unix(0, hc.lastRead.Load())
	if now.Sub(last) > cfg.BackgroundWindow {
		// Not read recently: leave it alone until someone reads it; that
		// read (even one served from the cache) schedules it again.
		hc.unscheduled.Store(true)
		return
	}
	b.metrics.background.Inc()
	mat, err := b.material(ctx, s, handle, readOpts{minTTL: cfg.RefreshMargin + backgroundLookahead, background: true})
	switch {
	case err != nil || mat.warning != "":
		// Failed, or only the cached token could be served (the provider
		// failed): try again after a minute; reads still refresh on their own.
		b.Logger().Debug("background refresh did not succeed", "handle", handle)
		b.scheduler.schedule(handle, now.Add(time.Minute))
	default:
		// Keep the handle scheduled even when no refresh was needed (e.g.
		// the margin changed): it was popped from the heap.
		b.scheduler.schedule(handle, b.backgroundDue(cfg, mat))
	}
}
