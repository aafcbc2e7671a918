package oauthtest

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// RecordedRequest is a request the proxy saw.
type RecordedRequest struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
	Fault  FaultKind // what the proxy did with it
}

// Form parses Body as application/x-www-form-urlencoded.
func (r *RecordedRequest) Form() url.Values {
	v, _ := url.ParseQuery(string(r.Body))
	return v
}

// FaultProxy is a loopback HTTP reverse proxy in front of an OAuth2 server
// (or, built by NewTokenEndpoint, in front of an in-process issuer) whose
// behaviour tests switch at run time. It has three kinds of mode:
//
//   - faults (SetMode, FailNext): pass through, answer an error, hang,
//     reset, delay, hold or swallow the provider's answer, ... (faults.go);
//   - a gate (CloseGate, OpenGate): while closed, requests are answered 503
//     without reaching the provider (gate.go);
//   - holds (HoldNext, Release): the next successful answer waits, after
//     the provider sent it, until the test releases it (gate.go).
//
// Observe shows every forwarded request and the provider's answer, and
// SetDetached makes forwarded requests complete at the provider even when
// the client goes away, as on a real network.
type FaultProxy struct {
	srv        *httptest.Server
	target     *url.URL
	targetPath string
	// local, when set, answers what would be forwarded (NewTokenEndpoint).
	local     http.Handler
	upstream  *http.Client
	transport *http.Transport

	count  atomic.Int64
	closed chan struct{}
	once   sync.Once

	gateState

	mu        sync.Mutex
	mode      Fault
	nextN     int
	nextFault Fault
	last      *RecordedRequest
}

// NewFaultProxy starts a proxy on 127.0.0.1 forwarding to target, a base URL
// or an endpoint URL (e.g. Server.TokenURL or Server.Issuer). A request to
// the proxy's path P goes to target's scheme://host + P. Close it when done.
func NewFaultProxy(target string) *FaultProxy {
	u, err := url.Parse(target)
	if err != nil || u.Scheme == "" || u.Host == "" {
		panic("oauthtest: NewFaultProxy: invalid target URL " + strconv.Quote(target))
	}
	return newProxy(&url.URL{Scheme: u.Scheme, Host: u.Host}, u.Path, nil, nil)
}

// newProxy starts a proxy; connState, when set, sees its server's
// connections change state (http.Server.ConnState).
func newProxy(target *url.URL, targetPath string, local http.Handler, connState func(net.Conn, http.ConnState)) *FaultProxy {
	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     30 * time.Second,
	}
	p := &FaultProxy{
		target:     target,
		targetPath: targetPath,
		local:      local,
		transport:  tr,
		upstream: &http.Client{
			Transport:     tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		closed: make(chan struct{}),
	}
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(p.serve))
	p.srv.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
		return context.WithValue(ctx, connEpochKey{}, p.epoch.Load())
	}
	p.srv.Config.ConnState = connState
	p.srv.Start()
	return p
}

// URL is the proxy's base URL (http://127.0.0.1:PORT).
func (p *FaultProxy) URL() string { return p.srv.URL }

// TokenURL is URL() plus the target's path (or "/token" if the target had
// none): the URL to configure as the client's token endpoint.
func (p *FaultProxy) TokenURL() string {
	if p.targetPath == "" || p.targetPath == "/" {
		return p.srv.URL + "/token"
	}
	return p.srv.URL + p.targetPath
}

// SetMode sets the behaviour for all following requests (after any pending
// FailNext requests) and cancels pending FailNext requests.
func (p *FaultProxy) SetMode(f Fault) {
	p.mu.Lock()
	p.mode = f
	p.nextN = 0
	p.mu.Unlock()
}

// FailNext applies f to the next n requests; after those, the mode set with
// SetMode (default pass-through) applies again.
func (p *FaultProxy) FailNext(n int, f Fault) {
	p.mu.Lock()
	p.nextN = n
	p.nextFault = f
	p.mu.Unlock()
}

// Count is the number of requests the proxy has received.
func (p *FaultProxy) Count() int64 { return p.count.Load() }

