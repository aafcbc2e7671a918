package flowcred

import (
	"context"
	"fmt"

	"github.com/hashicorp/vault/sdk/logical"
)

// getJSON decodes the entry at key into a new T; nil, nil when there is
// none. what names the entry in errors (`binding "crm"`).
func getJSON[T any](ctx context.Context, s logical.Storage, key, what string) (*T, error) {
	entry, err := s.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	if entry == nil {
		return nil, nil
	}
	v := new(T)
	if err := entry.DecodeJSON(v); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", what, err)
	}
	return v, nil
}

// putJSON stores v at key as JSON.
func putJSON(ctx context.Context, s logical.Storage, key, what string, v interface{}) error {
	entry, err := logical.StorageEntryJSON(key, v)
	if err != nil {
		return err
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("writing %s: %w", what, err)
	}
	return nil
}
