package oauth

import (
	"encoding/json"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
)

// TestObservability: metrics, health and webhooks on the real Vault with
// the real OAuth2 server (issue 15): an outage then recovery gives
// binding.degraded then binding.recovered; a revoked refresh token gives
// binding.needs_reauth, delivered after the receiver comes back and across
// a plugin reload; every signature is valid; no secret in metrics, health
// or any webhook body.
func TestObservability(t *testing.T) {
	serial(t)
	v, o := env(t)
	const mount = "flowcred-observe"
	if err := v.Client.Sys().Mount(mount, &api.MountInput{Type: v.PluginName, Config: api.MountConfigInput{PluginVersion: v.PluginVersion}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Client.Sys().Unmount(mount) })
	const hookSecret = "observe-webhook-key-for-tests-only"
	rcv := oauthtest.StartWebhookReceiver(t, hookSecret)
	if _, err := v.Client.Logical().Write(mount+"/config", map[string]interface{}{
		"background_refresh": false, "min_refresh_interval": 0, "webhook_url": rcv.URL, "webhook_secret": hookSecret,
	}); err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, o)
	rt := o.Mint(t, oauthtest.ClientRTBasic)
	writeBinding(t, v.Client, mount, "obs", map[string]interface{}{
		"kind": "oauth2.refresh_token", "token_url": p.TokenURL(), "client_id": oauthtest.ClientRTBasic,
		"client_secret": oauthtest.SecretRTBasic, "refresh_token": rt, "auth_style": "header",
	})
	secrets := []string{rt, oauthtest.SecretRTBasic, hookSecret}
	tok := mustReadToken(t, v.Client, mount, "obs", 0)
	secrets = append(secrets, tok.Data["access_token"].(string))
	refresh := func() { _, _ = v.Client.Logical().Write(mount+"/bindings/obs/refresh", nil) }

	p.SetMode(oauthtest.Unavailable())
	refresh()
	p.SetMode(oauthtest.PassThrough())
	refresh()
	waitUntil(t, "degraded and recovered delivered", func() bool { return len(rcv.Types()) == 2 })
	if got := strings.Join(rcv.Types(), " "); got != "binding.degraded binding.recovered" {
		t.Fatalf("events %q", got)
	}

	rcv.SetDown(true)
	if err := o.Revoke(rt); err != nil {
		t.Fatal(err)
	}
	refresh()
	waitUntil(t, "the failed delivery in health", func() bool {
		s, err := v.Client.Logical().Read(mount + "/health")
		if err != nil || s == nil {
			return false
		}
		w, _ := s.Data["webhook"].(map[string]interface{})
		return w["last_failure_at"] != nil && w["pending"] == json.Number("1")
	})
	if _, err := v.Client.Sys().ReloadPlugin(&api.ReloadPluginInput{Mounts: []string{mount}}); err != nil {
		t.Fatal(err)
	}
	rcv.SetDown(false)
	// The reloaded plugin delivers at its first round (initialize); a
	// request wakes the mount if it has not started yet.
	_, _ = v.Client.Logical().Read(mount + "/config")
	waitUntil(t, "needs_reauth delivered after the receiver came back", func() bool { return len(rcv.Types()) == 3 })
	if got := rcv.Types()[2]; got != "binding.needs_reauth" {
		t.Fatalf("third event %q", got)
	}
	if n := rcv.BadSignatures(); n != 0 {
		t.Errorf("%d deliveries with a bad signature", n)
	}
	bodies := strings.Join(rcv.Bodies(), "\n")

	// A connect gives binding.authorized.
	writeBinding(t, v.Client, mount, "obs_connect", map[string]interface{}{
		"kind": "oauth2.refresh_token", "token_url": o.TokenURL, "client_id": oauthtest.ClientConnect,
		"client_secret": oauthtest.SecretConnect, "auth_style": "header",
		"authorization_url": o.AuthorizationURL, "scopes": "openid api",
	})
	auth, err := v.Client.Logical().Write(mount+"/bindings/obs_connect/authorize", map[string]interface{}{"redirect_uri": connectRedirect})
	if err != nil {
		t.Fatal(err)
	}
	redirect, err := oauthtest.Approve(auth.Data["auth_url"].(string))
	if err != nil {
		t.Fatal(err)
	}
	ru, err := url.Parse(redirect)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Client.Logical().Write(mount+"/bindings/obs_connect/authorize/complete", map[string]interface{}{
		"state": ru.Query().Get("state"), "code": ru.Query().Get("code"),
	}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "binding.authorized delivered", func() bool { return len(rcv.Types()) == 4 })
	if got := rcv.Types()[3]; got != "binding.authorized" {
		t.Fatalf("fourth event %q", got)
	}
	if n := rcv.BadSignatures(); n != 0 {
		t.Errorf("%d deliveries with a bad signature", n)
	}
	bodies = strings.Join(rcv.Bodies(), "\n")

	// health: the binding with its error code; the counts.
	hs, err := v.Client.Logical().Read(mount + "/health")
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := hs.Data["bindings"].([]interface{})
	if len(rows) != 1 || rows[0].(map[string]interface{})["last_error_code"] != "invalid_grant" {
		t.Errorf("health bindings %v", rows)
	}
	healthJSON, _ := json.Marshal(hs.Data)

	// metrics: counters moved (this node's, since the reload), parsed with
	// Prometheus' own parser.
	refresh() // one more refused refresh after the reload
	raw, err := v.Client.Logical().ReadRaw(mount + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metricsBody, _ := io.ReadAll(raw.Body)
	raw.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(string(metricsBody)))
	if err != nil {
		t.Fatalf("metrics do not parse: %v\n%s", err, metricsBody)
	}
	if n := counter(mfs, "flowcred_upstream_requests_total", "outcome", "reauth"); n < 1 {
		t.Errorf("reauth upstream requests %v, want >= 1", n)
	}
	if n := counter(mfs, "flowcred_bindings", "health", "needs_reauth"); n != 1 {
		t.Errorf("bindings needs_reauth %v, want 1", n)
	}
	if n := counter(mfs, "flowcred_webhook_deliveries_total", "outcome", "delivered"); n < 1 {
		t.Errorf("webhook deliveries %v, want >= 1", n)
	}

	for _, s := range secrets {
		for where, text := range map[string]string{"metrics": string(metricsBody), "health": string(healthJSON), "webhook bodies": bodies} {
			if strings.Contains(text, s) {
				t.Errorf("a secret value is in the %s", where)
			}
		}
	}
}

// counter is the value of the series of name whose label has value.
func counter(mfs map[string]*dto.MetricFamily, name, label, value string) float64 {
	mf := mfs[name]
	if mf == nil {
		return 0
	}
	for _, m := range mf.Metric {
		for _, lp := range m.Label {
			if lp.GetName() == label && lp.GetValue() == value {
				if m.Counter != nil {
					return m.Counter.GetValue()
				}
				return m.Gauge.GetValue()
			}
		}
	}
	return 0
}

// waitUntil polls cond every 100 ms for up to a minute (a deadlock guard,
// not a timing assertion).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
