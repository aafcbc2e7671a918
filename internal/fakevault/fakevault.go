// Package fakevault serves the real flowcred backend, in process, behind
// the subset of Vault's HTTP API that hosts use: GET (read, with query
// parameters as data), PUT/POST (create or update, by the path's existence
// check), DELETE and LIST on /v1/<mount>/..., with X-Vault-Token checked
// against a small token table. It lets the resolver and the CLI be tested
// against the plugin's real answers without a Vault binary. Leases are
// rendered (lease_id, lease_duration, renewable) but not tracked.
//
// It is a test double, not Vault: no ACL language, no namespaces, no
// audit, no lease expiry.
package fakevault

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	flowcred "github.com/flowcred/vault-plugin-flowcred"
)

// RootToken is accepted for every path.
const RootToken = "root-token-for-tests"

// Server is a running fake Vault with the plugin mounted at Mount.
type Server struct {
	// Addr is the base URL (http://127.0.0.1:port) to use as VAULT_ADDR.
	Addr string
	// Mount is the plugin's mount path, "flowcred".
	Mount string

	srv     *httptest.Server
	backend logical.Backend
	storage logical.Storage

	mu       sync.Mutex
	tokens   map[string]func(method, path string) bool
	counts   map[string]int
	hook     func(w http.ResponseWriter, r *http.Request) bool
	leaseSeq atomic.Uint64
}

// Start serves a fresh plugin (in-memory storage) on 127.0.0.1 until the
// test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	ctx := context.Background()
	conf := &logical.BackendConfig{
		StorageView: &logical.InmemStorage{},
		System: &logical.StaticSystemView{
			DefaultLeaseTTLVal: 768 * time.Hour,
			MaxLeaseTTLVal:     768 * time.Hour,
		},
		Logger: hclog.NewNullLogger(),
	}
	b, err := flowcred.Factory(ctx, conf)
	if err != nil {
		t.Fatalf("fakevault: plugin factory: %v", err)
	}
	if err := b.Initialize(ctx, &logical.InitializationRequest{Storage: conf.StorageView}); err != nil {
		t.Fatalf("fakevault: plugin initialize: %v", err)
	}
	// As on every test mount (vaulttest.InstallPlugin): the tests force a
	// refresh with min_ttl, so back-to-back min_ttl refreshes are allowed.
	if resp, err := b.HandleRequest(ctx, &logical.Request{Operation: logical.UpdateOperation, Path: "config",
		Storage: conf.StorageView, Data: map[string]interface{}{"min_refresh_interval": 0}}); err != nil || resp.IsError() {
		t.Fatalf("fakevault: configuring the mount: %v %v", resp, err)
	}
	s := &Server{
		Mount:   "flowcred",
		backend: b,
		storage: conf.StorageView,
		tokens:  map[string]func(string, string) bool{RootToken: func(string, string) bool { return true }},
		counts:  map[string]int{},
	}
	s.srv = httptest.NewServer(s)
	s.Addr = s.srv.URL
	t.Cleanup(func() {
		s.srv.Close()
		b.Cleanup(ctx)
	})
	return s
}

// AddToken accepts token for requests that allow(method, path) permits;
// path has no /v1/ prefix (e.g. flowcred/token/google_sales). Others get 403.
func (s *Server) AddToken(token string, allow func(method, path string) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[token] = allow
}

// Hook runs before every request; when it returns true it has answered and
// the plugin is not called. Use it to block, fail or observe requests.
func (s *Server) Hook(h func(w http.ResponseWriter, r *http.Request) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = h
}

// Count returns how many requests reached path (e.g. flowcred/token/x),
// hooks included.
func (s *Server) Count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[path]
}

// Backend is the plugin backend being served, for requests a test makes
// directly (e.g. logical.HelpOperation).
func (s *Server) Backend() logical.Backend { return s.backend }

// Storage is the backend's storage.
func (s *Server) Storage() logical.Storage { return s.storage }

// Close stops the server early (to test an unreachable Vault).
func (s *Server) Close() { s.srv.Close() }

// Write performs a write as root, failing the test on an error answer.
func (s *Server) Write(t testing.TB, path string, data map[string]interface{}) *logical.Response {
	t.Helper()
	resp, err := s.handle(context.Background(), logical.UpdateOperation, path, data)
	if err != nil || (resp != nil && resp.IsError()) {
		t.Fatalf("fakevault: write %s: %v %v", path, err, resp.Error())
	}
	return resp
}

