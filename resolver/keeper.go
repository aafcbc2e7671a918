package resolver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"
)

// backgroundLoginTimeout bounds the login the watcher starts by itself when
// the token nears its end (a read's login uses the read's context).
const backgroundLoginTimeout = 30 * time.Second

// keeper looks after the provider's own Vault token. Renewal and the
// renewal schedule are vault/api's LifetimeWatcher; the keeper only decides
// when to log in again and whether a 403 means the token has ended.
//
// It decides that a token has ended, in this order: its known end has
// passed (the login's or lookup's TTL, moved by each renewal the watcher
// reports); otherwise, auth/token/lookup-self answers 401 or 403 with it.
// lookup-self is in Vault's default policy; a token created without the
// default policy cannot look itself up, so without WithAuth its 403s are
// reported as ErrVaultTokenExpired. With WithAuth, a 403 that is still
// answered right after a new login is ErrPermissionDenied: a fresh token
// has not expired.
type keeper struct {
	client *api.Client
	// method logs in; nil means the client's token is never replaced.
	method api.AuthMethod
	// renew: run a LifetimeWatcher on the token (always with method).
	renew bool

	// mu serializes logins and the first lookup; it is held across that
	// Vault request, never by a token read.
	mu sync.Mutex
	// cur is the token in use; replaced, never modified, by a login.
	cur atomic.Pointer[tokenLife]
	// failedAt and failErr are the last failed login, so that reads that
	// waited for it get its answer instead of logging in again. Guarded by mu.
	failedAt time.Time
	failErr  error
	// closed is closed by Close: no more watchers or logins.
	closed    chan struct{}
	closeOnce sync.Once
}

// tokenLife is one token's watch.
type tokenLife struct {
	// gen counts logins; a caller that saw gen logs in only if no one
	// else has since.
	gen uint64
	// end is the token's known end in Unix nanoseconds, 0 when unknown.
	end atomic.Int64
	// ended is closed when the watcher has stopped (the token is near its
	// end, or Close); nil when no watcher runs.
	ended chan struct{}
	stop  chan struct{}
}

func newKeeper() *keeper { return &keeper{closed: make(chan struct{})} }

func (l *tokenLife) watchEnded() bool {
	if l == nil || l.ended == nil {
		return false
	}
	select {
	case <-l.ended:
		return true
	default:
		return false
	}
}

// pastEnd reports whether the token's known end has passed.
func (l *tokenLife) pastEnd(now time.Time) bool {
	if l == nil {
		return false
	}
	e := l.end.Load()
	return e != 0 && now.UnixNano() >= e
}

// ready makes sure a token is in place before a read: the first login (or,
// with WithTokenRenewal, the first lookup), and a new login when the
// watcher has ended or the token's end has passed. It returns the token's
// life as the read will use it.
func (k *keeper) ready(ctx context.Context) (*tokenLife, error) {
	l := k.cur.Load()
	if k.isClosed() {
		return l, nil // reads go on with the current token
	}
	if k.method == nil {
		if l == nil && k.renew {
			k.watchExisting(ctx)
			l = k.cur.Load()
		}
		return l, nil
	}
	if l != nil && !l.watchEnded() && !l.pastEnd(time.Now()) {
		return l, nil
	}
	var gen uint64
	if l != nil {
		gen = l.gen
	}
	if err := k.login(ctx, gen); err != nil {
		return l, err
	}
	return k.cur.Load(), nil
}

// login logs in with the method unless someone has since the caller saw
// generation seen. A login that failed while the caller waited answers it.
func (k *keeper) login(ctx context.Context, seen uint64) error {
	asked := time.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	if l := k.cur.Load(); l != nil && l.gen != seen {
		return nil
	}
	if !k.failedAt.Before(asked) {
		return k.failErr
	}
	if k.isClosed() {
		return errors.New("resolver: provider closed")
	}
	sec, err := k.client.Auth().Login(ctx, k.method)
	if err == nil && (sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "") {
		err = errors.New("the auth method returned no token")
	}
	if err != nil {
		k.failedAt, k.failErr = time.Now(), fmt.Errorf("logging in to Vault: %w", err)
		return k.failErr
	}
	k.failErr = nil
	k.start(sec, asked, seen+1)
	return nil
}

