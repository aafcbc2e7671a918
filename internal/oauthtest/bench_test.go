package oauthtest_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
)

// BenchmarkRefreshGrant measures refresh_token grants/s against the node
// server (direct POSTs, keep-alive, GOMAXPROCS parallel clients).
//
//	go test -run '^$' -bench RefreshGrant -benchtime 3s ./internal/oauthtest/
func BenchmarkRefreshGrant(b *testing.B) {
	for _, scope := range []string{"offline_access api", "openid offline_access api"} {
		b.Run(strings.ReplaceAll(scope, " ", "+"), func(b *testing.B) {
			srv := oauthtest.Start(b)
			rt, err := srv.MintRefreshToken(oauthtest.ClientRTBasic, scope)
			if err != nil {
				b.Fatal(err)
			}
			body := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}.Encode()
			tr := &http.Transport{MaxIdleConnsPerHost: 64}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr}
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodPost, srv.TokenURL, strings.NewReader(body))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.SetBasicAuth(oauthtest.ClientRTBasic, oauthtest.SecretRTBasic)
					resp, err := c.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("status %s", resp.Status)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "grants/s")
			b.StopTimer()
			if st, err := srv.Stats(); err == nil && st.Errors["invalid_grant"] != 0 {
				b.Errorf("invalid_grant errors: %v", st.Errors)
			}
		})
	}
}
