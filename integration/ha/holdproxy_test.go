package ha

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// holdProxy forwards token requests to the provider. While hold is on it
// forwards a request, reads the provider's whole answer and then never
// delivers it: the caller waits until it gives up or dies. It is the other
// half of "in flight" that oauthtest.FaultProxy's Delay (which waits before
// forwarding) does not cover: the provider has already rotated.
type holdProxy struct {
	srv    *httptest.Server
	target string
	client *http.Client
	hold   atomic.Bool
	nheld  atomic.Int64
	closed chan struct{}
}

func newHoldProxy(t *testing.T, target string) *holdProxy {
	p := &holdProxy{
		target: target,
		client: &http.Client{Transport: &http.Transport{Proxy: nil}},
		closed: make(chan struct{}),
	}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(func() {
		close(p.closed)
		p.srv.CloseClientConnections()
		p.srv.Close()
	})
	return p
}

// URL is the token endpoint to bind.
func (p *holdProxy) URL() string { return p.srv.URL + "/token" }

func (p *holdProxy) holdAnswers(on bool) { p.hold.Store(on) }

// held is how many provider answers were swallowed.
func (p *holdProxy) held() int { return int(p.nheld.Load()) }

func (p *holdProxy) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	// Not tied to the caller's context: the provider must see the request
	// through even if the caller dies meanwhile.
	req, err := http.NewRequest(r.Method, p.target, bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := p.client.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	if p.hold.Load() {
		p.nheld.Add(1)
		select {
		case <-r.Context().Done():
		case <-p.closed:
		}
		return
	}
	for k, vs := range resp.Header {
		if k == "Content-Length" || k == "Connection" {
			continue
		}
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(out)
}
