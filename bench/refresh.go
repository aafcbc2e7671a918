package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/oauth2"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
)

// targetOverhead is the bound on what a refreshing read adds to the
// provider's own token latency.
const targetOverhead = 1500 * time.Microsecond

// Refresh measures single flight (concurrent readers of an expired handle
// cause one upstream request) and the overhead of a read that refreshes.
func (e *Env) Refresh(ctx context.Context) error {
	// Background refresh could renew the short-lived token between the
	// set-up and the readers; switch it off for these measurements. The
	// overhead case forces each refresh with min_ttl, so min_refresh_interval
	// is 0 meanwhile.
	if err := e.write(ctx, e.Reader.Client, "flowcred/config", map[string]interface{}{"background_refresh": false, "min_refresh_interval": 0}); err != nil {
		return err
	}
	defer func() {
		_ = e.write(ctx, e.Reader.Client, "flowcred/config", map[string]interface{}{"background_refresh": true, "min_refresh_interval": 10})
	}()
	if err := e.singleFlight(ctx); err != nil {
		return err
	}
	return e.refreshOverhead(ctx)
}

func (e *Env) bindRT(ctx context.Context, handle string) (string, error) {
	rt, err := e.OAuth.MintRefreshToken(oauthtest.ClientRTBasic, "")
	if err != nil {
		return "", err
	}
	return rt, e.write(ctx, e.Reader.Client, "flowcred/bindings/"+handle, map[string]interface{}{
		"kind": "oauth2.refresh_token", "client_id": oauthtest.ClientRTBasic,
		"client_secret": oauthtest.SecretRTBasic, "refresh_token": rt,
		"token_url": e.OAuth.TokenURL, "auth_style": "header",
	})
}

func (e *Env) singleFlight(ctx context.Context) error {
	const handle = "single_flight"
	if _, err := e.bindRT(ctx, handle); err != nil {
		return err
	}
	readers := e.Cfg.Readers
	client := HTTPClient(readers)
	r := &Reader{Client: client, Addr: e.V.Addr, Token: e.V.Token}
	// Open the connections first, so the measured round is not a connect storm.
	if res := Run(ctx, readers, readers, time.Minute, func(ctx context.Context, _ int) error {
		return r.Get(ctx, "flowcred/token/"+handle)
	}); res.Errors > 0 {
		return res.FirstErr
	}
	var counts []string
	worst := 0
	var lat []time.Duration
	for round := 0; round < e.Cfg.RefreshRounds; round++ {
		// A 2 s token, then the provider's default again; wait until it expired.
		if err := e.OAuth.SetTTL(2*time.Second, 0); err != nil {
			return err
		}
		if err := e.write(ctx, e.Reader.Client, "flowcred/bindings/"+handle+"/refresh", nil); err != nil {
			return err
		}
		if err := e.OAuth.SetTTL(time.Hour, 0); err != nil {
			return err
		}
		time.Sleep(2200 * time.Millisecond)
		if err := e.OAuth.ResetStats(); err != nil {
			return err
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		var firstErr error
		for i := 0; i < readers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				t0 := time.Now()
				err := r.Get(ctx, "flowcred/token/"+handle)
				el := time.Since(t0)
				mu.Lock()
				defer mu.Unlock()
				lat = append(lat, el)
				if err != nil && firstErr == nil {
					firstErr = err
				}
			}()
		}
		close(start)
		wg.Wait()
		if firstErr != nil {
			return fmt.Errorf("a reader of the expired handle failed: %w", firstErr)
		}
		st, err := e.OAuth.Stats()
		if err != nil {
			return err
		}
		n := st.TokenRequests[oauthtest.GrantRefreshToken]
		counts = append(counts, fmt.Sprint(n))
		worst = max(worst, n)
	}
	e.Table.Add(Row{
		Area: "refresh", Storage: e.V.Storage,
		Case:    fmt.Sprintf("%d concurrent readers of an expired handle", readers),
		Result:  fmt.Sprintf("upstream token requests per round: %s; reader p50 %s, max %s", strings.Join(counts, ","), ms(Median(lat)), ms(maxDur(lat))),
		Verdict: fmt.Sprintf("target exactly 1 per round: %s", verdict(worst == 1 && !strings.Contains(strings.Join(counts, ","), "0"))),
	})
	return nil
}

