package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"
)

// flowcred connect HANDLE: obtain a binding's refresh token through the
// plugin (design.md, "Connecting"). The CLI never holds a token: with the
// authorization-code grant it receives the provider's redirect on a loopback
// listener (RFC 8252 section 7.3) and passes only state and code to
// bindings/<h>/authorize/complete, whose answer is the binding's status;
// with -device the plugin polls the provider itself and the CLI only
// watches the binding's status.

const connectHelp = "flowcred connect [-device] [-no-browser] [-scopes S] [-port N] [-timeout D] [-mount flowcred] HANDLE"

// connectPoll is how often -device reads the binding's status.
const connectPoll = time.Second

// connectOpts are connect's own flags.
type connectOpts struct {
	device, noBrowser bool
	scopes            string
	port              int
	timeout           time.Duration
	json              bool // -format json: the final status as JSON on stdout, the rest on stderr
}

func runConnect(args []string, stdout, stderr io.Writer) int {
	f := newFlags("connect", connectHelp)
	var o connectOpts
	f.BoolVar(&o.device, "device", false, "use the device grant (RFC 8628): print a code to enter on another device, and wait")
	f.BoolVar(&o.noBrowser, "no-browser", false, "do not try to open the authorization URL in a browser (it is always printed)")
	f.StringVar(&o.scopes, "scopes", "", "scopes to ask for, split on spaces and commas (default: the binding's)")
	f.IntVar(&o.port, "port", 0, "loopback port to receive the provider's redirect on (default: a random free port)")
	f.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up after this long")
	pos, code, ok := f.parse(args, stdout, stderr)
	if !ok {
		return code
	}
	switch {
	case len(pos) != 1:
		return usageErr(stderr, "connect", "give exactly one HANDLE")
	case !validName(pos[0]):
		return usageErr(stderr, "connect", fmt.Sprintf("%q is not a valid handle", pos[0]))
	case o.port < 0 || o.port > 65535:
		return usageErr(stderr, "connect", fmt.Sprintf("-port %d: want 0 (any free port) to 65535", o.port))
	case o.timeout <= 0:
		return usageErr(stderr, "connect", "-timeout must be positive")
	case o.device && o.port != 0:
		return usageErr(stderr, "connect", "-port is for the authorization-code flow; -device needs no listener")
	}
	c, err := newVaultClient(f)
	if err != nil {
		return failf(stderr, exitVault, "%s", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	o.json = f.json()
	cn := &connector{c: c, mount: f.mountPath(), handle: pos[0], opts: o, stdout: stdout, stderr: stderr, say: stdout}
	if o.json {
		cn.say = stderr
	}
	if o.device {
		return cn.device(ctx)
	}
	return cn.code(ctx)
}

// connector is one run of flowcred connect.
type connector struct {
	c              *api.Client
	mount, handle  string
	opts           connectOpts
	stdout, stderr io.Writer
	// say gets the instructions: stdout, or stderr with -format json.
	say io.Writer
}

func (cn *connector) path(p string) string { return cn.mount + "/bindings/" + cn.handle + p }

// request adds the optional scopes to a request body.
func (cn *connector) request(body map[string]interface{}) map[string]interface{} {
	if cn.opts.scopes != "" {
		body["scopes"] = cn.opts.scopes
	}
	return body
}

// vaultFail prints a failed Vault request and returns its exit code.
func (cn *connector) vaultFail(what string, err error) int {
	ve := describeVaultErr(cn.c, what, err)
	return failf(cn.stderr, ve.code, "%s", ve.msg)
}

// callbackResult is what the loopback listener received.
type callbackResult struct {
	code int    // exit code
	msg  string // for stderr when code is not exitOK
}

// code runs the authorization-code flow with a loopback redirect.
func (cn *connector) code(ctx context.Context) int {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", cn.opts.port))
	if err != nil {
		return failf(cn.stderr, exitUsage, "listening on 127.0.0.1:%d for the provider's redirect: %s", cn.opts.port, err)
	}
	defer ln.Close()
	redirect := fmt.Sprintf("http://127.0.0.1:%d/callback", ln.Addr().(*net.TCPAddr).Port)
	sec, err := write(cn.c, cn.path("/authorize"), cn.request(map[string]interface{}{"redirect_uri": redirect}))
	if err != nil {
		return cn.vaultFail("bindings/"+cn.handle+"/authorize", err)
	}
	state, authURL := connectData(sec, "state"), connectData(sec, "auth_url")
	if state == "" || authURL == "" {
		return failf(cn.stderr, exitVault, "bindings/%s/authorize answered no state or auth_url: is the plugin at %s a flowcred with connect?", cn.handle, cn.mount)
	}
	results := make(chan callbackResult, 1)
	srv := &http.Server{
		Handler:           cn.callbackHandler(state, results),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx) // lets the browser's page be sent
	}()

	fmt.Fprintf(cn.say, "To connect %s, open this URL in a browser and approve:\n\n  %s\n\n", cn.handle, authURL)
	if !cn.opts.noBrowser && openBrowser(authURL) {
		fmt.Fprintln(cn.say, "(A browser was asked to open it.)")
	}
	fmt.Fprintf(cn.say, "Waiting for the provider to redirect to %s (until %s; Ctrl-C to stop)...\n", redirect, connectData(sec, "expires_at"))
	select {
	case r := <-results:
		if r.code != exitOK {
			return failf(cn.stderr, r.code, "%s", r.msg)
		}
	case <-ctx.Done():
		return failf(cn.stderr, exitInvalid, "not connected: %s before the provider redirected back (start again)", connectDone(ctx))
	}
	return cn.finish()
}

// callbackHandler answers the provider's redirect: only a request carrying
// state is acted on, once; its code goes to authorize/complete and the
// browser gets a small page that never shows a token or the code.
func (cn *connector) callbackHandler(state string, results chan<- callbackResult) http.Handler {
	var handled atomic.Bool
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		q := r.URL.Query()
		if q.Get("state") != state {
			connectPage(w, http.StatusBadRequest, "Not connected", "This is not the redirect flowcred connect is waiting for (its state does not match).")
			return
		}
		if !handled.CompareAndSwap(false, true) {
			connectPage(w, http.StatusBadRequest, "Already handled", "flowcred connect already received this redirect.")
			return
		}
		res := cn.completeFromRedirect(state, q)
		if res.code == exitOK {
			connectPage(w, http.StatusOK, "Connected", fmt.Sprintf("Handle %s is connected. You can close this page.", cn.handle))
		} else {
			connectPage(w, http.StatusBadRequest, "Not connected", res.msg)
		}
		results <- res
	})
}

