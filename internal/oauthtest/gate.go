// A FaultProxy's gate, holds, observer and counters.

package oauthtest

import (
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// gateState is the part of a FaultProxy that the gate and hold modes use.
type gateState struct {
	// inflight counts admitted requests whose handler has not returned.
	inflight atomic.Int64
	// forwarded, succeeded (the provider answered 200), rejected (answered
	// 503 by the closed gate) and held (answers held by SlowAnswer or
	// HoldAnswer) count requests.
	forwarded, succeeded, rejected, held atomic.Int64
	// epoch increases with every OpenGate; a connection accepted under an
	// older epoch is refused (see OpenGate).
	epoch atomic.Int64

	gmu        sync.Mutex
	gateClosed bool
	hold       chan struct{} // when set, a 200 answer waits for it to close
	holding    chan struct{} // closed when an answer is being held
	observer   func(form url.Values, status int, body []byte)
	detached   bool
}

// connEpochKey keys a connection's epoch in its requests' context.
type connEpochKey struct{}

// InFlight is the number of requests admitted (past the gate) whose answer
// has not been written yet.
func (p *FaultProxy) InFlight() int64 { return p.inflight.Load() }

// Forwarded is the number of requests forwarded to the provider.
func (p *FaultProxy) Forwarded() int64 { return p.forwarded.Load() }

// Succeeded is the number of forwarded requests the provider answered 200.
func (p *FaultProxy) Succeeded() int64 { return p.succeeded.Load() }

// Rejected is the number of requests the closed gate answered 503.
func (p *FaultProxy) Rejected() int64 { return p.rejected.Load() }

// Held is the number of provider answers held by SlowAnswer or HoldAnswer.
func (p *FaultProxy) Held() int64 { return p.held.Load() }

// SetDetached makes forwarded requests complete at the provider even when
// the client goes away meanwhile (default: the forwarded request is
// cancelled with the client's). A provider that has started a request
// finishes it, and a refresh token it rotated is rotated whatever happens
// to the answer.
func (p *FaultProxy) SetDetached(on bool) {
	p.gmu.Lock()
	p.detached = on
	p.gmu.Unlock()
}

// Observe calls fn with every forwarded request's form and the provider's
// answer (before any fault or hold changes what the client gets).
func (p *FaultProxy) Observe(fn func(form url.Values, status int, body []byte)) {
	p.gmu.Lock()
	p.observer = fn
	p.gmu.Unlock()
}

// CloseGate makes the proxy answer 503 to new requests without forwarding
// them, and waits until no admitted request is in flight. OpenGate ends it.
func (p *FaultProxy) CloseGate() {
	p.gmu.Lock()
	p.gateClosed = true
	p.gmu.Unlock()
	for p.inflight.Load() > 0 {
		time.Sleep(2 * time.Millisecond)
	}
}

// OpenGate admits requests again, except on connections accepted before the
// call: those are answered 503 and closed, and the client connects again.
// After a client process was killed, a request it wrote to the socket just
// before it died can reach the handler only after the gate opened (the
// proxy reads it a little later); it comes on a connection of the dead
// process, and must not reach the provider, whose answer nobody would
// store.
func (p *FaultProxy) OpenGate() {
	p.gmu.Lock()
	p.epoch.Add(1)
	p.gateClosed = false
	p.gmu.Unlock()
}

// admit lets a request past the gate (counting it in flight; the caller
// decrements) or answers it 503.
func (p *FaultProxy) admit(w http.ResponseWriter, r *http.Request) bool {
	p.gmu.Lock()
	epoch, _ := r.Context().Value(connEpochKey{}).(int64)
	stale := epoch < p.epoch.Load()
	if !p.gateClosed && !stale {
		p.inflight.Add(1)
		p.gmu.Unlock()
		return true
	}
	p.gmu.Unlock()
	p.rejected.Add(1)
	w.Header().Set("Content-Type", "application/json")
	if stale {
		w.Header().Set("Connection", "close")
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte(`{"error":"temporarily_unavailable","error_description":"gate closed by the test"}`))
	return false
}

// HoldNext makes the next successful answer wait, after the provider sent
// it, until Release. The returned channel is closed when an answer is held.
func (p *FaultProxy) HoldNext() <-chan struct{} {
	p.gmu.Lock()
	defer p.gmu.Unlock()
	p.hold = make(chan struct{})
	p.holding = make(chan struct{})
	return p.holding
}

// Release lets a held answer (and later ones) through.
func (p *FaultProxy) Release() {
	p.gmu.Lock()
	defer p.gmu.Unlock()
	if p.hold != nil {
		close(p.hold)
		p.hold, p.holding = nil, nil
	}
}

// answered counts and shows a provider's answer, and holds it if HoldNext
// asked for that.
func (p *FaultProxy) answered(reqBody []byte, status int, body []byte) {
	p.gmu.Lock()
	observer := p.observer
	p.gmu.Unlock()
	if status == http.StatusOK {
		p.succeeded.Add(1)
	}
	if observer != nil {
		form, _ := url.ParseQuery(string(reqBody))
		observer(form, status, body)
	}
	if status != http.StatusOK {
		return
	}
	p.gmu.Lock()
	hold, holding := p.hold, p.holding
	if holding != nil {
		close(holding)
		p.holding = nil
	}
	p.gmu.Unlock()
	if hold != nil {
		<-hold
	}
}
