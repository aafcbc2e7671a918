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
// and the golang.org/x/oauth2 idioms, in one line each:
//
//	client := p.NewClient(ctx, "google_sales")   // every header, 401 retried once
//	ts := p.TokenSource("google_sales")          // for option.WithTokenSource, oauth2.NewClient
//
// The plugin refreshes tokens upstream; this package only decides when to
// ask Vault again. Concurrent resolves of one handle make one Vault read, and
// different handles never wait on each other.
//
// Errors wrap one sentinel each, for errors.Is: ErrNotFound (404),
// ErrNeedsReauth and ErrNeedsAuthorization (a 400 whose message starts with
// that health word), ErrPermissionDenied, ErrVaultTokenExpired,
// ErrUnavailable and ErrMisconfigured. They are decided from Vault's status
// and that leading word only.
//
// The provider's own Vault token: WithAuth logs in with a vault/api auth
// method (AppRole, Kubernetes, ...), keeps the token alive with vault/api's
// LifetimeWatcher and logs in again when it ends; WithTokenRenewal renews an
// existing renewable token. Close stops them.
//
// This package imports vault/api but not the Vault SDK (github.com/
// hashicorp/vault/sdk): a connector that imports it builds neither the
// plugin framework nor its dependencies (TestImports_NoVaultSDK).
//
// Material never prints its token: String, GoString, Format, LogValue and
// MarshalJSON redact it, so logging a *Material is safe. Read AccessToken or
// Headers explicitly when the token is needed.
package resolver
