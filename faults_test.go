package flowcred

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// faultsIdP is a token endpoint that accepts any refresh token and any
// JWT-bearer assertion and issues numbered access tokens for an hour.
type faultsIdP struct {
	*httptest.Server
	seq atomic.Int64
}

func newFaultsIdP(t *testing.T, connState func(net.Conn, http.ConnState)) *faultsIdP {
	t.Helper()
	f := &faultsIdP{}
	f.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		switch r.PostForm.Get("grant_type") {
		case "refresh_token", jwtBearerGrantType:
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"unsupported_grant_type"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]interface{}{
			"access_token": fmt.Sprintf("faults-at-%d-SECRET", f.seq.Add(1)),
			"token_type":   "Bearer",
			"expires_in":   3600,
		})
	}))
	f.Config.ConnState = connState
	f.Start()
	t.Cleanup(f.Close)
	return f
}

// clean (unmount, plugin reload) and the goroutine check above rely on
// closing the upstream client's idle connections.
func TestFaults_CloseIdleConnectionsReachesTransport(t *testing.T) {
	var mu sync.Mutex
	states := map[net.Conn]http.ConnState{}
	idp := newFaultsIdP(t, func(c net.Conn, s http.ConnState) {
		mu.Lock()
		states[c] = s
		mu.Unlock()
	})
	b := getTestBackend(t, nil)
	b.write(t, "bindings/idle", map[string]interface{}{"kind": "oauth2.refresh_token", "client_id": "c",
		"refresh_token": testRefreshToken, "token_url": idp.URL + "/token"})
	b.read(t, "token/idle", nil)
	open := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, s := range states {
			if s != http.StateClosed && s != http.StateHijacked {
				n++
			}
		}
		return n
	}
	require.Equal(t, 1, open(), "one keep-alive connection to the provider")
	b.httpClient.CloseIdleConnections()
	deadline := time.Now().Add(10 * time.Second)
	for open() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the idle connection to the provider is still open after CloseIdleConnections")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
