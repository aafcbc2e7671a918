// How a FaultProxy forwards a request and passes the answer on.

package oauthtest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
)

// hopHeaders are not forwarded (RFC 9110 section 7.6.1).
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// forward sends the request to the target (or the local issuer) and writes
// the answer, without expires_in when stripExpiresIn and it is a 200.
func (p *FaultProxy) forward(w http.ResponseWriter, r *http.Request, body []byte, stripExpiresIn bool) {
	p.gmu.Lock()
	detached := p.detached
	p.gmu.Unlock()
	ctx := r.Context()
	if detached {
		ctx = context.WithoutCancel(ctx)
	}
	p.forwarded.Add(1)
	status, header, out, err := p.roundTrip(ctx, r, body)
	if err != nil {
		if r.Context().Err() == nil {
			http.Error(w, "oauthtest proxy: upstream: "+err.Error(), http.StatusBadGateway)
		}
		return
	}
	p.answered(body, status, out)
	for _, h := range hopHeaders {
		header.Del(h)
	}
	if stripExpiresIn && status == http.StatusOK {
		var m map[string]json.RawMessage
		if json.Unmarshal(out, &m) == nil {
			delete(m, "expires_in")
			if nb, err := json.Marshal(m); err == nil {
				out = nb
			}
		}
		header.Set("Content-Length", strconv.Itoa(len(out)))
	}
	copyHeader(w.Header(), header)
	w.WriteHeader(status)
	_, _ = w.Write(out)
}

// roundTrip is one request to the target, or to the local issuer, with the
// whole answer read.
func (p *FaultProxy) roundTrip(ctx context.Context, r *http.Request, body []byte) (int, http.Header, []byte, error) {
	u := *p.target
	u.Path = r.URL.Path
	u.RawQuery = r.URL.RawQuery
	out, err := http.NewRequestWithContext(ctx, r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	out.Header = r.Header.Clone()
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	out.Header.Del("Content-Length")
	if p.local != nil {
		out.RemoteAddr = r.RemoteAddr
		rec := httptest.NewRecorder()
		p.local.ServeHTTP(rec, out)
		return rec.Code, rec.Header(), rec.Body.Bytes(), nil
	}
	out.Host = ""
	resp, err := p.upstream.Do(out)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, b, nil
}

func copyHeader(dst, src http.Header) {
	for k, vs := range src {
		dst[k] = append([]string(nil), vs...)
	}
}
