package flowcred

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/vault/sdk/logical"
)

// newBindingID returns a random binding ID (128 bits).
func newBindingID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// missingSecrets lists "secret <name> (field <f>)" for each reference whose
// secret is not stored.
func missingSecrets(ctx context.Context, s logical.Storage, e *bindingEntry) ([]string, error) {
	fields := make([]string, 0, len(e.Refs))
	for f := range e.Refs {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	var out []string
	for _, f := range fields {
		sec, err := getSecret(ctx, s, e.Refs[f])
		if err != nil {
			return nil, err
		}
		if sec == nil {
			out = append(out, fmt.Sprintf("secret %q (field %s)", e.Refs[f], f+secretRefSuffix))
		}
	}
	return out, nil
}

// bindingWriteWarnings are the warnings of a binding write: referenced
// secrets that do not exist yet, and a refresh_token secret that other
// bindings reference too.
func (b *backend) bindingWriteWarnings(ctx context.Context, s logical.Storage, handle string, e *bindingEntry) (*logical.Response, error) {
	missing, err := missingSecrets(ctx, s, e)
	if err != nil {
		return nil, err
	}
	sharing, err := bindingsSharingRefreshSecret(ctx, s, handle, e)
	if err != nil {
		return nil, err
	}
	if len(missing) == 0 && len(sharing) == 0 {
		return nil, nil
	}
	resp := &logical.Response{}
	for _, m := range missing {
		resp.AddWarning(m + " does not exist yet; write it before reading token/" + handle)
	}
	if len(sharing) > 0 {
		resp.AddWarning(sharedRefreshTokenDetail(handle, e, sharing))
	}
	return resp, nil
}

// bindingsSharingRefreshSecret lists the other bindings whose refresh_token
// references the same secret as e's. It reads every binding, so it runs
// only for bindings that reference a refresh_token secret.
func bindingsSharingRefreshSecret(ctx context.Context, s logical.Storage, handle string, e *bindingEntry) ([]string, error) {
	name := e.Refs["refresh_token"]
	if name == "" {
		return nil, nil
	}
	handles, err := s.List(ctx, bindingStoragePrefix)
	if err != nil {
		return nil, fmt.Errorf("listing bindings: %w", err)
	}
	var out []string
	for _, h := range handles {
		if h == handle || strings.HasSuffix(h, "/") {
			continue
		}
		other, err := getBinding(ctx, s, h)
		if err != nil {
			return nil, err
		}
		if other != nil && other.Refs["refresh_token"] == name {
			out = append(out, h)
		}
	}
	sort.Strings(out)
	return out, nil
}

// sharedRefreshTokenDetail explains why one refresh token must not back two
// bindings: on a provider that rotates, each refresh spends the token the
// other binding still holds.
func sharedRefreshTokenDetail(handle string, e *bindingEntry, others []string) string {
	quoted := make([]string, len(others))
	for i, h := range others {
		quoted[i] = fmt.Sprintf("%q", h)
	}
	return fmt.Sprintf("handle %q references refresh_token secret %q, which binding %s also references; "+
		"with a provider that rotates refresh tokens, each refresh spends the token the other binding holds "+
		"(it then needs re-authorization): give each binding its own refresh token",
		handle, e.Refs["refresh_token"], strings.Join(quoted, ", "))
}
