// Command oauthtest-approve is the user's browser at the OAuth2 server the
// tests use (internal/oauthtest, loopback only), for scripts/dev.sh: it
// signs in at the server's development login page and approves (or, with
// -deny, refuses) an authorization request, or a device grant's user code.
//
//	oauthtest-approve [-login alice] [-deny] [-out DIR] [-follow] AUTH_URL
//	oauthtest-approve [-login alice] [-deny] -user-code CODE VERIFICATION_URI
//
// For an authorization request it writes the redirect's code and state (or
// error) into DIR, one value per file (mode 0600, no trailing newline), so
// that a script can pass them to bindings/<h>/authorize/complete without
// printing the code; with -follow it opens the redirect as a browser does
// (a CLI's loopback listener, or Vault's public callback) and prints the
// answer's status. It never prints a code or a token.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/flowcred/vault-plugin-flowcred/internal/oauthtest"
)

func main() {
	login := flag.String("login", "", "the account to sign in as (any login works; default "+oauthtest.DefaultLogin+")")
	deny := flag.Bool("deny", false, "refuse instead of approving")
	out := flag.String("out", "", "directory to write code and state (or error) into")
	follow := flag.Bool("follow", false, "open the redirect as the browser would, and print the answer's status")
	userCode := flag.String("user-code", "", "approve this device grant user code at VERIFICATION_URI instead")
	flag.Parse()
	if err := run(flag.Args(), *login, *deny, *out, *follow, *userCode); err != nil {
		fmt.Fprintf(os.Stderr, "oauthtest-approve: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, login string, deny bool, out string, follow bool, userCode string) error {
	if len(args) != 1 {
		return errors.New("give exactly one URL (see -h)")
	}
	b := oauthtest.NewBrowser(login)
	if userCode != "" {
		if deny {
			return b.DenyDevice(args[0], userCode)
		}
		if err := b.ApproveDevice(args[0], userCode); err != nil {
			return err
		}
		fmt.Println("approved the device grant")
		return nil
	}
	if out == "" && !follow {
		return errors.New("give -out DIR, -follow, or both")
	}
	approve := b.Approve
	if deny {
		approve = b.Deny
	}
	redirect, err := approve(args[0])
	if err != nil {
		return err
	}
	u, err := url.Parse(redirect)
	if err != nil {
		return err
	}
	q := u.Query()
	if out != "" {
		for _, name := range []string{"code", "state", "error"} {
			if v := q.Get(name); v != "" {
				if err := os.WriteFile(filepath.Join(out, name), []byte(v), 0o600); err != nil {
					return err
				}
			}
		}
	}
	where := u.Scheme + "://" + u.Host + u.Path
	if e := q.Get("error"); e != "" {
		fmt.Printf("refused: the server redirected to %s with error=%s\n", where, e)
	} else {
		fmt.Printf("approved: the server redirected to %s with a code and the state\n", where)
	}
	if !follow {
		return nil
	}
	resp, err := (&http.Client{Timeout: time.Minute}).Get(redirect)
	if err != nil {
		return fmt.Errorf("following the redirect to %s: %w", where, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	fmt.Printf("%s answered %s\n", where, resp.Status)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", where, resp.Status)
	}
	return nil
}