// refreshOverhead interleaves three timed calls, many times: a read that
// must refresh (min_ttl above the token's lifetime), the same refresh-token
// grant made directly with a Go client, and a cached read.
func (e *Env) refreshOverhead(ctx context.Context) error {
	const handle = "refresh_overhead"
	rt, err := e.bindRT(ctx, handle)
	if err != nil {
		return err
	}
	direct := &oauth2.Config{
		ClientID: oauthtest.ClientRTBasic, ClientSecret: oauthtest.SecretRTBasic,
		Endpoint: oauth2.Endpoint{TokenURL: e.OAuth.TokenURL, AuthStyle: oauth2.AuthStyleInHeader},
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}, Timeout: 30 * time.Second}
	dctx := context.WithValue(ctx, oauth2.HTTPClient, hc)
	grant := func() error {
		_, err := direct.TokenSource(dctx, &oauth2.Token{RefreshToken: rt, Expiry: time.Unix(1, 0)}).Token()
		return err
	}
	forced := "flowcred/token/" + handle + "?min_ttl=7200"
	cached := "flowcred/token/" + handle
	ops := []func() error{
		func() error { return e.Reader.Get(ctx, forced) },
		grant,
		func() error { return e.Reader.Get(ctx, cached) },
	}
	// Warm-up: connections on both paths.
	for i := 0; i < 20; i++ {
		for _, op := range ops {
			if err := op(); err != nil {
				return err
			}
		}
	}
	if err := e.OAuth.ResetStats(); err != nil {
		return err
	}
	// The plugin's own view of its grants (flowcred_refresh_duration_seconds)
	// and its CPU split a refreshing read into the parts the overhead is
	// made of.
	grant0, err := e.grantSeconds(ctx)
	if err != nil {
		return err
	}
	pid := e.pluginPID()
	cpu0 := CPUTime(pid)
	samples := make([][]time.Duration, len(ops))
	e.profileMark(syscall.SIGUSR1)
	for i := 0; i < e.Cfg.OverheadSamples; i++ {
		for k := range ops {
			j := (k + i) % len(ops)
			t0 := time.Now()
			if err := ops[j](); err != nil {
				return err
			}
			samples[j] = append(samples[j], time.Since(t0))
		}
	}
	e.profileMark(syscall.SIGUSR2)
	cpu := CPUTime(pid) - cpu0
	grant1, err := e.grantSeconds(ctx)
	if err != nil {
		return err
	}
	st, err := e.OAuth.Stats()
	if err != nil {
		return err
	}
	// Every forced read and every direct grant is one refresh grant.
	wantGrants := 2 * e.Cfg.OverheadSamples
	mf, md, mc := Median(samples[0]), Median(samples[1]), Median(samples[2])
	over := mf - md
	e.Table.Add(Row{
		Area: "refresh", Storage: e.V.Storage,
		Case: fmt.Sprintf("read that refreshes (min_ttl), median of %d", e.Cfg.OverheadSamples),
		Result: fmt.Sprintf("%s; direct grant %s; cached read %s; grants %d/%d",
			ms(mf), ms(md), ms(mc), st.TokenRequests[oauthtest.GrantRefreshToken], wantGrants),
		Verdict: fmt.Sprintf("overhead %s (target ≤ %s: %s); beyond a cached read %s",
			ms(over), ms(targetOverhead), verdict(over <= targetOverhead), ms(over-mc)),
	})
	n := float64(e.Cfg.OverheadSamples)
	inPlugin := time.Duration((grant1 - grant0) / n * float64(time.Second))
	e.Table.Add(Row{
		Area: "refresh", Storage: e.V.Storage,
		Case: "the refreshing read, split",
		Result: fmt.Sprintf("grant as the plugin timed it %s (mean; direct grant mean %s); plugin CPU %s per refreshing and cached read together",
			ms(inPlugin), ms(mean(samples[1])), ms(cpu/time.Duration(e.Cfg.OverheadSamples))),
		Verdict: fmt.Sprintf("refreshing read − cached read − plugin's grant = %s", ms(mf-mc-inPlugin)),
	})
	return nil
}

// grantSeconds is the plugin's flowcred_refresh_duration_seconds_sum for
// oauth2.refresh_token grants, from flowcred/metrics.
func (e *Env) grantSeconds(ctx context.Context) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.V.Addr+"/v1/flowcred/metrics", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-Vault-Token", e.V.Token)
	resp, err := e.Reader.Client.Do(req)
	if err != nil {
		return 0, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET flowcred/metrics: %s", resp.Status)
	}
	const series = `flowcred_refresh_duration_seconds_sum{kind="oauth2.refresh_token"} `
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("flowcred/metrics has no %s", strings.TrimSpace(series))
}

func mean(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	return sum / time.Duration(len(d))
}

func maxDur(d []time.Duration) time.Duration {
	var m time.Duration
	for _, x := range d {
		m = max(m, x)
	}
	return m
}
