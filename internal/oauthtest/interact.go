// Driving the server's development login and consent pages
// (oidc-provider's devInteractions) and its device page like a user's
// browser, for the connect flows.

package oauthtest

import (
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// DefaultLogin is the account a Browser signs in as when its Login is empty.
const DefaultLogin = "alice"

// maxSteps bounds the pages and redirects of one walk through the pages.
const maxSteps = 25

// Browser is a user's browser at the test server: a cookie jar, redirects
// followed on the server's own origin only. The development login page
// accepts any login and password; the login becomes the account id (the
// `sub`), which Server.RevokeAccount names. A Browser keeps its session
// (cookies) across calls, as a browser does; use a new one for a new user.
type Browser struct {
	// Login is the account that signs in; "" is DefaultLogin.
	Login  string
	client *http.Client
}

// NewBrowser returns a browser that signs in as login ("" is DefaultLogin).
func NewBrowser(login string) *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{Login: login, client: &http.Client{
		Jar:     jar,
		Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // each redirect is looked at before it is followed
		},
	}}
}

// Approve opens authURL (an authorization request to the test server),
// signs in, consents, and returns the URL the server sends the browser back
// to: the client's redirect URI with code and state in its query. It does
// not open that URL; the caller does (or takes code and state from it).
func Approve(authURL string) (string, error) { return NewBrowser("").Approve(authURL) }

// Deny is Approve where the user signs in and then refuses (the consent
// page's Cancel): the redirect URI it returns carries error=access_denied
// and the state.
func Deny(authURL string) (string, error) { return NewBrowser("").Deny(authURL) }

// ApproveDevice enters userCode at the server's device page, confirms it,
// signs in and consents, as the user of a device grant does.
func (s *Server) ApproveDevice(userCode string) error {
	return NewBrowser("").ApproveDevice(s.DeviceURL, userCode)
}

// DenyDevice enters userCode at the server's device page and aborts: the
// device grant then ends with access_denied.
func (s *Server) DenyDevice(userCode string) error {
	return NewBrowser("").DenyDevice(s.DeviceURL, userCode)
}

// Approve is the package's Approve as b's user.
func (b *Browser) Approve(authURL string) (string, error) { return b.authorize(authURL, true) }

// Deny is the package's Deny as b's user.
func (b *Browser) Deny(authURL string) (string, error) { return b.authorize(authURL, false) }

// ApproveDevice is Server.ApproveDevice at verificationURI (a device
// authorization's verification_uri) as b's user.
func (b *Browser) ApproveDevice(verificationURI, userCode string) error {
	return b.device(verificationURI, userCode, true)
}

// DenyDevice is Server.DenyDevice at verificationURI as b's user.
func (b *Browser) DenyDevice(verificationURI, userCode string) error {
	return b.device(verificationURI, userCode, false)
}

func (b *Browser) login() string {
	if b.Login == "" {
		return DefaultLogin
	}
	return b.Login
}

// authorize walks from authURL through login and consent (or its refusal)
// to the redirect that leaves the server.
func (b *Browser) authorize(authURL string, approve bool) (string, error) {
	start, err := loopbackURL(authURL)
	if err != nil {
		return "", err
	}
	req, _ := http.NewRequest(http.MethodGet, start.String(), nil)
	for step := 0; step < maxSteps; step++ {
		resp, body, err := b.do(req)
		if err != nil {
			return "", err
		}
		if loc, ok := redirect(resp); ok {
			if !sameOrigin(loc, start) {
				return loc.String(), nil
			}
			req, _ = http.NewRequest(http.MethodGet, loc.String(), nil)
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return "", pageError("authorization", resp, body)
		}
		p := parsePage(resp.Request.URL, body)
		switch {
		case p.hidden["prompt"] == "login":
			req, err = p.post(url.Values{"login": {b.login()}, "password": {"any"}})
		case p.hidden["prompt"] == "consent" && approve:
			req, err = p.post(nil)
		case p.hidden["prompt"] == "consent":
			req, err = p.get(p.abort)
		default:
			return "", fmt.Errorf("oauthtest: unexpected page at %s: %q", resp.Request.URL.Path, p.title)
		}
		if err != nil {
			return "", err
		}
	}
	return "", fmt.Errorf("oauthtest: no redirect out of %s after %d steps", start.Host, maxSteps)
}

// device walks the device page: the user code, its confirmation (or abort),
// then login and consent, to the success page.
func (b *Browser) device(verificationURI, userCode string, approve bool) error {
	start, err := loopbackURL(verificationURI)
	if err != nil {
		return err
	}
	u := *start
	q := u.Query()
	q.Set("user_code", userCode)
	u.RawQuery = q.Encode()
	req, _ := http.NewRequest(http.MethodGet, u.String(), nil)
	for step := 0; step < maxSteps; step++ {
		resp, body, err := b.do(req)
		if err != nil {
			return err
		}
		if loc, ok := redirect(resp); ok {
			if !sameOrigin(loc, start) {
				return fmt.Errorf("oauthtest: the device page sent the browser off the server, to %s", loc.Host)
			}
			req, _ = http.NewRequest(http.MethodGet, loc.String(), nil)
			continue
		}
		p := parsePage(resp.Request.URL, body)
		switch {
		case strings.Contains(body, "Sign-in Success"):
			if !approve {
				return errors.New("oauthtest: the device grant was approved although DenyDevice was asked")
			}
			return nil
		case strings.Contains(body, "request was interrupted") && !approve:
			return nil
		case resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusBadRequest:
			return pageError("device", resp, body)
		case strings.Contains(body, "code you entered is incorrect"):
			return fmt.Errorf("oauthtest: the device page does not know user code %q (expired or already used?)", userCode)
		case p.title == "Submitting Callback" || p.formID == "op.deviceInputForm":
			req, err = p.post(nil) // the page posts the user code itself
		case p.formID == "op.deviceConfirmForm" && approve:
			req, err = p.post(nil)
		case p.formID == "op.deviceConfirmForm":
			req, err = p.post(url.Values{"abort": {"yes"}})
		case p.hidden["prompt"] == "login":
			req, err = p.post(url.Values{"login": {b.login()}, "password": {"any"}})
		case p.hidden["prompt"] == "consent":
			req, err = p.post(nil)
		default:
			return pageError("device", resp, body)
		}
		if err != nil {
			return err
		}
	}
	return fmt.Errorf("oauthtest: the device page did not finish after %d steps", maxSteps)
}

