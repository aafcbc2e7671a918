package flowcred

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
)

// gatedStorage holds writes of token states until released.
type gatedStorage struct {
	logical.Storage
	entered chan struct{}
	release chan struct{}
}

func (g *gatedStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	if strings.HasPrefix(e.Key, tokenStoragePrefix) {
		g.entered <- struct{}{}
		<-g.release
	}
	return g.Storage.Put(ctx, e)
}

// gatedRead forces a refresh of crm with its token-state write held, and
// reports whether the read answered while the write was still held.
func gatedRead(t *testing.T, rotate bool) (answeredEarly bool) {
	b := getTestBackend(t, nil)
	idp := newFakeIdP(t, oauthtest.TokenOptions{Rotate: rotate})
	b.write(t, "config", map[string]interface{}{"min_refresh_interval": 0})
	bindRefresh(t, b, "crm", idp.TokenURL())
	b.read(t, "token/crm", nil)

	g := &gatedStorage{Storage: b.s, entered: make(chan struct{}, 1), release: make(chan struct{})}
	b.s = g
	answered := make(chan *logical.Response, 1)
	go func() {
		resp, err := b.do(t, logical.ReadOperation, "token/crm", map[string]interface{}{"min_ttl": 7200})
		if err != nil {
			t.Error(err)
		}
		answered <- resp
	}()
	<-g.entered // the refresh is writing its state
	// Waiting long for the answer we expect, briefly for the one we do
	// not: a loaded machine slows the first down, never produces the second.
	wait := 500 * time.Millisecond
	if !rotate {
		wait = 30 * time.Second
	}
	select {
	case <-answered:
		answeredEarly = true
	case <-time.After(wait):
	}
	close(g.release)
	if !answeredEarly {
		resp := <-answered
		require.False(t, resp.IsError())
	}
	// The state is stored either way.
	waitFor(t, "the token state is stored", func() bool {
		st, err := getTokenState(context.Background(), b.s, "crm")
		return err == nil && st != nil && st.Generation > 0 && st.Status.LastRefreshAt.After(time.Time{})
	})
	return answeredEarly
}

// A refresh that did not rotate answers before its state write (issue 14,
// refresh overhead); one that rotated waits until the new refresh token is
// durable.
func TestCommit_AnswerBeforeWriteOnlyWithoutRotation(t *testing.T) {
	require.True(t, gatedRead(t, false), "a refresh without rotation waited for its state write")
	require.False(t, gatedRead(t, true), "a rotated refresh token was handed out before it was stored")
}
