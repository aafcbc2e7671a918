package oauthtest

import (
	"bytes"
	"context"
	"encoding/json"
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

// FaultKind selects what a FaultProxy does with a request.
type FaultKind int

const (
	// FaultNone passes the request through to the target unchanged.
	FaultNone FaultKind = iota
	// FaultStatus answers with Fault.Status, Fault.Body and Fault.Header.
	FaultStatus
	// FaultHang never answers; the handler returns when the client gives up
	// (request context cancelled) or the proxy is closed.
	FaultHang
	// FaultReset closes the TCP connection with SO_LINGER 0 (RST) without
	// writing a response.
	FaultReset
	// FaultHTML answers with an HTML error page (text/html) and Fault.Status
	// (default 502; 200 is useful too).
	FaultHTML
	// FaultTruncatedJSON answers 200 application/json with a correctly framed
	// body that is a cut-off JSON object.
	FaultTruncatedJSON
	// FaultTruncatedTransfer answers 200 application/json announcing a
	// Content-Length larger than what it sends, then closes the connection
	// (the client sees an unexpected EOF while reading the body).
	FaultTruncatedTransfer
	// FaultHugeBody streams a 200 application/json body of Fault.Size bytes
	// (default 20 MiB) without Content-Length; it starts like a token
	// response and never ends the JSON string.
	FaultHugeBody
	// FaultMissingAccessToken answers 200 with a JSON token response lacking
	// access_token.
	FaultMissingAccessToken
	// FaultStripExpiresIn passes through but removes expires_in from a
	// successful JSON response.
	FaultStripExpiresIn
	// FaultDelay waits Fault.Delay (or until the client gives up) and then
	// passes through.
	FaultDelay
	// FaultSlowAnswer passes through at once, to the end even if the client
	// goes away (as a provider does), and holds the answer for Fault.Delay.
	FaultSlowAnswer
)

var faultNames = [...]string{"none", "status", "hang", "reset", "html", "truncated-json",
	"truncated-transfer", "huge-body", "missing-access-token", "strip-expires-in", "delay", "slow-answer"}

func (k FaultKind) String() string {
	if int(k) >= 0 && int(k) < len(faultNames) {
		return faultNames[k]
	}
	return "FaultKind(" + strconv.Itoa(int(k)) + ")"
}

// Fault describes one behaviour of a FaultProxy. Build it with the helper
// constructors (PassThrough, StatusFault, Hang, ...).
type Fault struct {
	Kind   FaultKind
	Status int           // FaultStatus, FaultHTML
	Body   string        // FaultStatus
	Header http.Header   // FaultStatus (and any other synthesized response)
	Delay  time.Duration // FaultDelay
	Size   int64         // FaultHugeBody
}

// PassThrough forwards requests unchanged.
func PassThrough() Fault { return Fault{Kind: FaultNone} }

// StatusFault answers with status and body. The Content-Type defaults to
// application/json when body starts with '{', else text/plain.
func StatusFault(status int, body string) Fault {
	return Fault{Kind: FaultStatus, Status: status, Body: body}
}

// RateLimited is a 429 with Retry-After (whole seconds) and an OAuth-style body.
func RateLimited(retryAfter time.Duration) Fault {
	return StatusFault(http.StatusTooManyRequests, `{"error":"rate_limited","error_description":"slow down"}`).
		WithHeader("Retry-After", strconv.Itoa(int(retryAfter/time.Second)))
}

// Unavailable is a 503 with an OAuth-style temporarily_unavailable body.
func Unavailable() Fault {
	return StatusFault(http.StatusServiceUnavailable, `{"error":"temporarily_unavailable"}`)
}

// Hang never answers (until the client gives up or the proxy closes).
func Hang() Fault { return Fault{Kind: FaultHang} }

// Reset resets the connection without a response.
func Reset() Fault { return Fault{Kind: FaultReset} }

// HTML answers with an HTML error page and status (e.g. 200 or 502).
func HTML(status int) Fault { return Fault{Kind: FaultHTML, Status: status} }

// TruncatedJSON answers 200 with a cut-off JSON body.
func TruncatedJSON() Fault { return Fault{Kind: FaultTruncatedJSON} }

// TruncatedTransfer announces more body bytes than it sends, then closes.
func TruncatedTransfer() Fault { return Fault{Kind: FaultTruncatedTransfer} }

// HugeBody streams size bytes (<= 0 means 20 MiB) of JSON-looking body.
func HugeBody(size int64) Fault { return Fault{Kind: FaultHugeBody, Size: size} }

// MissingAccessToken answers 200 with a token response without access_token.
func MissingAccessToken() Fault { return Fault{Kind: FaultMissingAccessToken} }

// StripExpiresIn passes through and removes expires_in from the response.
func StripExpiresIn() Fault { return Fault{Kind: FaultStripExpiresIn} }

// Delay waits d before passing through.
func Delay(d time.Duration) Fault { return Fault{Kind: FaultDelay, Delay: d} }

// SlowAnswer forwards at once and holds the provider's answer for d.
func SlowAnswer(d time.Duration) Fault { return Fault{Kind: FaultSlowAnswer, Delay: d} }

// WithHeader returns a copy of f that also sets header k: v on synthesized
// responses.
func (f Fault) WithHeader(k, v string) Fault {
	h := f.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set(k, v)
	f.Header = h
	return f
}

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
// whose behaviour tests switch at run time.
type FaultProxy struct {
	srv        *httptest.Server
	target     *url.URL
	targetPath string
	upstream   *http.Client
	transport  *http.Transport

	count  atomic.Int64
	closed chan struct{}
	once   sync.Once

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
	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     30 * time.Second,
	}
	p := &FaultProxy{
		target:     &url.URL{Scheme: u.Scheme, Host: u.Host},
		targetPath: u.Path,
		transport:  tr,
		upstream: &http.Client{
			Transport:     tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		closed: make(chan struct{}),
	}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
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

// Close stops the proxy: hanging and delayed requests are released, client
// connections closed, and Close waits for all handlers to return.
func (p *FaultProxy) Close() {
	p.once.Do(func() {
		close(p.closed)
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
	f := p.pick()

	body, _ := io.ReadAll(io.LimitReader(r.Body, maxRecordedBody))
	_ = r.Body.Close()
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
	case FaultSlowAnswer:
		rec := httptest.NewRecorder()
		p.forward(rec, r.WithContext(context.WithoutCancel(r.Context())), body, false)
		if !p.sleep(r.Context(), f.Delay) {
			return
		}
		copyHeader(w.Header(), rec.Header())
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
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

func writeSynth(w http.ResponseWriter, f Fault, status int, contentType string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "no-store")
	for k, vs := range f.Header {
		h[k] = append([]string(nil), vs...)
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func resetConn(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("oauthtest: response writer cannot be hijacked")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

func (p *FaultProxy) truncatedTransfer(w http.ResponseWriter, f Fault) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("oauthtest: response writer cannot be hijacked")
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	part := `{"access_token":"cut-off","token_type":"Bear`
	var extra strings.Builder
	for k, vs := range f.Header {
		for _, v := range vs {
			extra.WriteString(k + ": " + v + "\r\n")
		}
	}
	_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 512\r\n" +
		extra.String() + "Connection: close\r\n\r\n" + part)
	_ = buf.Flush()
}

func (p *FaultProxy) hugeBody(w http.ResponseWriter, r *http.Request, f Fault) {
	size := f.Size
	if size <= 0 {
		size = 20 << 20
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	for k, vs := range f.Header {
		h[k] = append([]string(nil), vs...)
	}
	w.WriteHeader(http.StatusOK)
	prefix := []byte(`{"token_type":"Bearer","expires_in":3600,"access_token":"`)
	chunk := bytes.Repeat([]byte("A"), 32<<10)
	var sent int64
	n, err := w.Write(prefix[:min(int64(len(prefix)), size)])
	sent += int64(n)
	for err == nil && sent < size {
		select {
		case <-r.Context().Done():
			return
		case <-p.closed:
			return
		default:
		}
		n, err = w.Write(chunk[:min(int64(len(chunk)), size-sent)])
		sent += int64(n)
	}
}

// hopHeaders are not forwarded (RFC 9110 section 7.6.1).
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func (p *FaultProxy) forward(w http.ResponseWriter, r *http.Request, body []byte, stripExpiresIn bool) {
	u := *p.target
	u.Path = r.URL.Path
	u.RawQuery = r.URL.RawQuery
	out, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = r.Header.Clone()
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	out.Header.Del("Content-Length")
	out.Host = ""
	resp, err := p.upstream.Do(out)
	if err != nil {
		if r.Context().Err() == nil {
			http.Error(w, "oauthtest proxy: upstream: "+err.Error(), http.StatusBadGateway)
		}
		return
	}
	defer resp.Body.Close()
	for _, h := range hopHeaders {
		resp.Header.Del(h)
	}
	if stripExpiresIn && resp.StatusCode == http.StatusOK {
		b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
		if err != nil {
			http.Error(w, "oauthtest proxy: upstream body: "+err.Error(), http.StatusBadGateway)
			return
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(b, &m) == nil {
			delete(m, "expires_in")
			if nb, err := json.Marshal(m); err == nil {
				b = nb
			}
		}
		copyHeader(w.Header(), resp.Header)
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(b)
		return
	}
	copyHeader(w.Header(), resp.Header)
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

func copyHeader(dst, src http.Header) {
	for k, vs := range src {
		dst[k] = append([]string(nil), vs...)
	}
}
