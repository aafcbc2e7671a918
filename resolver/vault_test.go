package resolver_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/flowcred/vault-plugin-flowcred/internal/fakevault"
	"github.com/flowcred/vault-plugin-flowcred/resolver"
)

func TestResolve_StaticMaterial(t *testing.T) {
	fv := fakevault.Start(t)
	bindStatic(t, fv, "crm", staticToken, 100*time.Second)
	p := newProvider(t, fv)

	m, err := p.Resolve(context.Background(), "crm")
	if err != nil {
		t.Fatal(err)
	}
	if m.Handle != "crm" || m.Kind != "api_token" || m.AccessToken != staticToken || m.TokenType != "Bearer" {
		t.Fatalf("material: %+v (token %q)", m, m.AccessToken)
	}
	if got := m.Headers["Authorization"]; got != "Bearer "+staticToken {
		t.Fatalf("Authorization header = %q", got)
	}
	if !m.ExpiresAt.IsZero() {
		t.Fatalf("static token has ExpiresAt %v", m.ExpiresAt)
	}
	if m.LeaseDuration != 100*time.Second || !strings.HasPrefix(m.LeaseID, "flowcred/token/crm/") {
		t.Fatalf("lease %q %v", m.LeaseID, m.LeaseDuration)
	}
	if m.FetchedAt.IsZero() {
		t.Fatal("FetchedAt not set")
	}
}

func TestResolve_UpstreamMaterial(t *testing.T) {
	fv := fakevault.Start(t)
	te := newTokenEndpoint(t)
	bindOAuth(t, fv, "google_sales", te)
	p := newProvider(t, fv)

	m, err := p.Resolve(context.Background(), "google_sales")
	if err != nil {
		t.Fatal(err)
	}
	if m.AccessToken != "tok-1" || m.Headers["Authorization"] != "Bearer tok-1" || m.Headers["x-goog-user-project"] != "sales-project" {
		t.Fatalf("material %v", m)
	}
	if m.ExpiresAt.IsZero() || time.Until(m.ExpiresAt) < 50*time.Minute {
		t.Fatalf("ExpiresAt %v", m.ExpiresAt)
	}
	// The plugin's lease is the token's life minus its 5m refresh margin.
	if m.LeaseDuration < 50*time.Minute || m.LeaseDuration > 56*time.Minute {
		t.Fatalf("LeaseDuration %v", m.LeaseDuration)
	}
}

func TestResolve_CachedUntilMargin(t *testing.T) {
	fv := fakevault.Start(t)
	bindStatic(t, fv, "crm", staticToken, 100*time.Second)
	clk := newClock()
	p := newProvider(t, fv, resolver.WithClock(clk.Now))
	ctx := context.Background()
	reads := func() int { return fv.Count("flowcred/token/crm") }

	for i := 0; i < 5; i++ {
		if _, err := p.Resolve(ctx, "crm"); err != nil {
			t.Fatal(err)
		}
	}
	if reads() != 1 {
		t.Fatalf("5 resolves made %d reads, want 1", reads())
	}
	// Default margin: 10% of the 100s lease. At 89s the material is fresh.
	clk.Advance(89 * time.Second)
	if _, err := p.Resolve(ctx, "crm"); err != nil {
		t.Fatal(err)
	}
	if reads() != 1 {
		t.Fatalf("at 89s of a 100s lease: %d reads, want 1", reads())
	}
	clk.Advance(2 * time.Second) // 91s: less than 10% left
	if _, err := p.Resolve(ctx, "crm"); err != nil {
		t.Fatal(err)
	}
	if reads() != 2 {
		t.Fatalf("at 91s of a 100s lease: %d reads, want 2", reads())
	}
}

