package flowcred

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// Webhooks (design.md, "Observability"): each health transition is an
// event in a durable outbox (outbox/<time>-<id>, written with the state
// change it reports), delivered at least once by the node that can write:
// a POST of the JSON body to webhook_url with X-Flowcred-Signature, retried
// with backoff until the receiver answers 2xx, across plugin reloads and
// Vault restarts (the outbox is in storage). Redirects are not followed
// (the upstream client's noRedirect). A body carries names, a health and an
// error code, never a secret.

const (
	outboxPrefix     = "outbox/"
	webhookStatusKey = "webhook_status"
	webhookTimeout   = 10 * time.Second
	maxWebhookWait   = 5 * time.Minute
	// maxOutbox bounds the outbox while a receiver is down.
	maxOutbox = 10000
)

// webhookEvent is a webhook's JSON body.
type webhookEvent struct {
	ID            string    `json:"id"`
	Type          string    `json:"type"`
	Handle        string    `json:"handle"`
	Kind          string    `json:"kind"`
	Health        string    `json:"health"`
	At            time.Time `json:"at"`
	LastErrorCode string    `json:"last_error_code,omitempty"`
}

// webhookStatus is the delivery log shown by health.
type webhookStatus struct {
	LastSuccessAt time.Time `json:"last_success_at,omitempty"`
	LastFailureAt time.Time `json:"last_failure_at,omitempty"`
	LastFailure   string    `json:"last_failure,omitempty"`
	Pending       int       `json:"pending"`
}

// deliverer runs the delivery loop; wake starts a round at once.
type deliverer struct {
	mu      sync.Mutex
	cancel  context.CancelFunc
	wake    chan struct{}
	done    chan struct{}
	status  webhookStatus
	backoff time.Duration
}

