package main

import (
	"regexp"
	"sort"

	"github.com/flowcred/vault-plugin-flowcred/internal/kindtable"
)

// The kinds and their fields come from internal/kindtable, the table the
// plugin's kind registry is built on: the CLI checks a deployment file
// against exactly what the plugin accepts.

// kindFields is one kind as a deployment file sees it.
type kindFields struct{ kindtable.Kind }

var kinds = func() map[string]kindFields {
	m := map[string]kindFields{}
	for _, k := range kindtable.All() {
		m[k.Name] = kindFields{k}
	}
	return m
}()

const secretRefSuffix = kindtable.SecretRefSuffix

// namePattern is the plugin's framework.GenericNameRegex, anchored: the
// shape of handles and secret names.
var namePattern = regexp.MustCompile(`^\w(([\w-.]+)?\w)?$`)

func validName(s string) bool { return namePattern.MatchString(s) && len(s) <= 128 }

func kindNames() []string { return kindtable.Names() }

// managedFields are the fields a deployment file sets for a kind: common and
// plain fields and the <field>_secret references. Inline secret values are
// not among them: the file never holds one.
func (k kindFields) managedFields() []string {
	out := append([]string(nil), kindtable.Common...)
	out = append(out, k.Plain...)
	for _, f := range k.Secret {
		out = append(out, f+secretRefSuffix)
	}
	sort.Strings(out)
	return out
}

// accepts reports whether a deployment file may set field for this kind
// (a secret-capable field only by reference).
func (k kindFields) accepts(field string) bool { return k.Accepts(field) && !k.IsSecret(field) }

// kindsAccepting names the kinds that take a field, for error messages.
func kindsAccepting(field string) []string { return kindtable.KindsAccepting(field) }

// isAnySecretField reports whether field is secret-capable in some kind.
func isAnySecretField(field string) bool { return kindtable.IsAnySecret(field) }
