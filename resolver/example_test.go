package resolver_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"strings"
	"time"

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
