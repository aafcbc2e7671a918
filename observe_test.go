package flowcred

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
)

// scrape reads metrics/ and parses it with Prometheus' own text parser.
func scrape(t *testing.T, b *testBackend) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	resp := b.read(t, "metrics", nil)
	require.Equal(t, "text/plain; version=0.0.4; charset=utf-8", resp.Data[logical.HTTPContentType])
	body := string(resp.Data[logical.HTTPRawBody].([]byte))
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(body))
	require.NoError(t, err)
	return mfs, body
}

// metricValue is the value of the series of family name with the labels.
func metricValue(mfs map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	mf := mfs[name]
	if mf == nil {
		return 0
	}
next:
	for _, m := range mf.Metric {
		for _, lp := range m.Label {
			if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return 0
}

func initialized(t *testing.T, b *testBackend) {
	require.NoError(t, b.initialize(context.Background(), &logical.InitializationRequest{Storage: b.s}))
}

func TestObserve_MetricsMoveWithRefreshes(t *testing.T) {
	b := getTestBackend(t, nil)
	initialized(t, b)
	idp := newFakeIdP(t)
	bindRefresh(t, b, "crm", idp.TokenURL())
	b.read(t, "token/crm", nil)
	b.read(t, "token/crm", nil)
	mfs, body := scrape(t, b)
	ok := map[string]string{"kind": "oauth2.refresh_token", "outcome": "ok"}
	require.EqualValues(t, 1, metricValue(mfs, "flowcred_upstream_requests_total", ok))
	require.EqualValues(t, 1, metricValue(mfs, "flowcred_refresh_duration_seconds", map[string]string{"kind": "oauth2.refresh_token"}))
	require.EqualValues(t, 1, metricValue(mfs, "flowcred_token_reads_total", map[string]string{"result": "hit"}))
	require.EqualValues(t, 1, metricValue(mfs, "flowcred_token_reads_total", map[string]string{"result": "miss"}))
	require.EqualValues(t, 1, metricValue(mfs, "flowcred_bindings", map[string]string{"health": "ok"}))
	require.NotContains(t, body, "crm", "no per-handle label by default")

	idp.SetRefreshToken("revoked")
	_, _ = b.do(t, logical.UpdateOperation, "bindings/crm/refresh", nil)
	mfs, body = scrape(t, b)
	require.EqualValues(t, 1, metricValue(mfs, "flowcred_upstream_requests_total", map[string]string{"kind": "oauth2.refresh_token", "outcome": "reauth"}))
	require.EqualValues(t, 1, metricValue(mfs, "flowcred_bindings", map[string]string{"health": "needs_reauth"}))
	require.EqualValues(t, 0, metricValue(mfs, "flowcred_bindings", map[string]string{"health": "ok"}))
	for _, secret := range []string{testRefreshToken, testClientSecret, "SECRET"} {
		require.NotContains(t, body, secret)
	}

	b.write(t, "config", map[string]interface{}{"metrics_per_handle": true})
	_, _ = b.do(t, logical.UpdateOperation, "bindings/crm/refresh", nil)
	mfs, _ = scrape(t, b)
	require.EqualValues(t, 1, metricValue(mfs, "flowcred_handle_upstream_requests_total", map[string]string{"handle": "crm", "outcome": "reauth"}))
}

func TestObserve_HealthIndex(t *testing.T) {
	b := getTestBackend(t, nil)
	initialized(t, b)
	idp := newFakeIdP(t)
	for _, h := range []string{"a", "b", "c"} {
		bindRefresh(t, b, h, idp.TokenURL())
	}
	b.write(t, "bindings/static", map[string]interface{}{"kind": "api_token", "token": testAPIToken})
	b.read(t, "token/a", nil)
	resp := b.read(t, "health", map[string]interface{}{"limit": 1})
	require.Equal(t, map[string]interface{}{"ok": 2, "unknown": 2}, resp.Data["counts"])
	rows := resp.Data["bindings"].([]map[string]interface{})
	require.Len(t, rows, 1)
	require.Equal(t, "b", rows[0]["handle"])
	require.Equal(t, "b", resp.Data["next"])
	resp = b.read(t, "health", map[string]interface{}{"after": "b"})
	require.Equal(t, "c", resp.Data["bindings"].([]map[string]interface{})[0]["handle"])
	require.NotContains(t, resp.Data, "next")

	idp.SetRefreshToken("revoked")
	_, _ = b.do(t, logical.UpdateOperation, "bindings/a/refresh", nil)
	_, err := b.do(t, logical.DeleteOperation, "bindings/b", nil)
	require.NoError(t, err)
	resp = b.read(t, "health", nil)
	require.Equal(t, map[string]interface{}{"ok": 1, "unknown": 1, "needs_reauth": 1}, resp.Data["counts"])
	rows = resp.Data["bindings"].([]map[string]interface{})
	require.Equal(t, "a", rows[0]["handle"])
	require.Equal(t, "invalid_grant", rows[0]["last_error_code"])

	// The counts are rebuilt from the index after a reload.
	b.health.set(nil)
	initialized(t, b)
	require.Equal(t, map[string]interface{}{"ok": 1, "unknown": 1, "needs_reauth": 1}, b.read(t, "health", nil).Data["counts"])
}

func TestObserve_Webhooks(t *testing.T) {
	b := getTestBackend(t, nil)
	initialized(t, b)
	const secret = "webhook-key-SECRET"
	rcv := oauthtest.StartWebhookReceiver(t, secret)
	b.write(t, "config", map[string]interface{}{"webhook_url": rcv.URL, "webhook_secret": secret})
	cfg := b.read(t, "config", nil)
	require.NotContains(t, cfg.Data, "webhook_secret") // never read back
	// A read-modify-write keeps the inline secret.
	b.write(t, "config", cfg.Data)
	raw, _ := json.Marshal(cfg.Data)
	require.NotContains(t, string(raw), secret)

	idp := newFakeIdP(t)
	bindRefresh(t, b, "crm", idp.TokenURL())
	b.read(t, "token/crm", nil)

	// Degraded, then recovered.
	idp.Answer(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) })
	_, _ = b.do(t, logical.UpdateOperation, "bindings/crm/refresh", nil)
	idp.Answer(nil)
	b.write(t, "bindings/crm/refresh", nil)
	waitFor(t, "degraded and recovered delivered", func() bool { return len(rcv.Types()) == 2 })
	require.Equal(t, []string{"binding.degraded", "binding.recovered"}, rcv.Types())

	// The receiver is down when the grant is refused: delivered once it is back.
	rcv.SetDown(true)
	idp.SetRefreshToken("revoked")
	_, _ = b.do(t, logical.UpdateOperation, "bindings/crm/refresh", nil)
	waitFor(t, "the failed delivery is logged", func() bool {
		w := b.read(t, "health", nil).Data["webhook"].(map[string]interface{})
		return w["last_failure_at"] != nil && w["pending"] == 1
	})
	// A reload in between: the outbox is in storage.
	b.stopDeliverer()
	rcv.SetDown(false)
	initialized(t, b)
	waitFor(t, "needs_reauth delivered after the receiver came back", func() bool { return len(rcv.Types()) == 3 })
	var ev webhookEvent
	require.NoError(t, json.Unmarshal([]byte(rcv.Bodies()[2]), &ev))
	require.Equal(t, "binding.needs_reauth", ev.Type)
	require.Equal(t, "crm", ev.Handle)
	require.Equal(t, "needs_reauth", ev.Health)
	require.Equal(t, "invalid_grant", ev.LastErrorCode)
	require.NotEmpty(t, ev.ID)
	require.WithinDuration(t, time.Now(), ev.At, time.Minute)
	require.Zero(t, rcv.BadSignatures(), "every delivery's signature is valid")
	keys, err := b.s.List(context.Background(), outboxPrefix)
	require.NoError(t, err)
	require.Empty(t, keys)
}

