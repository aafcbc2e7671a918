package flowcred

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// Private keys for JWT assertions (grant_jwt_bearer.go,
// grant_google_service_account.go).

// minRSAKeyBits is the smallest RSA key RS256 allows (RFC 7518, 3.3).
const minRSAKeyBits = 2048

// signingKey is a parsed private key and the JWS algorithm it signs with.
type signingKey struct {
	key crypto.Signer
	alg jose.SignatureAlgorithm
	// desc names the key type for messages, e.g. "an EC P-256 key".
	desc string
}

// oidDSA identifies DSA keys in PKCS#8, which crypto/x509 does not parse.
const oidDSA = "1.2.840.10040.4.1"

// parsePrivateKey reads a PEM private key: PKCS#1 (RSA), SEC1 (EC) or PKCS#8
// (RSA or EC), whatever the PEM label says. RSA keys sign RS256; EC keys
// sign ES256, ES384 or ES512 according to their curve. Errors are phrases
// without a subject ("not a PEM private key") and never contain key
// material: callers prefix the field they came from.
func parsePrivateKey(text string) (*signingKey, error) {
	block, _ := pem.Decode([]byte(strings.TrimSpace(text)))
	if block == nil && strings.Contains(text, `\n`) {
		// A key copied out of a JSON key file keeps its escaped newlines.
		block, _ = pem.Decode([]byte(strings.ReplaceAll(strings.TrimSpace(text), `\n`, "\n")))
	}
	if block == nil {
		return nil, errors.New("not a PEM private key (expected a -----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY block)")
	}
	if block.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED") {
		return nil, errors.New("an encrypted private key; store it unencrypted (e.g. openssl pkcs8 -topk8 -nocrypt)")
	}
	switch block.Type {
	case "RSA PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY":
	case "DSA PRIVATE KEY":
		return nil, errors.New("a DSA key, which JWT assertions cannot use; use an RSA or EC (P-256, P-384, P-521) key")
	case "OPENSSH PRIVATE KEY":
		return nil, errors.New("an OpenSSH private key; convert it to PKCS#8 PEM (ssh-keygen -p -m PKCS8 -f FILE) or use a PEM RSA or EC key")
	default:
		if strings.Contains(block.Type, "PRIVATE KEY") {
			return nil, fmt.Errorf("a PEM %q block, which flowcred cannot read; use PKCS#8 (BEGIN PRIVATE KEY), PKCS#1 (BEGIN RSA PRIVATE KEY) or SEC1 (BEGIN EC PRIVATE KEY)", truncateForMessage(block.Type))
		}
		return nil, fmt.Errorf("a PEM %q block, not a private key", truncateForMessage(block.Type))
	}

	// Try every encoding: labels are often wrong (a PKCS#8 key labelled
	// RSA PRIVATE KEY is common).
	var key interface{}
	key, err8 := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err8 != nil {
		var err error
		if key, err = x509.ParsePKCS1PrivateKey(block.Bytes); err != nil {
			if key, err = x509.ParseECPrivateKey(block.Bytes); err != nil {
				key = nil
			}
		}
	}
	if key == nil {
		// x509's messages name algorithms and ASN.1 tags, never key bytes,
		// but only the algorithm is worth passing on.
		if strings.Contains(err8.Error(), oidDSA) {
			return nil, errors.New("a DSA key, which JWT assertions cannot use; use an RSA or EC (P-256, P-384, P-521) key")
		}
		if strings.Contains(err8.Error(), "unknown algorithm") {
			return nil, errors.New("a private key of an algorithm flowcred cannot sign with; use an RSA or EC (P-256, P-384, P-521) key")
		}
		return nil, fmt.Errorf("a PEM %q block whose content is not a valid private key", truncateForMessage(block.Type))
	}

	switch k := key.(type) {
	case *rsa.PrivateKey:
		if bits := k.N.BitLen(); bits < minRSAKeyBits {
			return nil, fmt.Errorf("a %d-bit RSA key; RS256 needs at least %d bits", bits, minRSAKeyBits)
		}
		return &signingKey{key: k, alg: jose.RS256, desc: fmt.Sprintf("an RSA %d-bit key", k.N.BitLen())}, nil
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return &signingKey{key: k, alg: jose.ES256, desc: "an EC P-256 key"}, nil
		case elliptic.P384():
			return &signingKey{key: k, alg: jose.ES384, desc: "an EC P-384 key"}, nil
		case elliptic.P521():
			return &signingKey{key: k, alg: jose.ES512, desc: "an EC P-521 key"}, nil
		}
		return nil, fmt.Errorf("an EC key on curve %s; use P-256, P-384 or P-521", k.Curve.Params().Name)
	case ed25519.PrivateKey:
		return nil, errors.New("an Ed25519 key, which flowcred does not sign with; use an RSA or EC (P-256, P-384, P-521) key")
	case *ecdh.PrivateKey:
		return nil, errors.New("an X25519 key, which cannot sign; use an RSA or EC (P-256, P-384, P-521) key")
	}
	return nil, fmt.Errorf("a %T, which flowcred cannot sign with; use an RSA or EC key", key)
}