// completeFromRedirect passes the redirect's state and code to the plugin.
func (cn *connector) completeFromRedirect(state string, q url.Values) callbackResult {
	if perr := q.Get("error"); perr != "" {
		desc := connectLine(q.Get("error_description"), 200)
		if desc != "" {
			desc = " (" + desc + ")"
		}
		return callbackResult{exitInvalid, fmt.Sprintf("not connected: the provider answered %s%s", connectLine(perr, 64), desc)}
	}
	code := q.Get("code")
	if code == "" {
		return callbackResult{exitInvalid, "not connected: the provider's redirect carries neither a code nor an error"}
	}
	if _, err := write(cn.c, cn.path("/authorize/complete"), map[string]interface{}{"state": state, "code": code}); err != nil {
		ve := describeVaultErr(cn.c, "bindings/"+cn.handle+"/authorize/complete", err)
		return callbackResult{ve.code, "not connected: " + strings.ReplaceAll(ve.msg, code, "[code]")}
	}
	return callbackResult{exitOK, ""}
}

// device runs the device grant: the plugin polls the provider; this watches
// the binding's status until it is ok, the grant failed, or it expired.
func (cn *connector) device(ctx context.Context) int {
	sec, err := write(cn.c, cn.path("/device"), cn.request(map[string]interface{}{}))
	if err != nil {
		return cn.vaultFail("bindings/"+cn.handle+"/device", err)
	}
	userCode, verify := connectData(sec, "user_code"), connectData(sec, "verification_uri")
	if userCode == "" || verify == "" {
		return failf(cn.stderr, exitVault, "bindings/%s/device answered no user_code or verification_uri", cn.handle)
	}
	expires, _ := time.Parse(time.RFC3339, connectData(sec, "expires_at"))
	fmt.Fprintf(cn.say, "To connect %s, open\n\n  %s\n\nand enter the code\n\n  %s\n\n", cn.handle, verify, userCode)
	if full := connectData(sec, "verification_uri_complete"); full != "" {
		fmt.Fprintf(cn.say, "(or open %s)\n", full)
	}
	fmt.Fprintf(cn.say, "Waiting for the approval (until %s; Ctrl-C to stop)...\n", connectData(sec, "expires_at"))
	tick := time.NewTicker(connectPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return failf(cn.stderr, exitInvalid, "not connected: %s while waiting for the approval (the plugin keeps polling until %s)", connectDone(ctx), connectData(sec, "expires_at"))
		case <-tick.C:
		}
		st, code := cn.status()
		if code != exitOK {
			return code
		}
		// A grant that ends without a token puts the health back as it was
		// (ok, for a reconnect) and records why in last_error; a connect
		// starts the status afresh.
		switch h, lastErr := connectField(st, "health"), connectField(st, "last_error"); {
		case h == "pending_authorization" && !expires.IsZero() && time.Now().After(expires.Add(30*time.Second)):
			return failf(cn.stderr, exitInvalid, "not connected: the device code expired at %s", expires.UTC().Format(time.RFC3339))
		case h == "pending_authorization":
		case strings.HasPrefix(lastErr, "device grant") || h != "ok":
			return failf(cn.stderr, exitInvalid, "not connected: the device grant ended with %s: %s (health %s)", connectField(st, "last_error_code"), connectLine(lastErr, 300), h)
		default:
			return cn.finish()
		}
	}
}