// ResetCount zeroes Count.
func (p *FaultProxy) ResetCount() { p.count.Store(0) }

// LastRequest returns a copy of the last request received, or nil.
func (p *FaultProxy) LastRequest() *RecordedRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last == nil {
		return nil
	}
	c := *p.last
	return &c
}

// Close stops the proxy: hanging, delayed and held requests are released,
// client connections closed, and Close waits for all handlers to return.
func (p *FaultProxy) Close() {
	p.once.Do(func() {
		close(p.closed)
		p.Release()
		p.srv.CloseClientConnections()
		p.srv.Close()
		p.transport.CloseIdleConnections()
	})
}

func (p *FaultProxy) pick() Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.nextN > 0 {
		p.nextN--
		return p.nextFault
	}
	return p.mode
}

const maxRecordedBody = 1 << 20

func (p *FaultProxy) serve(w http.ResponseWriter, r *http.Request) {
	p.count.Add(1)
	body, _ := io.ReadAll(io.LimitReader(r.Body, maxRecordedBody))
	_ = r.Body.Close()
	if !p.admit(w, r) {
		return
	}
	defer p.inflight.Add(-1)
	f := p.pick()
	rec := &RecordedRequest{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body, Fault: f.Kind}
	p.mu.Lock()
	p.last = rec
	p.mu.Unlock()

	switch f.Kind {
	case FaultNone:
		p.forward(w, r, body, false)
	case FaultDelay:
		if !p.sleep(r.Context(), f.Delay) {
			return
		}
		p.forward(w, r, body, false)
	case FaultStripExpiresIn:
		p.forward(w, r, body, true)
	case FaultSlowAnswer, FaultHoldAnswer:
		p.holdAnswer(w, r, body, f)
	case FaultStatus:
		ct := "text/plain; charset=utf-8"
		if strings.HasPrefix(strings.TrimSpace(f.Body), "{") {
			ct = "application/json"
		}
		writeSynth(w, f, f.Status, ct, []byte(f.Body))
	case FaultHang:
		select {
		case <-r.Context().Done():
		case <-p.closed:
		}
	case FaultReset:
		resetConn(w)
	case FaultHTML:
		status := f.Status
		if status == 0 {
			status = http.StatusBadGateway
		}
		page := "<!DOCTYPE html>\n<html><head><title>" + strconv.Itoa(status) + " " + http.StatusText(status) +
			"</title></head><body><h1>" + http.StatusText(status) + "</h1><p>The upstream server is unavailable.</p></body></html>\n"
		writeSynth(w, f, status, "text/html; charset=utf-8", []byte(page))
	case FaultTruncatedJSON:
		writeSynth(w, f, http.StatusOK, "application/json", []byte(`{"access_token":"truncated-token","token_type":"Bearer","expi`))
	case FaultTruncatedTransfer:
		p.truncatedTransfer(w, f)
	case FaultHugeBody:
		p.hugeBody(w, r, f)
	case FaultMissingAccessToken:
		writeSynth(w, f, http.StatusOK, "application/json", []byte(`{"token_type":"Bearer","expires_in":3600,"scope":"api"}`))
	default:
		http.Error(w, "oauthtest: unknown fault "+f.Kind.String(), http.StatusInternalServerError)
	}
}

// holdAnswer forwards to the end whatever the client does, then holds the
// answer for f.Delay (FaultSlowAnswer) or for ever (FaultHoldAnswer) while
// the client waits.
func (p *FaultProxy) holdAnswer(w http.ResponseWriter, r *http.Request, body []byte, f Fault) {
	rec := httptest.NewRecorder()
	p.forward(rec, r.WithContext(context.WithoutCancel(r.Context())), body, false)
	p.held.Add(1)
	if f.Kind == FaultHoldAnswer {
		select {
		case <-r.Context().Done():
		case <-p.closed:
		}
		return
	}
	if !p.sleep(r.Context(), f.Delay) {
		return
	}
	copyHeader(w.Header(), rec.Header())
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// sleep waits d; false if the client went away or the proxy closed first.
func (p *FaultProxy) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-p.closed:
		return false
	}
}