// watchExisting looks the client's token up and watches it (WithTokenRenewal).
// A failed lookup leaves the token unwatched; reads go on with it.
func (k *keeper) watchExisting(ctx context.Context) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cur.Load() != nil {
		return
	}
	asked := time.Now()
	look, err := k.client.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil || look == nil {
		k.cur.Store(&tokenLife{gen: 1})
		return
	}
	id, _ := look.TokenID()
	ttl, _ := look.TokenTTL()
	renewable, _ := look.TokenIsRenewable()
	k.start(&api.Secret{Auth: &api.SecretAuth{ClientToken: id, Renewable: renewable, LeaseDuration: int(ttl / time.Second)}}, asked, 1)
}

// start records a new token and, when it has an end, runs a watcher on it.
// Called with mu held.
func (k *keeper) start(sec *api.Secret, at time.Time, gen uint64) {
	l := &tokenLife{gen: gen}
	if d := time.Duration(sec.Auth.LeaseDuration) * time.Second; d > 0 {
		l.end.Store(at.Add(d).UnixNano())
	}
	var w *api.LifetimeWatcher
	if l.end.Load() != 0 && k.renew && !k.isClosed() { // a token without a TTL needs no watch
		var err error
		if w, err = k.client.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: sec}); err == nil {
			l.ended, l.stop = make(chan struct{}), make(chan struct{})
		} else {
			w = nil
		}
	}
	// l is complete before it is published: readers never lock.
	if old := k.cur.Swap(l); old != nil && old.stop != nil {
		close(old.stop)
	}
	if w != nil {
		go w.Start()
		go k.watch(w, l)
	}
}

func (k *keeper) isClosed() bool {
	select {
	case <-k.closed:
		return true
	default:
		return false
	}
}

// watch follows one watcher: renewals move the token's known end; when the
// watcher is done (Vault stopped extending the token, which is now within
// its last 10-20%), the keeper logs in again at once if it can.
func (k *keeper) watch(w *api.LifetimeWatcher, l *tokenLife) {
	defer close(l.ended)
	defer w.Stop()
	for {
		select {
		case r := <-w.RenewCh():
			if r != nil && r.Secret != nil && r.Secret.Auth != nil && r.Secret.Auth.LeaseDuration > 0 {
				l.end.Store(r.RenewedAt.Add(time.Duration(r.Secret.Auth.LeaseDuration) * time.Second).UnixNano())
			}
		case <-w.DoneCh():
			if k.method != nil {
				ctx, cancel := context.WithTimeout(context.Background(), backgroundLoginTimeout)
				_ = k.login(ctx, l.gen) // a failure is retried by the next read
				cancel()
			}
			return
		case <-l.stop:
			return
		case <-k.closed:
			return
		}
	}
}

// tokenEnded reports whether a 403 for a read made with life l came from
// the token having ended (see keeper).
func (k *keeper) tokenEnded(ctx context.Context, l *tokenLife) bool {
	if l.pastEnd(time.Now()) {
		return true
	}
	_, err := k.client.Auth().Token().LookupSelfWithContext(ctx)
	var re *api.ResponseError
	return errors.As(err, &re) && (re.StatusCode == http.StatusForbidden || re.StatusCode == http.StatusUnauthorized)
}

func (k *keeper) close() {
	k.closeOnce.Do(func() { close(k.closed) })
}

// Close stops watching and renewing the provider's Vault token (WithAuth,
// WithTokenRenewal). Reads still work afterwards, with the current token and
// without new logins. It always returns nil.
func (p *VaultProvider) Close() error {
	p.keeper.close()
	return nil
}
