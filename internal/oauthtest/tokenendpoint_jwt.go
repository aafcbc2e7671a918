// A TokenEndpoint's checks of JWT-bearer assertions (RFC 7523) and PKCE
// verifiers (RFC 7636), and the Google-style ID tokens it issues: written
// with the standard library only, independently of the code under test.

package oauthtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"math/big"
	"net/url"
	"strings"
)

// verifiedAssertion is the last JWT-bearer assertion a TokenEndpoint
// verified, with its request's form.
type verifiedAssertion struct {
	header, claims map[string]any
	form           url.Values
}

// Trust makes the endpoint verify the signature of every JWT-bearer
// assertion against keys, replacing those trusted before: keys maps a key
// ID to an RSA or ECDSA public key (RS256, ES256, ES384, ES512). An
// assertion is checked against the key of its kid header, or against every
// key when it has none. Refused ones get 400 invalid_grant with Google's
// ErrDescInvalidSignature. Until Trust is called, any assertion is accepted.
func (e *TokenEndpoint) Trust(keys map[string]crypto.PublicKey) {
	e.mu.Lock()
	e.trusted = maps.Clone(keys)
	if e.trusted == nil {
		e.trusted = map[string]crypto.PublicKey{}
	}
	e.mu.Unlock()
}

// LastAssertion is the header and claims of the last assertion the
// endpoint verified (see Trust), and its request's form.
func (e *TokenEndpoint) LastAssertion() (header, claims map[string]any, form url.Values) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.assertion.header, e.assertion.claims, e.assertion.form
}

// idToken is the ID token Google issues for an assertion with a
// target_audience: a JWT (with a signature nobody checks; the plugin reads
// only its exp) for that audience, about the assertion's issuer.
func (e *TokenEndpoint) idToken(audience string, claims map[string]any) string {
	now := e.opts.Now()
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": "google-1"})
	c, _ := json.Marshal(map[string]any{
		"aud": audience, "iss": "https://accounts.google.com", "sub": claims["iss"],
		"exp": now.Add(e.opts.IDTokenLifetime).Unix(), "iat": now.Unix(),
	})
	enc := base64.RawURLEncoding.EncodeToString
	return enc(h) + "." + enc(c) + "." + enc([]byte("signature"))
}

// pkceMatches reports whether verifier's S256 challenge is challenge ("" =
// no PKCE: any verifier).
func pkceMatches(challenge, verifier string) bool {
	if challenge == "" {
		return true
	}
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:]) == challenge
}

// verifyAssertion checks a compact JWS with crypto/rsa and crypto/ecdsa.
func verifyAssertion(token string, trusted map[string]crypto.PublicKey) (verifiedAssertion, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return verifiedAssertion{}, errors.New("not a compact JWS")
	}
	var header, claims map[string]any
	for i, dst := range []*map[string]any{&header, &claims} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return verifiedAssertion{}, err
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return verifiedAssertion{}, err
		}
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return verifiedAssertion{}, err
	}
	input := []byte(parts[0] + "." + parts[1])
	var candidates []crypto.PublicKey
	if kid, ok := header["kid"].(string); ok {
		if k := trusted[kid]; k != nil {
			candidates = append(candidates, k)
		}
	} else {
		for _, k := range trusted {
			candidates = append(candidates, k)
		}
	}
	alg, _ := header["alg"].(string)
	for _, pub := range candidates {
		if verifySig(alg, pub, input, sig) {
			return verifiedAssertion{header: header, claims: claims}, nil
		}
	}
	return verifiedAssertion{}, errors.New("signature not verified")
}

func verifySig(alg string, pub crypto.PublicKey, input, sig []byte) bool {
	switch alg {
	case "RS256":
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return false
		}
		sum := sha256.Sum256(input)
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, sum[:], sig) == nil
	case "ES256", "ES384", "ES512":
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return false
		}
		var digest []byte
		switch alg {
		case "ES256":
			s := sha256.Sum256(input)
			digest = s[:]
		case "ES384":
			s := sha512.Sum384(input)
			digest = s[:]
		default:
			s := sha512.Sum512(input)
			digest = s[:]
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return false
		}
		r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		return ecdsa.Verify(k, digest, r, s)
	}
	return false
}
