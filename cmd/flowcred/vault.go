package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
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
// VAULT_TOKEN and VAULT_NAMESPACE; without VAULT_TOKEN, ~/.vault-token (the
// default token helper's file) is used.
func newVaultClient() (*api.Client, error) {
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, &vaultError{exitVault, "Vault configuration from VAULT_* variables: " + cfg.Error.Error()}
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, &vaultError{exitVault, "creating the Vault client: " + err.Error()}
	}
	if c.Token() == "" {
		if home, err := os.UserHomeDir(); err == nil {
			if b, err := os.ReadFile(filepath.Join(home, ".vault-token")); err == nil {
				c.SetToken(strings.TrimSpace(string(b)))
			}
		}
	}
	if c.Token() == "" {
		return nil, &vaultError{exitVault, "VAULT_TOKEN is not set and ~/.vault-token does not exist: export VAULT_TOKEN or run `vault login`"}
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
