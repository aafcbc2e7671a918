package flowcred

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"

	"github.com/hashicorp/vault/sdk/helper/useragent"
	"github.com/hashicorp/vault/sdk/logical"
)

// The HTTP client of token requests (tokenclient.go sends them): one
// keep-alive transport per mount, the plugin's User-Agent, no redirects
// followed (noRedirect in errors.go).

// maxResponseBytes bounds what the token client reads of an answer.
const maxResponseBytes = 1 << 20

// tokenClient is the token-endpoint client on the mount's upstream client.
func (b *backend) tokenClient() *tokenClient { return &tokenClient{http: b.httpClient} }

// newUpstreamTransport is the transport for token requests: no proxies from
// the environment are needed for loopback tests, but honour them like any
// Go client would.
func newUpstreamTransport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 16
	t.ResponseHeaderTimeout = 0 // the request context carries the timeout
	return t
}

// userAgentTransport sets the User-Agent.
type userAgentTransport struct {
	b    *backend
	next http.RoundTripper
}

func (t *userAgentTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Header.Set("User-Agent", t.b.userAgent.Load().(string))
	return t.next.RoundTrip(r)
}

// CloseIdleConnections closes the upstream transport's idle keep-alive
// connections. http.Client.CloseIdleConnections only reaches a transport
// that has this method, so without it clean (unmount, plugin reload) left
// connections to token endpoints open until their idle timeout.
func (t *userAgentTransport) CloseIdleConnections() {
	if ci, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

func userAgentString(env *logical.PluginEnvironment) string {
	return useragent.PluginString(env, pluginName+"/"+Version)
}

func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}

func decodeSegment(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}