func TestResolve_WithMargin(t *testing.T) {
	fv := fakevault.Start(t)
	bindStatic(t, fv, "crm", staticToken, 100*time.Second)
	clk := newClock()
	p := newProvider(t, fv, resolver.WithClock(clk.Now), resolver.WithMargin(30*time.Second))
	ctx := context.Background()
	if _, err := p.Resolve(ctx, "crm"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(69 * time.Second)
	if _, err := p.Resolve(ctx, "crm"); err != nil {
		t.Fatal(err)
	}
	if n := fv.Count("flowcred/token/crm"); n != 1 {
		t.Fatalf("at 69s with a 30s margin: %d reads, want 1", n)
	}
	clk.Advance(2 * time.Second)
	if _, err := p.Resolve(ctx, "crm"); err != nil {
		t.Fatal(err)
	}
	if n := fv.Count("flowcred/token/crm"); n != 2 {
		t.Fatalf("at 71s with a 30s margin: %d reads, want 2", n)
	}
}

func TestResolve_TokenExpiryBoundsCache(t *testing.T) {
	// A lease longer than the token (binding ttl is a cap, so this cannot
	// come from the plugin; a hand-made answer shows the rule): the token's
	// own expiry decides.
	fv := fakevault.Start(t)
	fv.Hook(func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"lease_id":"flowcred/token/x/1","lease_duration":3600,"data":{"handle":"x","kind":"oauth2.refresh_token","access_token":"t","token_type":"Bearer","expires_in":100,"expires_at":"2099-01-01T00:00:00Z","headers":{"Authorization":"Bearer t"}}}`))
		return true
	})
	clk := newClock()
	p := newProvider(t, fv, resolver.WithClock(clk.Now), resolver.WithMargin(10*time.Second))
	ctx := context.Background()
	if _, err := p.Resolve(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(89 * time.Second)
	if _, err := p.Resolve(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if n := fv.Count("flowcred/token/x"); n != 1 {
		t.Fatalf("%d reads at 89s, want 1", n)
	}
	clk.Advance(2 * time.Second)
	if _, err := p.Resolve(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if n := fv.Count("flowcred/token/x"); n != 2 {
		t.Fatalf("%d reads at 91s of a 100s token with a 10s margin, want 2", n)
	}
}

// Without a lease (mount config token_leases=false) the answer's data.ttl
// says when to read again.
func TestResolve_NoLeaseUsesDataTTL(t *testing.T) {
	fv := fakevault.Start(t)
	fv.Hook(func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"lease_id":"","lease_duration":0,"data":{"handle":"x","kind":"oauth2.refresh_token","access_token":"t","token_type":"Bearer","expires_in":3600,"ttl":100,"rotation_period":3600,"headers":{"Authorization":"Bearer t"}}}`))
		return true
	})
	clk := newClock()
	p := newProvider(t, fv, resolver.WithClock(clk.Now))
	ctx := context.Background()
	for _, step := range []struct {
		advance time.Duration
		reads   int
	}{{0, 1}, {89 * time.Second, 1}, {2 * time.Second, 2}} {
		clk.Advance(step.advance)
		if _, err := p.Resolve(ctx, "x"); err != nil {
			t.Fatal(err)
		}
		if n := fv.Count("flowcred/token/x"); n != step.reads {
			t.Fatalf("after +%v: %d reads, want %d (ttl 100s, 10%% margin)", step.advance, n, step.reads)
		}
	}
}

// blockReads holds token reads of handle until the returned release is
// called; started receives once per blocked request.
func blockReads(fv *fakevault.Server, handle string) (started chan struct{}, release func()) {
	started = make(chan struct{}, 100)
	gate := make(chan struct{})
	var once sync.Once
	fv.Hook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/v1/flowcred/token/"+handle {
			started <- struct{}{}
			<-gate
		}
		return false
	})
	return started, func() { once.Do(func() { close(gate) }) }
}

func TestResolve_SingleFlight(t *testing.T) {
	fv := fakevault.Start(t)
	bindStatic(t, fv, "crm", staticToken, time.Hour)
	p := newProvider(t, fv)
	started, release := blockReads(fv, "crm")
	defer release()

	const n = 50
	var ready, done sync.WaitGroup
	ready.Add(n)
	done.Add(n)
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			defer done.Done()
			ready.Done()
			m, err := p.Resolve(context.Background(), "crm")
			if err == nil && m.AccessToken != staticToken {
				err = errors.New("wrong token")
			}
			errs <- err
		}()
	}
	ready.Wait()
	<-started // the one read is in Vault; the others queue behind it
	time.Sleep(50 * time.Millisecond)
	release()
	done.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := fv.Count("flowcred/token/crm"); got != 1 {
		t.Fatalf("%d concurrent resolves made %d Vault reads, want 1", n, got)
	}
}

func TestResolve_OtherHandlesDoNotWait(t *testing.T) {
	fv := fakevault.Start(t)
	bindStatic(t, fv, "slow", staticToken, time.Hour)
	bindStatic(t, fv, "fast", "other-token", time.Hour)
	p := newProvider(t, fv)
	started, release := blockReads(fv, "slow")
	defer release()

	slowDone := make(chan error, 1)
	go func() {
		_, err := p.Resolve(context.Background(), "slow")
		slowDone <- err
	}()
	<-started
	// "slow" is stuck in Vault; "fast" must resolve meanwhile. The deadline
	// only guards against a hang; it is not a timing assertion.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := p.Resolve(ctx, "fast")
	if err != nil {
		t.Fatalf("fast handle waited on the slow one: %v", err)
	}
	if m.AccessToken != "other-token" {
		t.Fatal("wrong token")
	}
	select {
	case <-slowDone:
		t.Fatal("slow read finished before release")
	default:
	}
	release()
	if err := <-slowDone; err != nil {
		t.Fatal(err)
	}
}

