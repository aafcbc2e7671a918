package oauthtest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// WebhookReceiver is a loopback receiver of flowcred's webhooks that checks
// each delivery's X-Flowcred-Signature against its secret and can be down
// (it then answers 503 and keeps nothing).
type WebhookReceiver struct {
	*httptest.Server
	secret string

	mu     sync.Mutex
	down   bool
	bodies []string
	types  []string
	badSig int
}

// StartWebhookReceiver starts a receiver, closed when the test ends.
func StartWebhookReceiver(tb testing.TB, secret string) *WebhookReceiver {
	r := &WebhookReceiver{secret: secret}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	tb.Cleanup(r.Close)
	return r
}

func (r *WebhookReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	mac := hmac.New(sha256.New, []byte(r.secret))
	mac.Write(body)
	if req.Header.Get("X-Flowcred-Signature") != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
		r.badSig++
	}
	var ev struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(body, &ev)
	r.bodies = append(r.bodies, string(body))
	r.types = append(r.types, ev.Type)
}

// SetDown makes the receiver refuse (503) or take deliveries.
func (r *WebhookReceiver) SetDown(down bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = down
}

// Types are the event types received, in order.
func (r *WebhookReceiver) Types() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.types...)
}

// Bodies are the bodies received, in order.
func (r *WebhookReceiver) Bodies() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bodies...)
}

// BadSignatures counts deliveries whose signature did not match.
func (r *WebhookReceiver) BadSignatures() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.badSig
}
