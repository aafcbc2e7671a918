// Command oauthtest-server runs the OAuth2 server the tests use (panva's
// oidc-provider from testdata/oauth-server, through internal/oauthtest) on
// loopback by itself, for scripts/dev.sh. It writes what a binding needs
// into a directory, one value per file (no trailing newline, mode 0600):
//
//	token_url, authorization_url, device_authorization_url, device_url,
//	client_id, client_secret
//
// and, for the rt-* clients (which are not for connecting), a refresh token
// it minted, refresh_token; last a file named ready. A connect client
// (connect-rotate, the default, or connect-basic, connect-post) gets no
// refresh token here: connect the binding through the plugin and approve
// with oauthtest-approve. It runs until SIGTERM or SIGINT, or until the
// process that started it exits, then writes stats (key=value lines:
// refresh_grants, refresh_grants_ok, code_grants_ok, device_grants_ok,
// refresh_token_reuse_detected) and stops the server. The client secrets are
// the test-only constants of internal/oauthtest; every token belongs to a
// throwaway server.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
)

var secrets = map[string]string{
	oauthtest.ClientRTBasic:       oauthtest.SecretRTBasic,
	oauthtest.ClientRTPost:        oauthtest.SecretRTPost,
	oauthtest.ClientRTRotate:      oauthtest.SecretRTRotate,
	oauthtest.ClientConnect:       oauthtest.SecretConnect,
	oauthtest.ClientConnectPost:   oauthtest.SecretConnectPost,
	oauthtest.ClientConnectRotate: oauthtest.SecretConnectRotate,
}

// minted are the clients that get a refresh token minted here.
var minted = map[string]bool{oauthtest.ClientRTBasic: true, oauthtest.ClientRTPost: true, oauthtest.ClientRTRotate: true}

func main() {
	dir := flag.String("dir", "", "directory to write token_url, authorization_url, client_id, client_secret, ..., ready and stats into (required)")
	client := flag.String("client", oauthtest.ClientConnectRotate, "test client: connect-rotate (for connecting; refresh token rotated on every use), connect-basic, connect-post; or rt-rotate, rt-basic, rt-post (a refresh token is minted)")
	serverDir := flag.String("server-dir", "", "the testdata/oauth-server directory (default: found from the working directory's module root)")
	accessTTL := flag.Duration("access-ttl", 0, "lifetime of the access tokens it issues (default: the server's, 1h)")
	flag.Parse()
	if err := run(*dir, *client, *serverDir, *accessTTL); err != nil {
		fmt.Fprintf(os.Stderr, "oauthtest-server: %v\n", err)
		os.Exit(1)
	}
}

func run(dir, client, serverDir string, accessTTL time.Duration) error {
	secret, ok := secrets[client]
	switch {
	case dir == "":
		return errors.New("-dir is required")
	case !ok:
		return fmt.Errorf("-client %q: want connect-rotate, connect-basic, connect-post, rt-rotate, rt-basic or rt-post", client)
	}
	parent := os.Getppid()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // npm ci on a cold machine
	srv, err := oauthtest.StartProcess(ctx, serverDir)
	cancel()
	if err != nil {
		return err
	}
	defer srv.Close()
	if accessTTL > 0 {
		if err := srv.SetTTL(accessTTL, 0); err != nil {
			return err
		}
	}
	files := []struct{ name, value string }{
		{"token_url", srv.TokenURL}, {"authorization_url", srv.AuthorizationURL},
		{"device_authorization_url", srv.DeviceAuthorizationURL}, {"device_url", srv.DeviceURL},
		{"client_id", client}, {"client_secret", secret},
	}
	if minted[client] {
		rt, err := srv.MintRefreshToken(client, "")
		if err != nil {
			return err
		}
		files = append(files, struct{ name, value string }{"refresh_token", rt})
	}
	for _, f := range append(files, struct{ name, value string }{"ready", srv.Issuer}) {
		if err := os.WriteFile(filepath.Join(dir, f.name), []byte(f.value), 0o600); err != nil {
			return err
		}
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for stop := false; !stop; {
		select {
		case <-sig:
			stop = true
		case <-tick.C:
			stop = os.Getppid() != parent // the script that started us is gone
		}
	}
	st, err := srv.Stats()
	if err != nil {
		return err
	}
	stats := fmt.Sprintf("refresh_grants=%d\nrefresh_grants_ok=%d\ncode_grants_ok=%d\ndevice_grants_ok=%d\nrefresh_token_reuse_detected=%d\n",
		st.TokenRequests[oauthtest.GrantRefreshToken], st.TokenSuccess[oauthtest.GrantRefreshToken],
		st.TokenSuccess[oauthtest.GrantAuthorizationCode], st.TokenSuccess[oauthtest.GrantDeviceCode], st.RefreshTokenReuseDetected)
	if err := os.WriteFile(filepath.Join(dir, "stats"), []byte(stats), 0o600); err != nil {
		return err
	}
	return srv.Close()
}
