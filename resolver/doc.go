// Package resolver is the host side of flowcred: it resolves a credential
// handle (google_sales) to ready-to-use credential material by reading
// <mount>/token/<handle> from Vault, caches the material until its lease
// nears its end, and injects its headers into outgoing requests.
//
// It implements the workflow engine's runtime interface
// CredentialProvider::resolve(handle) -> CredentialMaterial:
//
//	p, err := resolver.NewVault() // VAULT_ADDR, VAULT_TOKEN, VAULT_NAMESPACE
//	m, err := p.Resolve(ctx, "google_sales")
//	m.Apply(req)                  // Authorization: Bearer ..., extra headers
//
// or, for every request of an HTTP client:
//
//	client := &http.Client{Transport: &resolver.Transport{Provider: p, Handle: "google_sales"}}
//
// The plugin refreshes tokens upstream; this package only decides when to
// ask Vault again. Concurrent resolves of one handle make one Vault read, and
// different handles never wait on each other.
//
// Material never prints its token: String, GoString, Format, LogValue and
// MarshalJSON redact it, so logging a *Material is safe. Read AccessToken or
// Headers explicitly when the token is needed.
package resolver