func TestObserve_WebhookConfigErrors(t *testing.T) {
	b := getTestBackend(t, nil)
	for _, tc := range []struct {
		data map[string]interface{}
		want string
	}{
		{map[string]interface{}{"webhook_url": "http://example.com/hook", "webhook_secret": "k"}, "webhook_url"},
		{map[string]interface{}{"webhook_url": "https://example.com/hook"}, "webhook_secret"},
		{map[string]interface{}{"webhook_url": "https://example.com/hook", "webhook_secret": "k", "webhook_secret_secret": "s"}, "not both"},
		{map[string]interface{}{"reauth_warning_window": 60}, "reauth_warning_window"},
	} {
		resp, err := b.do(t, logical.UpdateOperation, "config", tc.data)
		require.NoError(t, err)
		require.True(t, resp.IsError(), "%v", tc.data)
		require.Contains(t, resp.Error().Error(), tc.want)
	}
	require.Equal(t, "", b.read(t, "config", nil).Data["webhook_url"], "nothing changed")
}

// reauth_due_at from refresh_token_expires_in; validate warns reauth_soon.
func TestObserve_ReauthDue(t *testing.T) {
	b := getTestBackend(t, nil)
	srv := oauthtest.StartTokenEndpoint(t, oauthtest.TokenOptions{})
	srv.Answer(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"at-SECRET","token_type":"Bearer","expires_in":3600,"refresh_token_expires_in":86400}`))
	})
	bindRefresh(t, b, "crm", srv.TokenURL())
	b.read(t, "token/crm", nil)
	st := health(t, b, "crm")
	due, err := time.Parse(time.RFC3339, st["reauth_due_at"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(24*time.Hour), due, time.Minute)
	// An ok binding is not listed by health, due date or not.
	require.Empty(t, b.read(t, "health", nil).Data["bindings"])
	v := b.write(t, "validate", map[string]interface{}{"requirements": []interface{}{map[string]interface{}{"node": "n", "handle": "crm", "kind": "oauth2.refresh_token"}}})
	require.Equal(t, true, v.Data["valid"])
	require.Equal(t, "reauth_soon", v.Data["problems"].([]map[string]interface{})[0]["problem"])
}

// A secret that signs the webhooks cannot be deleted while the config names it.
func TestObserve_WebhookSecretInUse(t *testing.T) {
	b := getTestBackend(t, nil)
	b.write(t, "secrets/hook", map[string]interface{}{"value": "webhook-key-SECRET"})
	b.write(t, "config", map[string]interface{}{"webhook_url": "https://hooks.example/flowcred", "webhook_secret_secret": "hook"})
	resp, err := b.do(t, logical.DeleteOperation, "secrets/hook", nil)
	require.NoError(t, err)
	require.True(t, resp.IsError())
	require.Contains(t, resp.Error().Error(), "webhook_secret_secret")
	b.write(t, "config", map[string]interface{}{"webhook_url": ""})
	b.write(t, "config", map[string]interface{}{"webhook_secret_secret": ""})
	_, err = b.do(t, logical.DeleteOperation, "secrets/hook", nil)
	require.NoError(t, err)
}

// binding.reauth_soon: once per due date, from the periodic function.
func TestObserve_ReauthSoonWebhook(t *testing.T) {
	b := getTestBackend(t, nil)
	initialized(t, b)
	const secret = "webhook-key-SECRET"
	rcv := oauthtest.StartWebhookReceiver(t, secret)
	b.write(t, "config", map[string]interface{}{"webhook_url": rcv.URL, "webhook_secret": secret})
	srv := oauthtest.StartTokenEndpoint(t, oauthtest.TokenOptions{})
	srv.Answer(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"at-SECRET","token_type":"Bearer","expires_in":3600,"refresh_token_expires_in":86400}`))
	})
	bindRefresh(t, b, "crm", srv.TokenURL())
	b.read(t, "token/crm", nil)
	for i := 0; i < 3; i++ {
		require.NoError(t, b.periodic(context.Background(), &logical.Request{Storage: b.s}))
	}
	waitFor(t, "reauth_soon delivered", func() bool { return len(rcv.Types()) == 1 })
	require.Equal(t, []string{"binding.reauth_soon"}, rcv.Types())
	time.Sleep(200 * time.Millisecond) // a second event would have been delivered by now
	require.Len(t, rcv.Types(), 1, "once per due date")
}