func (s *Server) handle(ctx context.Context, op logical.Operation, path string, data map[string]interface{}) (*logical.Response, error) {
	rel := strings.TrimPrefix(path, s.Mount+"/")
	req := &logical.Request{
		Operation:  op,
		Path:       rel,
		Data:       data,
		Storage:    s.storage,
		MountPoint: s.Mount + "/",
	}
	if op == logical.UpdateOperation {
		if found, exists, err := s.backend.HandleExistenceCheck(ctx, req); err != nil {
			return nil, err
		} else if found && !exists {
			req.Operation = logical.CreateOperation
		}
	}
	return s.backend.HandleRequest(ctx, req)
}

// ServeHTTP implements the Vault HTTP API subset.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/v1/")
	s.mu.Lock()
	s.counts[path]++
	hook := s.hook
	allow := s.tokens[r.Header.Get("X-Vault-Token")]
	s.mu.Unlock()
	if hook != nil && hook(w, r) {
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/v1/") {
		writeErrors(w, http.StatusNotFound, "not found")
		return
	}
	if allow == nil || !allow(r.Method, path) {
		writeErrors(w, http.StatusForbidden, "permission denied")
		return
	}
	if !strings.HasPrefix(path, s.Mount+"/") {
		writeErrors(w, http.StatusNotFound, fmt.Sprintf("no handler for route %q. route entry not found.", path))
		return
	}

	var op logical.Operation
	data := map[string]interface{}{}
	switch r.Method {
	case http.MethodGet:
		op = logical.ReadOperation
		for k, v := range r.URL.Query() {
			if k == "list" {
				if v[0] == "true" {
					op = logical.ListOperation
				}
				continue
			}
			data[k] = v[0]
		}
	case "LIST":
		op = logical.ListOperation
	case http.MethodPut, http.MethodPost:
		op = logical.UpdateOperation
		if r.ContentLength != 0 {
			dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
			if err := dec.Decode(&data); err != nil {
				writeErrors(w, http.StatusBadRequest, "failed to parse JSON input: "+err.Error())
				return
			}
		}
	case http.MethodDelete:
		op = logical.DeleteOperation
	default:
		writeErrors(w, http.StatusMethodNotAllowed, "unsupported operation")
		return
	}
	if op == logical.ListOperation && !strings.HasSuffix(path, "/") {
		path += "/"
	}

	resp, err := s.handle(r.Context(), op, path, data)
	reqForStatus := &logical.Request{Operation: op}
	status, rerr := logical.RespondErrorCommon(reqForStatus, resp, err)
	if rerr != nil && err != nil {
		// Vault's HTTP layer lets a coded error (the plugin's 502) set the status.
		logical.AdjustErrorStatusCode(&status, err)
	}
	switch {
	case rerr != nil:
		if status == 0 {
			status = http.StatusInternalServerError
		}
		writeErrors(w, status, rerr.Error())
		return
	case status == http.StatusNotFound:
		writeErrorsList(w, http.StatusNotFound, []string{})
		return
	case status != 0:
		writeErrors(w, status, "internal error")
		return
	}
	if resp == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	out := map[string]interface{}{
		"request_id":     fmt.Sprintf("req-%d", s.leaseSeq.Add(1)),
		"lease_id":       "",
		"renewable":      false,
		"lease_duration": 0,
		"data":           resp.Data,
		"wrap_info":      nil,
		"warnings":       nilIfEmpty(resp.Warnings),
		"auth":           nil,
	}
	if resp.Secret != nil {
		out["lease_id"] = fmt.Sprintf("%s/%08d", path, s.leaseSeq.Add(1))
		out["lease_duration"] = int64(resp.Secret.TTL / time.Second)
		out["renewable"] = resp.Secret.Renewable
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func nilIfEmpty(w []string) interface{} {
	if len(w) == 0 {
		return nil
	}
	return w
}

func writeErrors(w http.ResponseWriter, status int, msg string) {
	writeErrorsList(w, status, []string{msg})
}

func writeErrorsList(w http.ResponseWriter, status int, msgs []string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]interface{}{"errors": msgs})
}
