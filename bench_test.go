package flowcred

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/flowcred/vault-plugin-flowcred/internal/kindtable"
	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
)

// Micro-benchmarks of the plugin's hot path, in process (no Vault, no gRPC).
// scripts/bench.sh runs them and folds their numbers into its table:
//
//	go test -run '^$' -bench . -benchmem ./
//
// None of them asserts a time; they only report.

// newBenchIdP is a token endpoint for benchmarks: every refresh succeeds
// with a fresh access token of a fixed lifetime.
func newBenchIdP(tb testing.TB, expiresIn int) *oauthtest.TokenEndpoint {
	tb.Helper()
	return oauthtest.StartTokenEndpoint(tb, oauthtest.TokenOptions{TokenType: "bearer", ExpiresIn: expiresIn})
}

// benchRead is one token read through the framework, as Vault's gRPC server
// hands it to the backend.
func benchRead(tb testing.TB, b *testBackend, path string) *logical.Response {
	resp, err := b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.ReadOperation,
		Path:      path,
		Storage:   b.s,
	})
	if err != nil || resp == nil || resp.IsError() {
		tb.Fatalf("read %s: %v %v", path, resp, err)
	}
	return resp
}

func benchBindRefresh(tb testing.TB, b *testBackend, handle, tokenURL string) {
	b.write(tb, "bindings/"+handle, map[string]interface{}{
		"kind":          "oauth2.refresh_token",
		"client_id":     "client-1",
		"client_secret": testClientSecret,
		"refresh_token": testRefreshToken,
		"token_url":     tokenURL,
	})
}

// BenchmarkTokenReadCacheHit is token/<handle> served from the cache through
// HandleRequest: routing, field parsing, the snapshot load and the lease.
func BenchmarkTokenReadCacheHit(b *testing.B) {
	b.Run("kind=api_token", func(b *testing.B) {
		tb := getTestBackend(b, nil)
		tb.write(b, "bindings/api", map[string]interface{}{"kind": "api_token", "token": testAPIToken})
		benchRead(b, tb, "token/api")
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			benchRead(b, tb, "token/api")
		}
	})
	b.Run("kind=oauth2.refresh_token", func(b *testing.B) {
		tb := getTestBackend(b, nil)
		idp := newBenchIdP(b, 3600)
		benchBindRefresh(b, tb, "crm", idp.TokenURL())
		benchRead(b, tb, "token/crm")
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			benchRead(b, tb, "token/crm")
		}
		b.StopTimer()
		if n := idp.Count(); n != 1 {
			b.Fatalf("cache hits made %d upstream requests, want 1 (the warm-up)", n)
		}
	})
	// The same read in parallel over many handles: the cache must not
	// serialise different handles.
	b.Run("kind=api_token/handles=200/parallel", func(b *testing.B) {
		tb := getTestBackend(b, nil)
		paths := make([]string, 200)
		for i := range paths {
			h := fmt.Sprintf("api%03d", i)
			tb.write(b, "bindings/"+h, map[string]interface{}{"kind": "api_token", "token": testAPIToken})
			paths[i] = "token/" + h
			benchRead(b, tb, paths[i])
		}
		var next atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				benchRead(b, tb, paths[next.Add(1)%int64(len(paths))])
			}
		})
	})
}

