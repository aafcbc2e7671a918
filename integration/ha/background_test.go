package ha

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Background refresh runs from Vault's PeriodicFunc, which Vault calls (about
// once a minute) on the active node only: standbys run no plugin process at
// all. With one-minute tokens and a handle read once, each tick refreshes it
// once; the provider must count exactly the refreshes the plugin recorded,
// at most one per tick, and never a reused refresh token (two nodes
// refreshing from the same stored token would trip reuse detection).
//
// This test waits through two periodic ticks (about two minutes); it runs in
// parallel with the other tests.
func testBackgroundRefreshOnlyOnActive(t *testing.T, e *env) {
	require.NoError(t, e.idp.SetTTL(time.Minute, 0))
	active := e.active()
	standbys := e.c.Standbys()
	require.Len(t, standbys, 2)

	e.bindRotating(standbys[0], "bg", e.idp.TokenURL)
	e.mustToken(standbys[1], "bg", 0) // the one read: the handle is now "recently read"
	start := time.Now()
	require.Equal(t, 1, e.refreshes())

	// Only the active node runs the plugin.
	pids, err := e.c.PluginPIDs(active)
	require.NoError(t, err)
	require.NotEmpty(t, pids, "the active node runs the plugin")
	for _, s := range standbys {
		pids, err := e.c.PluginPIDs(s)
		require.NoError(t, err)
		require.Empty(t, pids, "standby %s runs no plugin process", s)
	}

	// Watch the refreshes the plugin records (binding reads never refresh).
	seen := map[any]bool{e.status(standbys[0], "bg")["last_refresh_at"]: true}
	eventually(t, 4*time.Minute, "two background refreshes", func() bool {
		seen[e.status(standbys[0], "bg")["last_refresh_at"]] = true
		return len(seen) >= 3
	})
	elapsed := time.Since(start)
	got := e.refreshes()
	t.Logf("%d refreshes at the provider, %d recorded by the plugin, in %s", got, len(seen), elapsed.Round(time.Second))
	require.Equal(t, len(seen), got, "every refresh at the provider is one the plugin recorded")
	require.LessOrEqual(t, got-1, int(elapsed/time.Minute)+1, "at most one background refresh per periodic tick")
	e.requireNoReuse()

	// The background refresh kept the token fresh: reading it needs no
	// upstream request.
	e.mustToken(standbys[1], "bg", 0)
	require.Equal(t, got, e.refreshes())
	require.Equal(t, "ok", e.status(active, "bg")["health"])
}
