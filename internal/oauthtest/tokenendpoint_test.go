package oauthtest_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
)

// post posts form to u and returns the status and the body.
func post(t *testing.T, u string, form url.Values) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func decode(t *testing.T, body string) map[string]any {
	t.Helper()
	m := map[string]any{}
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("%q: %v", body, err)
	}
	return m
}

// Answer replaces what is issued once the checks pass; RefuseNext refuses
// the next requests of one grant; OneSequence numbers both kinds of token
// from one sequence.
func TestTokenEndpointAnswerRefuseSequence(t *testing.T) {
	e := oauthtest.StartTokenEndpoint(t, oauthtest.TokenOptions{RefreshToken: "rt", Rotate: true, OneSequence: true})
	rt := func(v string) url.Values { return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {v}} }
	if st, b := post(t, e.TokenURL(), rt("rt")); st != 200 || decode(t, b)["refresh_token"] != "rotated-1-SECRET" || decode(t, b)["access_token"] != "at-2-SECRET" {
		t.Fatalf("one sequence: %d %s", st, b)
	}
	e.Answer(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "http://elsewhere.invalid/"+r.PostForm.Get("grant_type"))
		w.WriteHeader(http.StatusFound)
	})
	if st, b := post(t, e.TokenURL(), rt("rt")); st != 400 || decode(t, b)["error"] != "invalid_grant" {
		t.Fatalf("the checks come before Answer: %d %s", st, b)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(e.TokenURL(), rt("rotated-1-SECRET"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 302 || resp.Header.Get("Location") != "http://elsewhere.invalid/refresh_token" || resp.Header.Get("Content-Type") != "" {
		t.Fatalf("answered: %d %v", resp.StatusCode, resp.Header)
	}
	e.Answer(nil)
	e.RefuseNext("client_credentials", "slow_down", "")
	cc := url.Values{"grant_type": {"client_credentials"}}
	if st, b := post(t, e.TokenURL(), cc); st != 400 || decode(t, b)["error"] != "slow_down" {
		t.Fatalf("refused: %d %s", st, b)
	}
	for i := 0; i < 2; i++ {
		if st, b := post(t, e.TokenURL(), cc); st != 200 {
			t.Fatalf("after the refusals: %d %s", st, b)
		}
	}
	if n := e.GrantCount("client_credentials"); n != 3 || e.Issued() != 3 {
		t.Fatalf("grant count %d, issued %d", n, e.Issued())
	}
}

// The connect flows: an authorization code with its PKCE verifier, a
// refresh token issued with every token, device authorizations, and
// revocations.
func TestTokenEndpointConnect(t *testing.T) {
	e := oauthtest.StartTokenEndpoint(t, oauthtest.TokenOptions{
		AccessToken: "at", Scope: "read write", RefreshToken: "issued-rt", IssueRefreshToken: "issued-rt",
		Grants:              []string{oauthtest.GrantAuthorizationCode, "refresh_token"},
		DeviceAuthorization: map[string]any{"device_code": "dc", "user_code": "U", "interval": 1},
	})
	sum := sha256.Sum256([]byte("verifier"))
	e.SetAuthorizationCode("code", base64.RawURLEncoding.EncodeToString(sum[:]))
	code := func(c, v string) url.Values {
		return url.Values{"grant_type": {oauthtest.GrantAuthorizationCode}, "code": {c}, "code_verifier": {v}}
	}
	for _, f := range []url.Values{code("other", "verifier"), code("code", "wrong")} {
		if st, b := post(t, e.TokenURL(), f); st != 400 || decode(t, b)["error"] != "invalid_grant" {
			t.Fatalf("%v: %d %s", f, st, b)
		}
	}
	st, b := post(t, e.TokenURL(), code("code", "verifier"))
	if m := decode(t, b); st != 200 || m["refresh_token"] != "issued-rt" || m["scope"] != "read write" || m["access_token"] != "at" {
		t.Fatalf("code grant: %d %s", st, b)
	}
	e.SetIssueRefreshToken("")
	if st, b := post(t, e.TokenURL(), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"issued-rt"}}); st != 200 || strings.Contains(b, "refresh_token") {
		t.Fatalf("no refresh token issued: %d %s", st, b)
	}
	if st, b := post(t, e.DeviceAuthorizationURL(), url.Values{"client_id": {"c"}}); st != 200 || decode(t, b)["user_code"] != "U" {
		t.Fatalf("device authorization: %d %s", st, b)
	}
	post(t, e.RevocationURL(), url.Values{"token": {"a"}, "token_type_hint": {"access_token"}})
	post(t, e.RevocationURL(), url.Values{"token": {"r"}, "token_type_hint": {"refresh_token"}})
	if got := e.Revoked("refresh_token"); len(got) != 1 || got[0] != "r" || len(e.Revoked("")) != 2 {
		t.Fatalf("revoked %v, all %v", got, e.Revoked(""))
	}
}

