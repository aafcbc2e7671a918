package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/flowcred/vault-plugin-flowcred/resolver"
)

func cmdToken(args []string, stdout, stderr io.Writer) int {
	f := newFlags("token", "flowcred token [-mount flowcred] [-show-token] [-format text|json] HANDLE")
	show := f.Bool("show-token", false, "also print the access token (and header values)")
	pos, code, ok := f.parse(args, stdout, stderr)
	if !ok {
		return code
	}
	switch {
	case len(pos) != 1:
		return usageErr(stderr, "token", "give exactly one HANDLE")
	case !validName(pos[0]):
		return usageErr(stderr, "token", fmt.Sprintf("%q is not a valid handle", pos[0]))
	}
	handle := pos[0]
	c, err := newVaultClient(f)
	if err != nil {
		return failf(stderr, exitVault, "%s", err)
	}
	p, err := resolver.NewVault(resolver.WithClient(c), resolver.WithMount(f.mountPath()))
	if err != nil {
		return failf(stderr, exitUsage, "%s", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	m, err := p.Resolve(ctx, handle)
	if err != nil {
		code := exitVault
		if errors.Is(err, resolver.ErrNotFound) || errors.Is(err, resolver.ErrNeedsReauth) || errors.Is(err, resolver.ErrMisconfigured) {
			code = exitInvalid
		}
		var re *resolver.Error
		if errors.As(err, &re) && re.StatusCode == 404 && !unboundHandle(re.Messages) {
			code = exitVault // Vault's own 404: nothing mounted there
		}
		return failf(stderr, code, "%s", err)
	}
	for _, w := range m.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", strings.Join(strings.Fields(w), " "))
	}
	now := time.Now()
	if f.json() {
		out := map[string]interface{}{
			"handle":         m.Handle,
			"kind":           m.Kind,
			"token_type":     m.TokenType,
			"header_names":   m.HeaderNames(),
			"lease_id":       m.LeaseID,
			"lease_duration": int64(m.LeaseDuration / time.Second),
		}
		if !m.ExpiresAt.IsZero() {
			out["expires_at"] = m.ExpiresAt.UTC().Format(time.RFC3339)
			out["expires_in"] = int64(m.ExpiresAt.Sub(now) / time.Second)
		}
		if *show {
			out["access_token"] = m.AccessToken
			out["headers"] = m.Headers
		}
		b, _ := json.MarshalIndent(out, "", "  ")
		fmt.Fprintln(stdout, string(b))
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("handle", m.Handle)
	row("kind", m.Kind)
	if m.TokenType == "" {
		row("token_type", "(none: the bare token)")
	} else {
		row("token_type", m.TokenType)
	}
	if m.ExpiresAt.IsZero() {
		row("expires_at", "(no expiry)")
	} else {
		row("expires_at", m.ExpiresAt.UTC().Format(time.RFC3339))
		row("expires_in", fmt.Sprintf("%ds", int64(m.ExpiresAt.Sub(now)/time.Second)))
	}
	row("headers", strings.Join(m.HeaderNames(), ", "))
	row("lease_id", m.LeaseID)
	row("lease_duration", fmt.Sprintf("%ds (%s)", int64(m.LeaseDuration/time.Second), m.LeaseDuration))
	if *show {
		row("access_token", m.AccessToken)
		for _, h := range m.HeaderNames() {
			row("header "+h, m.Headers[h])
		}
	} else {
		row("access_token", "(hidden; -show-token prints it)")
	}
	_ = tw.Flush()
	return exitOK
}

// unboundHandle reports whether a 404 is the plugin's "no binding for
// handle" (docs/errors.md) rather than Vault's own.
func unboundHandle(msgs []string) bool {
	for _, m := range msgs {
		if strings.HasPrefix(strings.TrimSpace(m), "no binding for handle") {
			return true
		}
	}
	return false
}