// enqueueEvent stores ev in the outbox (when a webhook is configured) and
// wakes the delivery loop.
func (b *backend) enqueueEvent(ctx context.Context, s logical.Storage, ev *webhookEvent) {
	cfg, err := b.getConfig(ctx, s)
	if err != nil || cfg.WebhookURL == "" {
		return
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	ev.ID = hex.EncodeToString(id[:])
	ev.At = b.now().UTC().Truncate(time.Second)
	if n, err := s.List(ctx, outboxPrefix); err == nil && len(n) >= maxOutbox {
		b.Logger().Error("the webhook outbox is full; event dropped", "handle", ev.Handle, "type", ev.Type, "pending", len(n))
		return
	}
	key := fmt.Sprintf("%s%020d-%s", outboxPrefix, b.now().UnixNano(), ev.ID)
	if err := putJSON(ctx, s, key, "webhook event", ev); err != nil {
		b.Logger().Error("queueing a webhook event failed", "handle", ev.Handle, "type", ev.Type, "error", err)
		return
	}
	b.wakeDeliverer()
}

func (b *backend) wakeDeliverer() {
	select {
	case b.webhooks.wake <- struct{}{}:
	default:
	}
}

// startDeliverer starts the delivery loop (initialize, on a writable node).
func (b *backend) startDeliverer(s logical.Storage) {
	d := &b.webhooks
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel, d.done = cancel, make(chan struct{})
	go func() {
		defer close(d.done)
		wait := time.Duration(0)
		for {
			select {
			case <-ctx.Done():
				return
			case <-d.wake:
			case <-time.After(wait):
			}
			wait = b.deliverRound(ctx, s)
		}
	}()
	b.wakeDeliverer()
}

// stopDeliverer ends the loop (Clean).
func (b *backend) stopDeliverer() {
	d := &b.webhooks
	d.mu.Lock()
	cancel, done := d.cancel, d.done
	d.cancel = nil
	d.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// deliverRound delivers the outbox in order until it is empty or a
// delivery fails, and returns how long to wait before the next round.
func (b *backend) deliverRound(ctx context.Context, s logical.Storage) time.Duration {
	cfg, err := b.getConfig(ctx, s)
	if err != nil || !b.writableForRefresh() {
		return time.Minute
	}
	keys, err := s.List(ctx, outboxPrefix)
	if err != nil {
		return time.Minute
	}
	keys = sortedStrings(keys)
	if cfg.WebhookURL == "" {
		return time.Hour // events queued before the URL was removed wait for a new one
	}
	secret, err := b.webhookSecret(ctx, s, cfg)
	if err != nil {
		b.noteDelivery(ctx, s, err, len(keys))
		return b.nextBackoff()
	}
	for i, k := range keys {
		entry, err := s.Get(ctx, outboxPrefix+k)
		if err != nil || entry == nil {
			continue
		}
		if err := b.post(ctx, cfg.WebhookURL, secret, entry.Value); err != nil {
			b.metrics.webhooks.WithLabelValues("failed").Inc()
			b.noteDelivery(ctx, s, err, len(keys)-i)
			return b.nextBackoff()
		}
		b.metrics.webhooks.WithLabelValues("delivered").Inc()
		_ = s.Delete(ctx, outboxPrefix+k)
		b.noteDelivery(ctx, s, nil, len(keys)-i-1)
	}
	b.webhooks.mu.Lock()
	b.webhooks.backoff = 0
	b.webhooks.mu.Unlock()
	return time.Hour
}

func (b *backend) nextBackoff() time.Duration {
	d := &b.webhooks
	d.mu.Lock()
	defer d.mu.Unlock()
	d.backoff = min(max(2*d.backoff, time.Second), maxWebhookWait)
	return d.backoff
}

// post sends one body, signed.
func (b *backend) post(ctx context.Context, url string, secret, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, webhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook_url cannot be requested")
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Flowcred-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := b.httpClient.Do(req)
	if err != nil {
		// The URL itself may be the receiver's credential (Slack-style):
		// name its host and the kind of failure only.
		what := "could not be reached"
		if ue := transportError(err); strings.Contains(ue.msg, "in time") {
			what = "did not answer in time"
		}
		return fmt.Errorf("the receiver at %s %s", hostOf(url), what)
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("the receiver answered HTTP %d", resp.StatusCode)
	}
	return nil
}

// noteDelivery records the last success or failure, in memory and storage.
func (b *backend) noteDelivery(ctx context.Context, s logical.Storage, err error, pending int) {
	d := &b.webhooks
	d.mu.Lock()
	now := b.now()
	if err == nil {
		d.status.LastSuccessAt = now
	} else {
		d.status.LastFailureAt, d.status.LastFailure = now, err.Error()
		b.Logger().Warn("webhook delivery failed; will retry", "error", err)
	}
	d.status.Pending = pending
	st := d.status
	d.mu.Unlock()
	_ = putJSON(ctx, s, webhookStatusKey, "webhook status", &st)
}

// webhookStatusNow is the delivery log for health.
func (b *backend) webhookStatusNow(ctx context.Context, s logical.Storage) map[string]interface{} {
	st, _ := getJSON[webhookStatus](ctx, s, webhookStatusKey, "webhook status")
	out := map[string]interface{}{"pending": 0}
	if st == nil {
		return out
	}
	if !st.LastSuccessAt.IsZero() {
		out["last_success_at"] = st.LastSuccessAt.UTC().Format(time.RFC3339)
	}
	if !st.LastFailureAt.IsZero() {
		out["last_failure_at"] = st.LastFailureAt.UTC().Format(time.RFC3339)
		out["last_failure"] = st.LastFailure
	}
	out["pending"] = st.Pending
	return out
}

// webhookSecret is the signing key: inline in the config, or a stored secret.
func (b *backend) webhookSecret(ctx context.Context, s logical.Storage, cfg *configEntry) ([]byte, error) {
	if cfg.WebhookSecretRef == "" {
		return []byte(cfg.WebhookSecret), nil
	}
	sec, err := getSecret(ctx, s, cfg.WebhookSecretRef)
	if err != nil {
		return nil, err
	}
	if sec == nil {
		return nil, fmt.Errorf("webhook_secret_secret names secret %q, which does not exist", cfg.WebhookSecretRef)
	}
	return []byte(sec.Value), nil
}