// status reads the binding's status.
func (cn *connector) status() (map[string]interface{}, int) {
	sec, err := read(cn.c, cn.mount+"/bindings/"+cn.handle)
	if err != nil {
		return nil, cn.vaultFail("bindings/"+cn.handle, err)
	}
	if sec == nil {
		return nil, failf(cn.stderr, exitInvalid, "no binding for handle %q", cn.handle)
	}
	st, _ := sec.Data["status"].(map[string]interface{})
	return st, exitOK
}

// finish reports the binding's status after a connect; 0 when it is ok.
func (cn *connector) finish() int {
	st, code := cn.status()
	if code != exitOK {
		return code
	}
	if h := connectField(st, "health"); h != "ok" {
		return failf(cn.stderr, exitInvalid, "handle %s was connected but its health is %s: %s", cn.handle, h, connectLine(connectField(st, "last_error"), 300))
	}
	if cn.opts.json {
		b, _ := json.MarshalIndent(map[string]interface{}{"handle": cn.handle, "connected": true, "status": st}, "", "  ")
		fmt.Fprintln(cn.stdout, string(b))
		return exitOK
	}
	line := fmt.Sprintf("Connected: handle %s is ok", cn.handle)
	if scopes, ok := st["granted_scopes"].([]interface{}); ok && len(scopes) > 0 {
		names := make([]string, len(scopes))
		for i, s := range scopes {
			names[i] = fmt.Sprint(s)
		}
		line += " (granted scopes: " + strings.Join(names, " ") + ")"
	}
	fmt.Fprintf(cn.stdout, "%s; read it with vault read %s/token/%s\n", line, cn.mount, cn.handle)
	return exitOK
}

// openBrowser asks the desktop to open u, and reports whether it could
// start the opener. It never fails the command: the URL is printed anyway.
// On Linux and the BSDs it needs a graphical session (DISPLAY or
// WAYLAND_DISPLAY), so that xdg-open does not start a text browser in this
// terminal.
func openBrowser(u string) bool {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", u)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", u)
	default:
		if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
			return false
		}
		cmd = exec.Command("xdg-open", u)
	}
	if err := cmd.Start(); err != nil {
		return false
	}
	go func() { _ = cmd.Wait() }()
	return true
}

// connectPage answers the browser with a small HTML page.
func connectPage(w http.ResponseWriter, status int, title, text string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!doctype html><html><head><meta charset=\"utf-8\"><title>flowcred: %s</title></head><body><h1>%s</h1><p>%s</p></body></html>\n",
		html.EscapeString(title), html.EscapeString(title), html.EscapeString(text))
}

func connectDone(ctx context.Context) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return "-timeout passed"
	}
	return "interrupted"
}

// connectData is a string field of an answer's data.
func connectData(sec *api.Secret, k string) string {
	if sec == nil {
		return ""
	}
	return connectField(sec.Data, k)
}

func connectField(m map[string]interface{}, k string) string {
	s, _ := m[k].(string)
	return s
}

// connectLine collapses whitespace and bounds s (text from a provider).
func connectLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}
