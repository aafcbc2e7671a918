package flowcred

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// Secret fingerprints (design.md, "Names and answers fixed for v0.2"): a
// secret read answers fingerprint, the HMAC-SHA256 of the value under a
// per-mount key, so that a deploy tool can tell whether a value it holds is
// the stored one without reading the value. The key is random, made once
// per mount, and never leaves storage: it is stored under secrets/, which
// is seal-wrapped (backend.go, PathsSpecial.SealWrapStorage), at a key no
// secret can have (a secret name has no "/"), and secret lists skip it.

// fingerprintKeyStorageKey holds the mount's fingerprint key.
const fingerprintKeyStorageKey = secretStoragePrefix + "_flowcred/fingerprint_key"

// fingerprintKeyEntry is the stored key.
type fingerprintKeyEntry struct {
	// Key is 32 random bytes. Never returned, logged or put in an error.
	Key []byte `json:"key"`
	// CreatedAt is when the key was made.
	CreatedAt time.Time `json:"created_at"`
}

// fingerprintKeyMu serialises making the key on this node, so that two
// first reads cannot each store a key of their own. It is held only while
// the key does not exist yet.
var fingerprintKeyMu sync.Mutex

// fingerprintKey returns the mount's fingerprint key, making and storing it
// on first use. On a node whose storage is read-only it answers
// logical.ErrReadOnly, which makes Vault forward the request to the node
// that can write.
func fingerprintKey(ctx context.Context, s logical.Storage) ([]byte, error) {
	e, err := getJSON[fingerprintKeyEntry](ctx, s, fingerprintKeyStorageKey, "the fingerprint key")
	if err != nil || (e != nil && len(e.Key) > 0) {
		if err != nil {
			return nil, err
		}
		return e.Key, nil
	}
	fingerprintKeyMu.Lock()
	defer fingerprintKeyMu.Unlock()
	e, err = getJSON[fingerprintKeyEntry](ctx, s, fingerprintKeyStorageKey, "the fingerprint key")
	if err != nil {
		return nil, err
	}
	if e != nil && len(e.Key) > 0 {
		return e.Key, nil
	}
	e = &fingerprintKeyEntry{Key: make([]byte, 32), CreatedAt: time.Now().UTC()}
	_, _ = rand.Read(e.Key) // crypto/rand.Read never fails (Go 1.24+)
	if err := putJSON(ctx, s, fingerprintKeyStorageKey, "the fingerprint key", e); err != nil {
		if errors.Is(err, logical.ErrReadOnly) {
			return nil, logical.ErrReadOnly
		}
		return nil, fmt.Errorf("storing the fingerprint key: %w", err)
	}
	return e.Key, nil
}

// fingerprintOf is the hex HMAC-SHA256 of value under key.
func fingerprintOf(key []byte, value string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(value))
	return hex.EncodeToString(m.Sum(nil))
}
