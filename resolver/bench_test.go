package resolver_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/flowcred/vault-plugin-flowcred/internal/fakevault"
	"github.com/flowcred/vault-plugin-flowcred/resolver"
)

// Benchmarks print numbers; nothing here asserts a time.
//
//	go test -run '^$' -bench . -benchmem ./resolver

// BenchmarkResolve_Cached is the cost of a resolve served from the cache.
func BenchmarkResolve_Cached(b *testing.B) {
	fv := fakevault.Start(b)
	bindStatic(b, fv, "crm", staticToken, time.Hour)
	p := newProvider(b, fv)
	ctx := context.Background()
	if _, err := p.Resolve(ctx, "crm"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := p.Resolve(ctx, "crm"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(fv.Count("flowcred/token/crm")), "vault-reads")
}

// BenchmarkResolve_CachedParallel: many goroutines, one handle.
func BenchmarkResolve_CachedParallel(b *testing.B) {
	fv := fakevault.Start(b)
	bindStatic(b, fv, "crm", staticToken, time.Hour)
	p := newProvider(b, fv)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := p.Resolve(context.Background(), "crm"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(fv.Count("flowcred/token/crm")), "vault-reads")
}

// BenchmarkResolve_Uncached is a Vault read per resolve (margin = lease), for
// comparison: the in-process plugin over loopback HTTP, so a floor, not
// what a real Vault costs (see /work/shared/facts.md for those).
func BenchmarkResolve_Uncached(b *testing.B) {
	fv := fakevault.Start(b)
	bindStatic(b, fv, "crm", staticToken, time.Hour)
	p := newProvider(b, fv, resolver.WithMargin(time.Hour))
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := p.Resolve(ctx, "crm"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTransport_Cached is a request through Transport to a loopback
// API, the token from the cache.
func BenchmarkTransport_Cached(b *testing.B) {
	fv := fakevault.Start(b)
	bindStatic(b, fv, "crm", staticToken, time.Hour)
	p := newProvider(b, fv)
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	srv := newLoopbackServer(b, api)
	c := &http.Client{Transport: &resolver.Transport{Provider: p, Handle: "crm"}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := c.Get(srv)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
}
