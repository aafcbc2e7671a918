package flowcred

import (
	"context"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"
)

// Binding writes: merge, check, and store unless it is a dry run or
// changes nothing (binding_diff.go says what changes).

func (b *backend) pathBindingWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	handle := d.Get("handle").(string)
	d, dryRun, ferr := bindingWriteInput(d)
	if ferr != nil {
		return ferr.response(), nil
	}
	w, resp, err := b.storeBinding(ctx, req.Storage, handle, d, dryRun)
	if err != nil || resp != nil {
		return resp, err
	}
	if dryRun {
		out, err := b.bindingWriteWarnings(ctx, req.Storage, handle, w.entry)
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = &logical.Response{}
		}
		out.Data = dryRunData(handle, w.entry, w.op, w.changes)
		return out, nil
	}
	if w.op != bindingOpUnchanged {
		// The next read reloads the binding; a token obtained under the old
		// generation is not served, but a rotated refresh token is kept.
		// This waits for a refresh in flight, so it runs with no mount lock
		// held. A write that changes nothing stored nothing: the cached
		// token stays.
		b.forgetBinding(ctx, handle)
		b.bindingWritten(ctx, req.Storage, handle, w.entry, w.op == bindingOpCreate)
	}
	return b.bindingWriteWarnings(ctx, req.Storage, handle, w.entry)
}

// bindingWriteInput takes dry_run out of a binding write, and splits a
// scopes string on spaces as well as commas (design.md: a list, or one
// string split on spaces and commas). The rest is the kind's fields.
func bindingWriteInput(d *framework.FieldData) (*framework.FieldData, bool, *fieldError) {
	dryRun := false
	if _, ok := d.Raw["dry_run"]; ok {
		v, _, err := d.GetOkErr("dry_run")
		if err != nil {
			return nil, false, fieldErr("dry_run", "must be true or false")
		}
		dryRun = v.(bool)
	}
	raw := make(map[string]interface{}, len(d.Raw))
	for k, v := range d.Raw {
		if k != "dry_run" {
			raw[k] = v
		}
	}
	if s, ok := raw["scopes"].(string); ok {
		raw["scopes"] = scopeFields(s)
	}
	return &framework.FieldData{Raw: raw, Schema: d.Schema}, dryRun, nil
}

// bindingWriteFieldSchemas are the kinds' fields plus dry_run.
func bindingWriteFieldSchemas() map[string]*framework.FieldSchema {
	fields := bindingFieldSchemas()
	fields["dry_run"] = &framework.FieldSchema{
		Type:        framework.TypeBool,
		Description: "Validate the write fully and answer what it would change (operation create, update or unchanged; changed_fields; changes, secret values by name only), storing nothing.",
	}
	fields["force"] = &framework.FieldSchema{
		Type:        framework.TypeBool,
		Description: "On delete: delete even when revoking the refresh token (revoke_on_delete) fails.",
		Query:       true,
	}
	return fields
}

// bindingWrite is what a binding write did, or would do in a dry run.
type bindingWrite struct {
	entry   *bindingEntry
	op      string
	changes []fieldChange
}

// storeBinding merges the write into the stored binding and stores it,
// unless it is a dry run or changes nothing, holding the handle's binding
// stripe and the references lock (for reading) only for that: neither is
// held across a wait on the handle.
func (b *backend) storeBinding(ctx context.Context, s logical.Storage, handle string, d *framework.FieldData, dryRun bool) (*bindingWrite, *logical.Response, error) {
	lock := locksutil.LockForKey(b.bindingLocks, handle)
	lock.Lock()
	defer lock.Unlock()
	b.refsLock.RLock()
	defer b.refsLock.RUnlock()

	old, err := getBinding(ctx, s, handle)
	if err != nil {
		return nil, nil, err
	}
	e, ferr := applyBindingInput(old, d)
	if ferr != nil {
		return nil, ferr.response(), nil
	}
	w := &bindingWrite{entry: e, op: bindingOpCreate, changes: diffBindings(old, e)}
	if old != nil {
		w.op = bindingOpUpdate
		if len(w.changes) == 0 {
			w.op, w.entry = bindingOpUnchanged, old
		}
	}
	if dryRun || w.op == bindingOpUnchanged {
		return w, nil, nil
	}
	now := b.now().UTC()
	if old == nil {
		e.CreatedAt = now
		e.ID = newBindingID()
	}
	e.UpdatedAt = now
	e.Generation++
	if err := putBinding(ctx, s, handle, e); err != nil {
		return nil, nil, err
	}
	return w, nil, nil
}

// forgetBinding drops what readers cached of a handle's binding after it was
// written. Only a handle that was read has an entry: writing bindings leaves
// no per-handle state behind. Called after the storage write, so a reader
// that creates its entry later loads the new binding, and one that loaded
// the old binding finishes (its refresh holds the handle's lock) before the
// reset.
func (b *backend) forgetBinding(ctx context.Context, handle string) {
	hc := b.handles.peek(handle)
	if hc == nil {
		return
	}
	// Wait even if the request is cancelled: the write is done, and a
	// snapshot of the old binding must not outlive it.
	_ = hc.acquire(context.WithoutCancel(ctx))
	defer hc.release()
	hc.reset()
	hc.lastFailure = nil
}