// BenchmarkMaterial is the backend's material lookup alone (no framework
// routing): the lock-free snapshot check of a cache hit.
func BenchmarkMaterial(b *testing.B) {
	tb := getTestBackend(b, nil)
	idp := newBenchIdP(b, 3600)
	benchBindRefresh(b, tb, "crm", idp.TokenURL())
	benchRead(b, tb, "token/crm")
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := tb.material(ctx, tb.s, "crm", readOpts{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTokenResponse is building the response and its lease from material.
func BenchmarkTokenResponse(b *testing.B) {
	tb := getTestBackend(b, nil)
	now := time.Now()
	m := &material{
		handle: "crm", kind: kindtable.OAuth2RefreshToken,
		accessToken: "at-SECRET", tokenType: "Bearer",
		obtainedAt: now, expiry: now.Add(time.Hour),
		headers: map[string]string{"Authorization": "Bearer at-SECRET", "x-goog-user-project": "p"},
	}
	cfg := defaultConfig()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = tb.tokenResponse(m, cfg, 0, now)
	}
}

// BenchmarkBackgroundTick is one PeriodicFunc tick with many handles
// scheduled (each read once, so each has a token and a due time) and a
// fixed number due per tick. A tick with nothing due must cost the same
// whatever is scheduled; a tick with due handles must cost what is due.
//
// The token endpoint is an httptest server; time is a fake clock. Due
// times are spread evenly over one refresh period, and each iteration
// advances the clock by the share of the period that makes `due` handles
// due, so the tick refreshes exactly those and reschedules them a period
// later: a steady state, however large b.N is.
func BenchmarkBackgroundTick(b *testing.B) {
	parent := b
	for _, scheduled := range []int{1000, 10000} {
		// Set up lazily (so that -bench can skip a size), on the parent:
		// sub-benchmark cleanups run after every b.N round.
		var setup *tickBench
		// Nothing due, ten due (the same work at both sizes) and 1% due.
		dues := []int{0, 10}
		if scheduled/100 != 10 {
			dues = append(dues, scheduled/100)
		}
		for _, due := range dues {
			b.Run(fmt.Sprintf("scheduled=%d/due=%d", scheduled, due), func(b *testing.B) {
				if setup == nil {
					setup = newTickBench(parent, b, scheduled)
				}
				setup.run(b, due)
			})
		}
	}
}

type tickBench struct {
	tb        *testBackend
	clock     *fakeClock
	idp       *oauthtest.TokenEndpoint
	scheduled int
	// period spreads the due times: about how long after it was obtained
	// a token is due (expiry minus the 5m margin and the 2m lookahead).
	period time.Duration
	step   time.Duration
}

// newTickBench registers its cleanups on parent and reports failures on b.
func newTickBench(parent, b *testing.B, scheduled int) *tickBench {
	clock := newFakeClock()
	tb := getTestBackend(parent, clock)
	// 3601 s, not 3600: a refreshed token's next due time (53m01s later)
	// then never falls exactly on a later tick's clock reading, where a
	// handle with exactly the lookahead left counts as fresh.
	idp := newBenchIdP(parent, 3601)
	// Everything read within the window stays "recently read" for the
	// whole benchmark (the fake clock runs ahead quickly).
	tb.write(b, "config", map[string]interface{}{"background_window": "720h"})
	t := &tickBench{tb: tb, clock: clock, idp: idp, scheduled: scheduled, period: 53 * time.Minute}
	t.step = t.period / time.Duration(scheduled)
	for i := 0; i < scheduled; i++ {
		h := fmt.Sprintf("h%06d", i)
		benchBindRefresh(b, tb, h, idp.TokenURL())
		benchRead(b, tb, "token/"+h)
		clock.advance(t.step)
	}
	if n := tb.scheduler.len(); n != scheduled {
		b.Fatalf("%d handles scheduled, want %d", n, scheduled)
	}
	// Start half a step before the first due time, so that no handle sits
	// exactly on a tick's clock reading.
	tb.scheduler.mu.Lock()
	first := tb.scheduler.h[0].due
	tb.scheduler.mu.Unlock()
	clock.advance(first.Sub(clock.now()) - t.step/2)
	return t
}

func (t *tickBench) run(b *testing.B, due int) {
	ctx := context.Background()
	before := t.idp.Count()
	cpu0 := processCPU()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Advancing the fake clock costs nanoseconds; it stays in the timed
		// region because StopTimer/StartTimer read memory stats (a
		// stop-the-world each) and would dominate a tick with nothing due.
		t.clock.advance(time.Duration(due) * t.step)
		if err := t.tb.backgroundTick(ctx, t.tb.s); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	refreshed := t.idp.Count() - before
	b.ReportMetric(float64(refreshed)/float64(b.N), "refreshes/op")
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
	if n := t.tb.scheduler.len(); n != t.scheduled {
		b.Fatalf("%d handles scheduled after the ticks, want %d", n, t.scheduled)
	}
}

// BenchmarkTokenReadRefresh is a token read that must refresh (min_ttl above
// the token's lifetime) against a loopback token endpoint: the plugin's
// refresh path plus one HTTP round trip and a storage write.
func BenchmarkTokenReadRefresh(b *testing.B) {
	tb := getTestBackend(b, nil)
	idp := newBenchIdP(b, 3600)
	benchBindRefresh(b, tb, "crm", idp.TokenURL())
	// min_refresh_interval 0: min_ttl makes every read refresh.
	if _, err := tb.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.UpdateOperation, Path: "config", Storage: tb.s,
		Data: map[string]interface{}{"min_refresh_interval": 0},
	}); err != nil {
		b.Fatal(err)
	}
	benchRead(b, tb, "token/crm")
	req := func() {
		resp, err := tb.HandleRequest(context.Background(), &logical.Request{
			Operation: logical.ReadOperation, Path: "token/crm", Storage: tb.s,
			Data: map[string]interface{}{"min_ttl": "7200"},
		})
		if err != nil || resp == nil || resp.IsError() {
			b.Fatalf("read: %v %v", resp, err)
		}
	}
	before := idp.Count()
	cpu0 := processCPU()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req()
	}
	b.StopTimer()
	b.ReportMetric(float64(idp.Count()-before)/float64(b.N), "refreshes/op")
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
}

// processCPU is the CPU time this process has used (user and system), in
// nanoseconds. It counts the fake token endpoint too (same process), but
// unlike wall time it does not grow when other processes load the machine.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkHandleMemory measures the heap the backend keeps per binding
// written and per handle read: memory must follow what is used, not what is
// bound. It writes 10,000 api_token bindings, then reads 1,000 of them, and
// reports the heap held by the per-handle cache (the difference made by
// dropping it), so that the in-process storage does not count.
func BenchmarkHandleMemory(b *testing.B) {
	const written, read = 10000, 1000
	var perWritten, perRead, entries float64
	for n := 0; n < b.N; n++ {
		tb := getTestBackend(b, nil)
		for i := 0; i < written; i++ {
			tb.write(b, fmt.Sprintf("bindings/h%06d", i), map[string]interface{}{"kind": "api_token", "token": testAPIToken})
		}
		entries = float64(len(tb.handles.m))
		perWritten = float64(cacheHeap(tb)) / written
		for i := 0; i < read; i++ {
			benchRead(b, tb, fmt.Sprintf("token/h%06d", i))
		}
		perRead = float64(cacheHeap(tb)) / read
	}
	b.ReportMetric(entries, "entries-after-writes")
	b.ReportMetric(perWritten, "B/binding-written")
	b.ReportMetric(perRead, "B/handle-read")
}

// cacheHeap is the live heap held by the backend's per-handle cache: the
// heap before and after dropping it (as Clean does; the next read of a
// handle rebuilds its entry).
func cacheHeap(tb *testBackend) int64 {
	with := liveHeap()
	tb.handles.clear()
	return int64(with) - int64(liveHeap())
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
