package resolver

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// redacted replaces secret values wherever Material is printed.
const redacted = "[redacted]"

// Material is a handle's credential material: what a connector presents to
// an API. It is the seed's CredentialMaterial.
//
// Printing a Material (fmt verbs, slog, encoding/json) never shows the
// token or header values; read AccessToken or Headers, or call Apply.
type Material struct {
	// Handle and Kind echo the binding (e.g. google_sales, google.oauth2).
	Handle string
	Kind   string
	// AccessToken is the token to present. Secret.
	AccessToken string
	// TokenType is Bearer, or the scheme of an api_token binding ("" for a
	// bare token).
	TokenType string
	// ExpiresAt is when the token expires, as the plugin reported it; zero
	// for a static token without expiry.
	ExpiresAt time.Time
	// Headers are ready to inject: the credential header (Authorization:
	// Bearer ..., or an api_token's own header) plus the binding's
	// extra_headers. Values can be secret.
	Headers map[string]string
	// LeaseID and LeaseDuration are the Vault lease the material came with.
	// The lease is non-renewable; revoking it revokes nothing upstream.
	LeaseID       string
	LeaseDuration time.Duration
	// FetchedAt is when the material was read from Vault (local clock).
	FetchedAt time.Time
	// Warnings are the warnings Vault returned with the material, e.g.
	// that the handle is degraded and a cached token is being served.
	Warnings []string

	// expiresIn is the server's expires_in at FetchedAt; with FetchedAt it
	// gives the token's end on the local clock, immune to clock skew.
	// Zero when unknown.
	expiresIn time.Duration
	// readAgain is the answer's data.ttl, which the plugin sends instead
	// of a lease when the mount has token_leases=false: read again after it.
	readAgain time.Duration
}

// Apply sets the material's headers on req, replacing any value they had.
// A Material without Headers (built by hand) sets Authorization from
// TokenType and AccessToken.
func (m *Material) Apply(req *http.Request) {
	if req.Header == nil {
		req.Header = make(http.Header)
	}
	if len(m.Headers) == 0 {
		if m.AccessToken == "" {
			return
		}
		v := m.AccessToken
		if m.TokenType != "" {
			v = m.TokenType + " " + m.AccessToken
		}
		req.Header.Set("Authorization", v)
		return
	}
	for k, v := range m.Headers {
		req.Header.Set(k, v)
	}
}

// Clone returns a copy that shares nothing mutable with m.
func (m *Material) Clone() *Material {
	if m == nil {
		return nil
	}
	cp := *m
	if m.Headers != nil {
		cp.Headers = make(map[string]string, len(m.Headers))
		for k, v := range m.Headers {
			cp.Headers[k] = v
		}
	}
	cp.Warnings = append([]string(nil), m.Warnings...)
	return &cp
}

// tokenEnd is when the token stops being valid on the local clock, or zero
// when the token has no expiry.
func (m *Material) tokenEnd() time.Time {
	if m.expiresIn > 0 && !m.FetchedAt.IsZero() {
		return m.FetchedAt.Add(m.expiresIn)
	}
	return m.ExpiresAt
}

// HeaderNames returns the names of the headers Apply sets, sorted.
func (m Material) HeaderNames() []string {
	names := make([]string, 0, len(m.Headers))
	for k := range m.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// String describes the material without its token or header values.
func (m Material) String() string {
	var b strings.Builder
	b.WriteString("resolver.Material{handle=")
	b.WriteString(m.Handle)
	b.WriteString(" kind=")
	b.WriteString(m.Kind)
	b.WriteString(" token_type=")
	b.WriteString(m.TokenType)
	b.WriteString(" access_token=")
	b.WriteString(redactedIfSet(m.AccessToken))
	if !m.ExpiresAt.IsZero() {
		b.WriteString(" expires_at=")
		b.WriteString(m.ExpiresAt.UTC().Format(time.RFC3339))
	}
	b.WriteString(" headers=[")
	b.WriteString(strings.Join(m.HeaderNames(), " "))
	b.WriteString("]")
	if m.LeaseID != "" {
		b.WriteString(" lease_id=")
		b.WriteString(m.LeaseID)
	}
	b.WriteString(" lease_duration=")
	b.WriteString(m.LeaseDuration.String())
	b.WriteString("}")
	return b.String()
}

// GoString is used by %#v; it redacts like String.
func (m Material) GoString() string {
	var b strings.Builder
	b.WriteString("resolver.Material{Handle:")
	b.WriteString(strconv.Quote(m.Handle))
	b.WriteString(", Kind:")
	b.WriteString(strconv.Quote(m.Kind))
	b.WriteString(", AccessToken:")
	b.WriteString(strconv.Quote(redactedIfSet(m.AccessToken)))
	b.WriteString(", TokenType:")
	b.WriteString(strconv.Quote(m.TokenType))
	b.WriteString(", ExpiresAt:")
	b.WriteString(strconv.Quote(m.ExpiresAt.UTC().Format(time.RFC3339)))
	b.WriteString(", Headers:map[string]string{")
	for i, k := range m.HeaderNames() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(k))
		b.WriteString(":")
		b.WriteString(strconv.Quote(redacted))
	}
	b.WriteString("}, LeaseID:")
	b.WriteString(strconv.Quote(m.LeaseID))
	b.WriteString(", LeaseDuration:")
	b.WriteString(strconv.FormatInt(int64(m.LeaseDuration), 10))
	b.WriteString("}")
	return b.String()
}

// Format makes every fmt verb print the redacted form: %v, %+v, %s and %q
// use String, %#v uses GoString.
func (m Material) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		fmt.Fprint(f, m.GoString())
	case verb == 'q':
		fmt.Fprint(f, strconv.Quote(m.String()))
	default:
		fmt.Fprint(f, m.String())
	}
}

// LogValue makes log/slog print the redacted form.
func (m Material) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("handle", m.Handle),
		slog.String("kind", m.Kind),
		slog.String("token_type", m.TokenType),
		slog.String("access_token", redactedIfSet(m.AccessToken)),
		slog.Any("headers", m.HeaderNames()),
		slog.String("lease_id", m.LeaseID),
		slog.Duration("lease_duration", m.LeaseDuration),
	}
	if !m.ExpiresAt.IsZero() {
		attrs = append(attrs, slog.Time("expires_at", m.ExpiresAt))
	}
	return slog.GroupValue(attrs...)
}

// MarshalJSON encodes the material's metadata, redacted: a *Material handed
// to a JSON logger does not leak the token.
func (m Material) MarshalJSON() ([]byte, error) {
	out := struct {
		Handle        string   `json:"handle"`
		Kind          string   `json:"kind"`
		TokenType     string   `json:"token_type"`
		AccessToken   string   `json:"access_token"`
		ExpiresAt     string   `json:"expires_at,omitempty"`
		Headers       []string `json:"header_names"`
		LeaseID       string   `json:"lease_id,omitempty"`
		LeaseDuration int64    `json:"lease_duration"`
	}{
		Handle:        m.Handle,
		Kind:          m.Kind,
		TokenType:     m.TokenType,
		AccessToken:   redactedIfSet(m.AccessToken),
		Headers:       m.HeaderNames(),
		LeaseID:       m.LeaseID,
		LeaseDuration: int64(m.LeaseDuration / time.Second),
	}
	if !m.ExpiresAt.IsZero() {
		out.ExpiresAt = m.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return json.Marshal(out)
}

func redactedIfSet(s string) string {
	if s == "" {
		return ""
	}
	return redacted
}