// es256 signs claims with k (kid "" leaves the header out).
func es256(t *testing.T, k *ecdsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	h := map[string]any{"alg": "ES256", "typ": "JWT"}
	if kid != "" {
		h["kid"] = kid
	}
	enc := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
	input := enc(h) + "." + enc(claims)
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, k, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// Trust: assertions are verified against the key of their kid, the last
// verified one is recorded, and a target_audience gets an ID token on the
// endpoint's clock.
func TestTokenEndpointAssertions(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	e := oauthtest.StartTokenEndpoint(t, oauthtest.TokenOptions{Now: func() time.Time { return now }, IDTokenLifetime: time.Minute})
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	grant := func(a string) url.Values {
		return url.Values{"grant_type": {oauthtest.GrantJWTBearer}, "assertion": {a}, "scope": {"s"}}
	}
	if st, _ := post(t, e.TokenURL(), grant("not.a.jwt")); st != 200 {
		t.Fatalf("nothing trusted yet: any assertion is accepted, got %d", st)
	}
	e.Trust(map[string]crypto.PublicKey{"k1": &k1.PublicKey})
	for _, a := range []string{es256(t, k2, "k1", map[string]any{"iss": "i"}), es256(t, k1, "k2", map[string]any{"iss": "i"})} {
		if st, b := post(t, e.TokenURL(), grant(a)); st != 400 || decode(t, b)["error_description"] != oauthtest.ErrDescInvalidSignature {
			t.Fatalf("refused: %d %s", st, b)
		}
	}
	if st, b := post(t, e.TokenURL(), grant(es256(t, k1, "", map[string]any{"iss": "i"}))); st != 200 {
		t.Fatalf("no kid: any trusted key: %d %s", st, b)
	}
	st, b := post(t, e.TokenURL(), grant(es256(t, k1, "k1", map[string]any{"iss": "sa@x", "target_audience": "https://svc"})))
	if st != 200 {
		t.Fatalf("ID token: %d %s", st, b)
	}
	parts := strings.Split(decode(t, b)["id_token"].(string), ".")
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if c := decode(t, string(raw)); c["aud"] != "https://svc" || c["sub"] != "sa@x" || c["exp"] != float64(now.Add(time.Minute).Unix()) {
		t.Fatalf("ID token claims %v", c)
	}
	header, claims, form := e.LastAssertion()
	if header["kid"] != "k1" || claims["target_audience"] != "https://svc" || form.Get("scope") != "s" {
		t.Fatalf("last assertion %v %v %v", header, claims, form)
	}
}

// ConnState sees the endpoint's connections.
func TestTokenEndpointConnState(t *testing.T) {
	var mu sync.Mutex
	var states []http.ConnState
	e := oauthtest.StartTokenEndpoint(t, oauthtest.TokenOptions{ConnState: func(_ net.Conn, s http.ConnState) {
		mu.Lock()
		states = append(states, s)
		mu.Unlock()
	}})
	post(t, e.TokenURL(), url.Values{"grant_type": {"client_credentials"}})
	mu.Lock()
	defer mu.Unlock()
	if len(states) < 2 || states[0] != http.StateNew || states[1] != http.StateActive {
		t.Fatalf("states %v", states)
	}
}
