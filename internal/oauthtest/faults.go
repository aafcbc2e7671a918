// The faults a FaultProxy (and a TokenEndpoint) can play, and the
// synthesized answers behind them.

package oauthtest

import (
	"bytes"
	"net"
	"net/http"
	"strconv"
	"strings"
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
	// FaultHoldAnswer passes through at once, to the end even if the client
	// goes away, and never delivers the answer: the handler returns when the
	// client gives up or the proxy is closed. Held counts such answers.
	FaultHoldAnswer
)

var faultNames = [...]string{"none", "status", "hang", "reset", "html", "truncated-json",
	"truncated-transfer", "huge-body", "missing-access-token", "strip-expires-in", "delay", "slow-answer", "hold-answer"}

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
	Delay  time.Duration // FaultDelay, FaultSlowAnswer
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

// HoldAnswer forwards at once and swallows the provider's answer: the
// provider has acted (rotated a refresh token, say) and the caller never
// learns it.
func HoldAnswer() Fault { return Fault{Kind: FaultHoldAnswer} }

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
