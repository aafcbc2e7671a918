package resolver_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
	"golang.org/x/oauth2"

	"github.com/flowcred/vault-plugin-flowcred/resolver"
)

// Resolve a handle and call an API with its material. The Vault address,
// token and namespace come from VAULT_ADDR, VAULT_TOKEN and VAULT_NAMESPACE.
func ExampleVaultProvider_Resolve() {
	p, err := resolver.NewVault() // mount "flowcred"; resolver.WithMount to change it
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	m, err := p.Resolve(ctx, "google_sales")
	switch {
	case errors.Is(err, resolver.ErrNeedsReauth):
		log.Fatalf("ask an operator to re-authorize google_sales: %v", err)
	case errors.Is(err, resolver.ErrUnavailable):
		log.Fatalf("retry later: %v", err)
	case err != nil:
		log.Fatal(err)
	}
	log.Printf("using %v", m) // safe: the token is redacted

	req, _ := http.NewRequestWithContext(ctx, http.MethodGet,
		"https://sheets.googleapis.com/v4/spreadsheets/SHEET_ID/values/A1:D10", nil)
	m.Apply(req) // Authorization: Bearer ..., plus the binding's extra headers
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
}

// An http.Client whose every request carries the handle's current token;
// a 401 makes the transport fetch a fresh token and retry once.
func ExampleTransport() {
	p, err := resolver.NewVault()
	if err != nil {
		log.Fatal(err)
	}
	client := &http.Client{
		Transport: &resolver.Transport{Provider: p, Handle: "google_sales"},
		Timeout:   30 * time.Second,
	}
	resp, err := client.Post("https://sheets.googleapis.com/v4/spreadsheets/SHEET_ID/values/A1:append",
		"application/json", strings.NewReader(`{"values":[["lead"]]}`)) // replayable body: retried on 401
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
}

// sheetsService has the shape of a Google API client (sheets.NewService with
// option.WithTokenSource): its constructor takes an oauth2.TokenSource and
// builds its *http.Client with oauth2.NewClient.
type sheetsService struct{ client *http.Client }

func newSheetsService(ctx context.Context, ts oauth2.TokenSource) *sheetsService {
	return &sheetsService{client: oauth2.NewClient(ctx, ts)}
}

// A client that takes an oauth2.TokenSource. With google.golang.org/api:
//
//	svc, err := sheets.NewService(ctx, option.WithTokenSource(p.TokenSource("google_sales")),
//		option.WithQuotaProject("sales-project")) // a TokenSource carries no extra_headers
//
// The token is the provider's cached one until the lease nears its end; the
// oauth2.Token's Expiry is that moment, so the client asks again in time.
func ExampleVaultProvider_TokenSource() {
	p, err := resolver.NewVault()
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	svc := newSheetsService(ctx, p.TokenSource("google_sales"))

	resp, err := svc.client.Get("https://sheets.googleapis.com/v4/spreadsheets/SHEET_ID/values/A1:D10")
	switch {
	case errors.Is(err, resolver.ErrNotFound):
		log.Fatal("no binding for google_sales: ask an operator to bind it")
	case errors.Is(err, resolver.ErrNeedsReauth), errors.Is(err, resolver.ErrNeedsAuthorization):
		log.Fatalf("google_sales must be (re-)authorized by a person: %v", err)
	case err != nil:
		log.Fatal(err)
	}
	defer resp.Body.Close()
}

// An *http.Client in one line: every header of the material (Authorization
// and the binding's extra_headers, e.g. x-goog-user-project), cached, and a
// 401 retried once with a fresh token.
func ExampleVaultProvider_NewClient() {
	p, err := resolver.NewVault()
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	client := p.NewClient(context.Background(), "google_sales")
	client.Timeout = 30 * time.Second
	resp, err := client.Get("https://sheets.googleapis.com/v4/spreadsheets/SHEET_ID/values/A1:D10")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
}

// appRole stands in for github.com/hashicorp/vault/api/auth/approle:
//
//	method, err := approle.NewAppRoleAuth(roleID, &approle.SecretID{FromEnv: "VAULT_SECRET_ID"})
//
// Any api.AuthMethod works (kubernetes.NewKubernetesAuth, aws, ...).
type appRole struct{ roleID, secretID string }

func (a appRole) Login(ctx context.Context, c *api.Client) (*api.Secret, error) {
	return c.Logical().WriteWithContext(ctx, "auth/approle/login", map[string]interface{}{"role_id": a.roleID, "secret_id": a.secretID})
}

// The connector's own Vault token from an auth method: logged in before the
// first read, renewed while Vault allows, and replaced by a new login before
// it ends or when it was revoked.
func ExampleWithAuth() {
	p, err := resolver.NewVault(resolver.WithAuth(appRole{os.Getenv("VAULT_ROLE_ID"), os.Getenv("VAULT_SECRET_ID")}))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close() // stops the token's watcher
	_, err = p.Resolve(context.Background(), "google_sales")
	if errors.Is(err, resolver.ErrVaultTokenExpired) {
		log.Fatalf("the connector's Vault login failed: check its role and secret ID: %v", err)
	}
}

// Options: a client built elsewhere, another mount, a fixed refresh margin.
func ExampleNewVault() {
	p, err := resolver.NewVault(
		resolver.WithMount("team-a/flowcred"),
		resolver.WithMargin(2*time.Minute), // re-read when less than 2m is left
	)
	if err != nil {
		log.Fatal(err)
	}
	_ = p
}

// Printing material never shows the token.
func ExampleMaterial_String() {
	m := &resolver.Material{
		Handle:        "google_sales",
		Kind:          "google.oauth2",
		AccessToken:   "ya29.secret",
		TokenType:     "Bearer",
		ExpiresAt:     time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC),
		Headers:       map[string]string{"Authorization": "Bearer ya29.secret", "x-goog-user-project": "sales"},
		LeaseDuration: 55 * time.Minute,
	}
	fmt.Println(m)
	// Output:
	// resolver.Material{handle=google_sales kind=google.oauth2 token_type=Bearer access_token=[redacted] expires_at=2030-01-01T12:00:00Z headers=[Authorization x-goog-user-project] lease_duration=55m0s}
}

// Apply sets the material's headers on a request.
func ExampleMaterial_Apply() {
	m := &resolver.Material{
		Handle:  "crm",
		Kind:    "api_token",
		Headers: map[string]string{"X-Api-Key": "k-123"},
	}
	req, _ := http.NewRequest(http.MethodGet, "https://crm.example.com/v1/leads", nil)
	m.Apply(req)
	fmt.Println(req.Header.Get("X-Api-Key"))
	// Output:
	// k-123
}
