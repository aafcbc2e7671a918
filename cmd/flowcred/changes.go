package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/hashicorp/vault/api"
)

// The deploy engine shared by plan and apply. Both ask the plugin what each
// write would do (binding writes with dry_run=true: the plugin's own checks,
// nothing stored), so that plan shows exactly what apply then does; apply
// then writes only what changes. Secrets from the environment are compared
// through their fingerprints (secret reads answer one, and so do dry-run
// secret writes for the value they carry), never by reading a value.

// Actions of a secret or binding.
const (
	actionCreate    = "create"
	actionUpdate    = "update"
	actionUnchanged = "unchanged"
	actionDelete    = "delete"
	actionRefused   = "refused"
)

// secretChange is what happens to one secret given by -secrets-from-env.
type secretChange struct {
	Name   string `json:"name"`
	Action string `json:"action"`
	// Source names the variable the value comes from ($PREFIXNAME).
	Source string `json:"source"`
	value  string
}

// fieldChange is one field of a binding write, as the plugin's dry run
// answers it; Old and New are null for a secret value (and for the side
// where the field is absent).
type fieldChange struct {
	Field  string      `json:"field"`
	Change string      `json:"change"`
	Secret bool        `json:"secret"`
	Old    interface{} `json:"old"`
	New    interface{} `json:"new"`
}

// bindingChange is what happens to one binding.
type bindingChange struct {
	Handle   string        `json:"handle"`
	Kind     string        `json:"kind"`
	Action   string        `json:"action"`
	Changes  []fieldChange `json:"changes,omitempty"`
	Warnings []string      `json:"warnings,omitempty"`
	Error    string        `json:"error,omitempty"`
	payload  map[string]interface{}
}

// deployReport is the outcome of plan or apply.
type deployReport struct {
	Applied  bool            `json:"applied"`
	Mount    string          `json:"mount"`
	Secrets  []secretChange  `json:"secrets"`
	Bindings []bindingChange `json:"bindings"`
}

// counts tallies the bindings by action.
func (r *deployReport) counts() map[string]int {
	m := map[string]int{}
	for _, b := range r.Bindings {
		m[b.Action]++
	}
	return m
}

// pending reports whether anything would be written or deleted.
func (r *deployReport) pending() bool {
	for _, s := range r.Secrets {
		if s.Action != actionUnchanged {
			return true
		}
	}
	for _, b := range r.Bindings {
		if b.Action == actionCreate || b.Action == actionUpdate || b.Action == actionDelete {
			return true
		}
	}
	return false
}

// deployer talks to one mount.
type deployer struct {
	c     *api.Client
	mount string
}

// planSecrets decides, for each referenced secret whose variable is set,
// whether storing it changes anything. An empty variable is reported on
// warn and skipped.
func (dp *deployer) planSecrets(prefix string, names []string, warn func(string)) ([]secretChange, *vaultError) {
	var out []secretChange
	for _, name := range names {
		envName := prefix + name
		val, ok := os.LookupEnv(envName)
		if !ok {
			envName = strings.ToUpper(prefix + name)
			val, ok = os.LookupEnv(envName)
		}
		if !ok {
			continue
		}
		if val == "" {
			warn(fmt.Sprintf("secret %s: $%s is empty; not written", name, envName))
			continue
		}
		path := dp.mount + "/secrets/" + name
		cur, err := read(dp.c, path)
		if err != nil {
			return nil, describeVaultErr(dp.c, "reading "+path, err)
		}
		sc := secretChange{Name: name, Action: actionCreate, Source: "$" + envName, value: val}
		if cur != nil && cur.Data != nil {
			sc.Action = actionUpdate
			stored, _ := cur.Data["fingerprint"].(string)
			dry, err := write(dp.c, path, map[string]interface{}{"value": val, "dry_run": true})
			if err != nil {
				return nil, describeVaultErr(dp.c, "checking "+path, err)
			}
			if dry != nil && stored != "" && dry.Data["fingerprint"] == stored {
				sc.Action = actionUnchanged
			}
		}
		out = append(out, sc)
	}
	return out, nil
}

// writeSecrets stores the secrets that change.
func (dp *deployer) writeSecrets(secrets []secretChange) *vaultError {
	for _, s := range secrets {
		if s.Action == actionUnchanged {
			continue
		}
		path := dp.mount + "/secrets/" + s.Name
		if _, err := write(dp.c, path, map[string]interface{}{"value": s.value}); err != nil {
			return describeVaultErr(dp.c, "writing "+path, err)
		}
	}
	return nil
}