func TestResolve_WaiterGivesUpWithContext(t *testing.T) {
	fv := fakevault.Start(t)
	bindStatic(t, fv, "crm", staticToken, time.Hour)
	p := newProvider(t, fv)
	started, release := blockReads(fv, "crm")
	defer release()
	go func() { _, _ = p.Resolve(context.Background(), "crm") }()
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := p.Resolve(ctx, "crm")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestResolve_FailureSharedWithWaiters(t *testing.T) {
	fv := fakevault.Start(t)
	gate := make(chan struct{})
	started := make(chan struct{}, 10)
	fv.Hook(func(w http.ResponseWriter, r *http.Request) bool {
		started <- struct{}{}
		<-gate
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"errors":["Vault is sealed"]}`))
		return true
	})
	p := newProvider(t, fv)
	const n = 10
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := p.Resolve(context.Background(), "crm")
			errs <- err
		}()
	}
	<-started
	time.Sleep(50 * time.Millisecond)
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, resolver.ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
	}
	// The callers that waited behind the failing read share its answer;
	// only those that arrived after it finished ask again.
	if got := fv.Count("flowcred/token/crm"); got >= n {
		t.Fatalf("%d reads for %d concurrent resolves of a failing Vault", got, n)
	}
}

func TestResolve_ServesCachedTokenWhenVaultIsDown(t *testing.T) {
	fv := fakevault.Start(t)
	bindStatic(t, fv, "crm", staticToken, 100*time.Second)
	clk := newClock()
	p := newProvider(t, fv, resolver.WithClock(clk.Now))
	ctx := context.Background()
	if _, err := p.Resolve(ctx, "crm"); err != nil {
		t.Fatal(err)
	}
	fv.Close()
	clk.Advance(95 * time.Second) // past the margin, inside the lease
	m, err := p.Resolve(ctx, "crm")
	if err != nil {
		t.Fatalf("cached material not served while Vault is down: %v", err)
	}
	if m.AccessToken != staticToken || len(m.Warnings) == 0 || !strings.Contains(m.Warnings[0], "serving cached material") {
		t.Fatalf("material %v, warnings %q", m, m.Warnings)
	}
	clk.Advance(10 * time.Second) // the lease is over
	if _, err := p.Resolve(ctx, "crm"); !errors.Is(err, resolver.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

func TestRefresh_ForcesNewTokenWithMinTTL(t *testing.T) {
	fv := fakevault.Start(t)
	te := newTokenEndpoint(t)
	bindOAuth(t, fv, "google_sales", te)
	var mu sync.Mutex
	var minTTLs []string
	fv.Hook(func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		minTTLs = append(minTTLs, r.URL.Query().Get("min_ttl"))
		mu.Unlock()
		return false
	})
	p := newProvider(t, fv)
	ctx := context.Background()
	m1, err := p.Resolve(ctx, "google_sales")
	if err != nil {
		t.Fatal(err)
	}
	m2, err := p.Refresh(ctx, "google_sales", m1)
	if err != nil {
		t.Fatal(err)
	}
	if m1.AccessToken != "tok-1" || m2.AccessToken != "tok-2" {
		t.Fatalf("tokens %s then %s", m1.AccessToken, m2.AccessToken)
	}
	if minTTLs[0] != "" || minTTLs[1] == "" {
		t.Fatalf("min_ttl per read: %q", minTTLs)
	}
	// The new material is cached: a resolve makes no read.
	m3, err := p.Resolve(ctx, "google_sales")
	if err != nil || m3.AccessToken != "tok-2" {
		t.Fatalf("after refresh: %v %v", m3, err)
	}
	// A second refresh for the same rejected token is answered from the
	// cache: someone already replaced it.
	m4, err := p.Refresh(ctx, "google_sales", m1)
	if err != nil || m4.AccessToken != "tok-2" {
		t.Fatalf("second refresh: %v %v", m4, err)
	}
	if n := fv.Count("flowcred/token/google_sales"); n != 2 {
		t.Fatalf("%d Vault reads, want 2", n)
	}
	if n := te.issued.Load(); n != 2 {
		t.Fatalf("%d upstream grants, want 2", n)
	}
}

func TestResolve_ErrorMapping(t *testing.T) {
	fv := fakevault.Start(t)
	te := newTokenEndpoint(t)
	bindOAuth(t, fv, "reauth", te)
	bindOAuth(t, fv, "down", te)
	fv.Write(t, "flowcred/bindings/nosecret", map[string]interface{}{"kind": "api_token", "token_secret": "not_written"})
	// A live token without read on the handle (it can look itself up).
	fv.AddToken("narrow", func(method, path string) bool {
		return path == "flowcred/token/allowed" || path == "auth/token/lookup-self"
	})

	ctx := context.Background()
	p := newProvider(t, fv)

	te.mode.Store("invalid_grant")
	_, reauthErr := p.Resolve(ctx, "reauth")
	te.mode.Store("down")
	_, downErr := p.Resolve(ctx, "down")
	te.mode.Store("")

	narrow, _ := resolver.NewVault(resolver.WithClient(vaultClient(t, fv.Addr, "narrow")))
	_, deniedErr := narrow.Resolve(ctx, "google_sales")
	_, notFoundErr := p.Resolve(ctx, "google_sales")
	_, missingSecretErr := p.Resolve(ctx, "nosecret")
	wrongMount, _ := resolver.NewVault(resolver.WithClient(vaultClient(t, fv.Addr, fakevault.RootToken)), resolver.WithMount("elsewhere"))
	_, noMountErr := wrongMount.Resolve(ctx, "google_sales")
	_, badNameErr := p.Resolve(ctx, "../sys/seal")
	unreachable, _ := resolver.NewVault(resolver.WithClient(vaultClient(t, "http://127.0.0.1:1", fakevault.RootToken)))
	_, unreachableErr := unreachable.Resolve(ctx, "google_sales")

	cases := []struct {
		name   string
		err    error
		want   error
		status int
		msg    string
	}{
		{"no binding", notFoundErr, resolver.ErrNotFound, 404, `no binding for handle "google_sales"`},
		{"needs reauth", reauthErr, resolver.ErrNeedsReauth, 400, "needs_reauth: "},
		{"needs reauth: the provider's code", reauthErr, resolver.ErrNeedsReauth, 400, "invalid_grant"},
		{"provider down, no cached token", downErr, resolver.ErrUnavailable, 502, "no cached token is valid"},
		{"permission denied", deniedErr, resolver.ErrPermissionDenied, 403, "permission denied"},
		{"missing secret", missingSecretErr, resolver.ErrMisconfigured, 400, `secret "not_written"`},
		{"nothing mounted", noMountErr, resolver.ErrNotFound, 404, "no handler for route"},
		{"invalid handle", badNameErr, resolver.ErrMisconfigured, 0, "not a valid handle name"},
		{"unreachable", unreachableErr, resolver.ErrUnavailable, 0, "connection refused"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !errors.Is(c.err, c.want) {
				t.Fatalf("err = %v, want %v", c.err, c.want)
			}
			var re *resolver.Error
			if !errors.As(c.err, &re) || re.StatusCode != c.status {
				t.Fatalf("err %v: status %d, want %d", c.err, re.StatusCode, c.status)
			}
			if !strings.Contains(c.err.Error(), c.msg) {
				t.Fatalf("err %q does not keep the server's message %q", c.err, c.msg)
			}
			if strings.Contains(c.err.Error(), "\n") {
				t.Fatalf("err is not one line: %q", c.err)
			}
			for _, secret := range []string{clientSecret, refreshToken, staticToken} {
				if strings.Contains(c.err.Error(), secret) {
					t.Fatal("error carries a secret")
				}
			}
			if c.status != 0 {
				var apiErr *api.ResponseError
				if !errors.As(c.err, &apiErr) {
					t.Fatal("the *api.ResponseError is not wrapped")
				}
			}
		})
	}
}

func TestNewVault_FromEnvironment(t *testing.T) {
	fv := fakevault.Start(t)
	bindStatic(t, fv, "crm", staticToken, time.Hour)
	t.Setenv("VAULT_ADDR", fv.Addr)
	t.Setenv("VAULT_TOKEN", fakevault.RootToken)
	t.Setenv("VAULT_MAX_RETRIES", "0")
	p, err := resolver.NewVault()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Resolve(context.Background(), "crm"); err != nil {
		t.Fatal(err)
	}
	if p.Mount() != "flowcred" {
		t.Fatal(p.Mount())
	}
}

func TestNewVault_BadOptions(t *testing.T) {
	for name, opt := range map[string]resolver.Option{
		"nil client":      resolver.WithClient(nil),
		"empty mount":     resolver.WithMount("/"),
		"negative margin": resolver.WithMargin(-time.Second),
		"nil clock":       resolver.WithClock(nil),
	} {
		if _, err := resolver.NewVault(opt); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestResolve_ReturnsCopies(t *testing.T) {
	fv := fakevault.Start(t)
	bindStatic(t, fv, "crm", staticToken, time.Hour)
	p := newProvider(t, fv)
	m1, _ := p.Resolve(context.Background(), "crm")
	m1.Headers["Authorization"] = "tampered"
	m2, _ := p.Resolve(context.Background(), "crm")
	if m2.Headers["Authorization"] != "Bearer "+staticToken {
		t.Fatal("a caller's change reached the cache")
	}
}
