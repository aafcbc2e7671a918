package flowcred

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

var fingerprintRe = regexp.MustCompile(`^[0-9a-f]{64}$`)

func TestSecretRead_Fingerprint(t *testing.T) {
	b := getTestBackend(t, nil)
	b.write(t, "secrets/a", map[string]interface{}{"value": testClientSecret})
	b.write(t, "secrets/b", map[string]interface{}{"value": testClientSecret})
	b.write(t, "secrets/c", map[string]interface{}{"value": testRefreshToken})

	fa := b.read(t, "secrets/a", nil).Data["fingerprint"].(string)
	require.Regexp(t, fingerprintRe, fa)
	require.Equal(t, fa, b.read(t, "secrets/b", nil).Data["fingerprint"], "equal values, equal fingerprints")
	require.NotEqual(t, fa, b.read(t, "secrets/c", nil).Data["fingerprint"])
	plain := sha256.Sum256([]byte(testClientSecret))
	require.NotEqual(t, hex.EncodeToString(plain[:]), fa, "the fingerprint is keyed, not a plain hash")
	assertNoSecrets(t, b.read(t, "secrets/a", nil))

	// The key is made once, stored under a seal-wrapped prefix, and never
	// listed as a secret.
	key := findFingerprintKey(t, b)
	wrapped := false
	for _, p := range b.Backend.PathsSpecial.SealWrapStorage {
		if strings.HasSuffix(p, "/") && strings.HasPrefix(key, p) || key == p {
			wrapped = true
		}
	}
	require.True(t, wrapped, "fingerprint key %q is not seal-wrapped (%v)", key, b.Backend.PathsSpecial.SealWrapStorage)
	entry, err := b.s.Get(t.Context(), key)
	require.NoError(t, err)
	b.write(t, "secrets/a", map[string]interface{}{"value": "changed-" + testClientSecret})
	require.NotEqual(t, fa, b.read(t, "secrets/a", nil).Data["fingerprint"])
	again, err := b.s.Get(t.Context(), key)
	require.NoError(t, err)
	require.Equal(t, entry.Value, again.Value, "the key changed")
	list, err := b.do(t, logical.ListOperation, "secrets/", nil)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b", "c"}, list.Data["keys"])

	// A different mount has a different key.
	other := getTestBackend(t, nil)
	other.write(t, "secrets/a", map[string]interface{}{"value": testClientSecret})
	require.NotEqual(t, fa, other.read(t, "secrets/a", nil).Data["fingerprint"])
}

// A read on a node that cannot write the key asks to be forwarded.
func TestSecretRead_FingerprintKeyOnReadOnlyNode(t *testing.T) {
	b := getTestBackend(t, nil)
	b.write(t, "secrets/a", map[string]interface{}{"value": testClientSecret})
	ro := &readOnlyStorage{Storage: b.s}
	_, err := b.HandleRequest(t.Context(), &logical.Request{Operation: logical.ReadOperation, Path: "secrets/a", Storage: ro})
	require.ErrorIs(t, err, logical.ErrReadOnly)
}

func TestSecretWrite_DryRunAndUnchanged(t *testing.T) {
	b := getTestBackend(t, nil)
	resp := b.write(t, "secrets/a", map[string]interface{}{"value": testClientSecret, "dry_run": true})
	require.Equal(t, "create", resp.Data["operation"])
	require.Equal(t, true, resp.Data["dry_run"])
	fp := resp.Data["fingerprint"].(string)
	require.Regexp(t, fingerprintRe, fp)
	assertNoSecrets(t, resp)
	r, err := b.do(t, logical.ReadOperation, "secrets/a", nil)
	require.NoError(t, err)
	require.Nil(t, r, "a dry run stored the secret")

	b.write(t, "secrets/a", map[string]interface{}{"value": testClientSecret})
	require.Equal(t, fp, b.read(t, "secrets/a", nil).Data["fingerprint"])
	before := storageSnapshot(t, b)
	resp = b.write(t, "secrets/a", map[string]interface{}{"value": testClientSecret, "dry_run": true})
	require.Equal(t, "unchanged", resp.Data["operation"])
	require.Equal(t, fp, resp.Data["fingerprint"])
	resp = b.write(t, "secrets/a", map[string]interface{}{"value": "other-" + testClientSecret, "dry_run": true})
	require.Equal(t, "update", resp.Data["operation"])
	require.NotEqual(t, fp, resp.Data["fingerprint"])
	require.Equal(t, before, storageSnapshot(t, b), "a dry run changed storage")

	// A write of the same value stores nothing (updated_at stays).
	b.write(t, "secrets/a", map[string]interface{}{"value": testClientSecret})
	require.Equal(t, before, storageSnapshot(t, b), "an unchanged secret write changed storage")

	// Bad input is refused naming the field, dry run or not.
	for _, data := range []map[string]interface{}{{"dry_run": true}, {"value": "", "dry_run": true}, {"value": "x", "dry_run": true, "valu": "y"}} {
		resp, err := b.do(t, logical.UpdateOperation, "secrets/a", data)
		require.NoError(t, err)
		require.True(t, resp.IsError(), "%v accepted", data)
	}
	require.Equal(t, before, storageSnapshot(t, b))
}

// findFingerprintKey returns the storage key of the mount's fingerprint key:
// the only entry that is neither a binding, a secret nor a token state.
func findFingerprintKey(t *testing.T, b *testBackend) string {
	t.Helper()
	var found []string
	for k := range storageSnapshot(t, b) {
		rest := k
		for _, p := range []string{bindingStoragePrefix, secretStoragePrefix, tokenStoragePrefix} {
			rest = strings.TrimPrefix(rest, p)
		}
		if k != configStorageKey && (rest == k || strings.Contains(rest, "/")) {
			found = append(found, k)
		}
	}
	require.Len(t, found, 1, "storage keys that are not bindings, secrets or token states: %v", found)
	return found[0]
}

// readOnlyStorage refuses writes as a performance standby's storage does.
type readOnlyStorage struct{ logical.Storage }

func (readOnlyStorage) Put(context.Context, *logical.StorageEntry) error {
	return logical.ErrReadOnly
}