// planBinding asks the plugin what writing b would do.
func (dp *deployer) planBinding(b binding) (bindingChange, *vaultError) {
	ch := bindingChange{Handle: b.handle, Kind: b.kind}
	path := dp.mount + "/bindings/" + b.handle
	existing, err := read(dp.c, path)
	if err != nil {
		ve := describeVaultErr(dp.c, "reading "+path, err)
		if ve.code == exitVault {
			return ch, ve
		}
		ch.Action, ch.Error = actionRefused, strings.TrimPrefix(ve.msg, "reading "+path+": ")
		return ch, nil
	}
	ch.payload = applyPayload(b, existing)
	dry := map[string]interface{}{"dry_run": true}
	for k, v := range ch.payload {
		dry[k] = v
	}
	resp, err := write(dp.c, path, dry)
	if err != nil {
		ve := describeVaultErr(dp.c, "writing "+path, err)
		if ve.code == exitVault {
			return ch, ve
		}
		ch.Action, ch.Error = actionRefused, refusal(ve.msg, "writing "+path)
		return ch, nil
	}
	if resp == nil || resp.Data == nil || resp.Data["dry_run"] != true {
		return ch, &vaultError{exitVault, path + ": the plugin did not answer the dry run; flowcred plan and apply need plugin v0.2 or later"}
	}
	ch.Action, _ = resp.Data["operation"].(string)
	raw, _ := json.Marshal(resp.Data["changes"])
	_ = json.Unmarshal(raw, &ch.Changes)
	ch.Warnings = resp.Warnings
	return ch, nil
}

// refusal is the plugin's message of a refused write, without the path.
func refusal(msg, what string) string {
	msg = strings.TrimPrefix(msg, what+": ")
	if strings.Contains(msg, "dry_run") && strings.Contains(msg, "unknown field") {
		msg += " (the plugin predates dry_run: flowcred plan and apply need plugin v0.2 or later)"
	}
	return msg
}

// writeBinding performs the write a plan decided on; a refusal now (the
// binding changed since) is reported as one.
func (dp *deployer) writeBinding(ch *bindingChange) *vaultError {
	path := dp.mount + "/bindings/" + ch.Handle
	resp, err := write(dp.c, path, ch.payload)
	if err != nil {
		ve := describeVaultErr(dp.c, "writing "+path, err)
		if ve.code == exitVault {
			return ve
		}
		ch.Action, ch.Error = actionRefused, refusal(ve.msg, "writing "+path)
		return nil
	}
	ch.Warnings = nil
	if resp != nil {
		ch.Warnings = resp.Warnings
	}
	return nil
}

// planPrune lists the mount's bindings that the file does not name.
func (dp *deployer) planPrune(d *deployment) ([]bindingChange, *vaultError) {
	path := dp.mount + "/bindings/"
	keys, err := list(dp.c, path)
	if err != nil {
		return nil, describeVaultErr(dp.c, "listing "+path, err)
	}
	sort.Strings(keys)
	var out []bindingChange
	for _, h := range keys {
		if strings.HasSuffix(h, "/") || d.binding(h) != nil {
			continue
		}
		sec, err := read(dp.c, path+h)
		if err != nil {
			return nil, describeVaultErr(dp.c, "reading "+path+h, err)
		}
		if sec == nil || sec.Data == nil {
			continue // deleted meanwhile
		}
		kind, _ := sec.Data["kind"].(string)
		out = append(out, bindingChange{Handle: h, Kind: kind, Action: actionDelete})
	}
	return out, nil
}

// deleteBinding deletes a pruned binding; a refusal is reported as one.
func (dp *deployer) deleteBinding(ch *bindingChange) *vaultError {
	path := dp.mount + "/bindings/" + ch.Handle
	resp, err := remove(dp.c, path)
	if err != nil {
		ve := describeVaultErr(dp.c, "deleting "+path, err)
		if ve.code == exitVault {
			return ve
		}
		ch.Action, ch.Error = actionRefused, strings.TrimPrefix(ve.msg, "deleting "+path+": ")
		return nil
	}
	if resp != nil {
		ch.Warnings = resp.Warnings
	}
	return nil
}

// dropPlannedSecretWarnings removes the dry run's warnings about secrets
// that the plan itself stores: apply writes them first, so its writes do
// not warn about them.
func dropPlannedSecretWarnings(ch *bindingChange, secrets []secretChange) {
	if len(ch.Warnings) == 0 {
		return
	}
	kept := ch.Warnings[:0]
	for _, w := range ch.Warnings {
		planned := false
		for _, s := range secrets {
			if s.Action == actionCreate && strings.HasPrefix(w, fmt.Sprintf("secret %q (field ", s.Name)) && strings.Contains(w, "does not exist yet") {
				planned = true
			}
		}
		if !planned {
			kept = append(kept, w)
		}
	}
	ch.Warnings = kept
}