func (b *Browser) do(req *http.Request) (*http.Response, string, error) {
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("oauthtest: %s %s: %w", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, "", fmt.Errorf("oauthtest: %s %s: %w", req.Method, req.URL.Path, err)
	}
	return resp, string(raw), nil
}

// redirect returns a redirect's target, resolved against the request.
func redirect(resp *http.Response) (*url.URL, bool) {
	if resp.StatusCode < 300 || resp.StatusCode > 399 {
		return nil, false
	}
	loc, err := resp.Location()
	return loc, err == nil
}

func sameOrigin(a, b *url.URL) bool { return a.Scheme == b.Scheme && a.Host == b.Host }

// loopbackURL parses raw and refuses anything but http(s) on a loopback
// host: the pages are only ever the test server's.
func loopbackURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("oauthtest: %q is not an http URL", raw)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("oauthtest: %s is not a loopback host; the browser only visits the test server", host)
	}
	return u, nil
}

func pageError(what string, resp *http.Response, body string) error {
	text := strings.Join(strings.Fields(tagRE.ReplaceAllString(body, " ")), " ")
	if len(text) > 300 {
		text = text[:300] + "..."
	}
	return fmt.Errorf("oauthtest: %s page %s answered %s: %s", what, resp.Request.URL.Path, resp.Status, text)
}

// page is the part of an HTML page the walk needs: its title, its first
// form (action, id, hidden inputs) and its Cancel link.
type page struct {
	base          *url.URL
	title, formID string
	action        string
	hidden        map[string]string
	abort         string
}

var (
	tagRE   = regexp.MustCompile(`<[^>]*>`)
	titleRE = regexp.MustCompile(`(?s)<title>(.*?)</title>`)
	formRE  = regexp.MustCompile(`(?s)<form\b[^>]*>`)
	inputRE = regexp.MustCompile(`(?s)<input\b[^>]*>`)
	attrRE  = regexp.MustCompile(`([a-zA-Z_:.-]+)="([^"]*)"`)
	abortRE = regexp.MustCompile(`href="([^"]*/abort)"`)
)

func attrs(tag string) map[string]string {
	out := map[string]string{}
	for _, m := range attrRE.FindAllStringSubmatch(tag, -1) {
		out[strings.ToLower(m[1])] = html.UnescapeString(m[2])
	}
	return out
}

func parsePage(base *url.URL, body string) *page {
	p := &page{base: base, hidden: map[string]string{}}
	if m := titleRE.FindStringSubmatch(body); m != nil {
		p.title = strings.TrimSpace(html.UnescapeString(m[1]))
	}
	if m := abortRE.FindStringSubmatch(body); m != nil {
		p.abort = html.UnescapeString(m[1])
	}
	loc := formRE.FindStringIndex(body)
	if loc == nil {
		return p
	}
	fa := attrs(body[loc[0]:loc[1]])
	p.action, p.formID = fa["action"], fa["id"]
	rest := body[loc[1]:]
	if end := strings.Index(rest, "</form>"); end >= 0 {
		rest = rest[:end]
	}
	for _, tag := range inputRE.FindAllString(rest, -1) {
		a := attrs(tag)
		if a["type"] == "hidden" && a["name"] != "" {
			p.hidden[a["name"]] = a["value"]
		}
	}
	return p
}

// post submits the page's form: its hidden inputs plus extra.
func (p *page) post(extra url.Values) (*http.Request, error) {
	if p.action == "" {
		return nil, fmt.Errorf("oauthtest: page %s (%q) has no form", p.base.Path, p.title)
	}
	target, err := p.base.Parse(p.action)
	if err != nil {
		return nil, fmt.Errorf("oauthtest: form action %q: %w", p.action, err)
	}
	form := url.Values{}
	for k, v := range p.hidden {
		form.Set(k, v)
	}
	for k, v := range extra {
		form[k] = v
	}
	req, err := http.NewRequest(http.MethodPost, target.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req, nil
}

// get follows a link of the page.
func (p *page) get(link string) (*http.Request, error) {
	if link == "" {
		return nil, fmt.Errorf("oauthtest: page %s (%q) has no such link", p.base.Path, p.title)
	}
	target, err := p.base.Parse(link)
	if err != nil {
		return nil, err
	}
	return http.NewRequest(http.MethodGet, target.String(), nil)
}
