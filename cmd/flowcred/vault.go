package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/cliconfig"
)

// requestTimeout bounds each Vault request of the CLI.
const requestTimeout = 60 * time.Second

// vaultError is a failed Vault request with the exit code it maps to.
type vaultError struct {
	code int
	msg  string
}

func (e *vaultError) Error() string { return e.msg }

// newVaultClient builds a client the way the vault CLI does: api.DefaultConfig
// reads VAULT_ADDR, VAULT_CACERT, VAULT_MAX_RETRIES, ...; NewClient reads
// VAULT_TOKEN and VAULT_NAMESPACE; -address and -namespace override them.
// Without VAULT_TOKEN the token comes from the vault CLI's token helper
// (vault/api's cliconfig: the token_helper of ~/.vault or
// $VAULT_CONFIG_PATH, by default the file ~/.vault-token that vault login
// writes).
func newVaultClient(f *commandFlags) (*api.Client, error) {
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, &vaultError{exitVault, "Vault configuration from VAULT_* variables: " + cfg.Error.Error()}
	}
	if *f.address != "" {
		cfg.Address = *f.address
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, &vaultError{exitVault, "creating the Vault client: " + err.Error()}
	}
	if *f.namespace != "" {
		c.SetNamespace(*f.namespace)
	}
	if c.Token() == "" {
		helper, err := cliconfig.DefaultTokenHelper()
		if err != nil {
			return nil, &vaultError{exitVault, "VAULT_TOKEN is not set, and the vault CLI's token helper configuration cannot be read: " + err.Error()}
		}
		tok, err := helper.Get()
		if err != nil {
			return nil, &vaultError{exitVault, "VAULT_TOKEN is not set, and the vault CLI's token helper failed: " + err.Error()}
		}
		c.SetToken(strings.TrimSpace(tok))
	}
	if c.Token() == "" {
		return nil, &vaultError{exitVault, "VAULT_TOKEN is not set and the vault CLI's token helper has no token (~/.vault-token): export VAULT_TOKEN or run `vault login`"}
	}
	return c, nil
}

// describeVaultErr renders a failed request on one line and picks the exit
// code: a 400 from the plugin is the caller's input (exitInvalid); anything
// else means Vault could not serve the request (exitVault).
func describeVaultErr(c *api.Client, what string, err error) *vaultError {
	var re *api.ResponseError
	if errors.As(err, &re) {
		msgs := make([]string, 0, len(re.Errors))
		for _, m := range re.Errors {
			if m = strings.Join(strings.Fields(strings.ReplaceAll(m, "1 error occurred:", "")), " "); m != "" {
				msgs = append(msgs, strings.TrimPrefix(m, "* "))
			}
		}
		detail := strings.Join(msgs, "; ")
		if detail == "" {
			detail = http.StatusText(re.StatusCode)
		}
		code := exitVault
		if re.StatusCode == http.StatusBadRequest {
			code = exitInvalid
		}
		hint := ""
		switch re.StatusCode {
		case http.StatusForbidden:
			hint = " (check VAULT_TOKEN and its policy)"
		case http.StatusNotFound:
			hint = " (is the flowcred plugin mounted there? see -mount)"
		}
		return &vaultError{code, fmt.Sprintf("%s: Vault answered %d: %s%s", what, re.StatusCode, detail, hint)}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &vaultError{exitVault, fmt.Sprintf("%s: Vault at %s did not answer in time", what, c.Address())}
	}
	return &vaultError{exitVault, fmt.Sprintf("%s: cannot reach Vault at %s: %s", what, c.Address(), rootCause(err))}
}

// rootCause strips the retry and URL wrappers off a transport error, so
// that the line says what went wrong (connection refused, no such host, ...).
func rootCause(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && i+2 < len(s) {
		tail := s[i+2:]
		if strings.Contains(s, "dial tcp") || strings.Contains(s, "lookup ") {
			return tail
		}
	}
	return strings.Join(strings.Fields(s), " ")
}

func withTimeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), requestTimeout)
}

// read reads a path; a missing entry is nil, nil.
func read(c *api.Client, path string) (*api.Secret, error) {
	ctx, cancel := withTimeout()
	defer cancel()
	return c.Logical().ReadWithContext(ctx, path)
}

// write writes a path.
func write(c *api.Client, path string, data map[string]interface{}) (*api.Secret, error) {
	ctx, cancel := withTimeout()
	defer cancel()
	return c.Logical().WriteWithContext(ctx, path, data)
}

// list lists a path's keys; a missing path is an empty list.
func list(c *api.Client, path string) ([]string, error) {
	ctx, cancel := withTimeout()
	defer cancel()
	sec, err := c.Logical().ListWithContext(ctx, path)
	if err != nil || sec == nil || sec.Data == nil {
		return nil, err
	}
	raw, _ := sec.Data["keys"].([]interface{})
	out := make([]string, 0, len(raw))
	for _, k := range raw {
		if s, ok := k.(string); ok {
			out = append(out, s)
		}
	}
	return out, nil
}

// remove deletes a path.
func remove(c *api.Client, path string) (*api.Secret, error) {
	ctx, cancel := withTimeout()
	defer cancel()
	return c.Logical().DeleteWithContext(ctx, path)
}
