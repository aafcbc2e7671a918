//go:build !unix

package oauthtest

import "context"

// lockFile is a no-op where flock is unavailable; concurrent npm ci runs are
// then not serialized.
func lockFile(ctx context.Context, path string) (func(), error) {
	return func() {}, nil
}
