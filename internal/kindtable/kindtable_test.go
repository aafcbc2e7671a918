package kindtable

import (
	"sort"
	"testing"
)

func TestTable(t *testing.T) {
	names := Names()
	if !sort.StringsAreSorted(names) || len(names) != len(kinds) {
		t.Fatalf("Names() = %v", names)
	}
	k, ok := Lookup(OAuth2ClientCreds)
	if !ok {
		t.Fatal("no oauth2.client_credentials")
	}
	for f, want := range map[string]bool{
		"client_secret": true, "client_secret_secret": true, "token_params": true, "ttl": true,
		"kind": false, "refresh_token": false, "refresh_token_secret": false, "_secret": false,
	} {
		if got := k.Accepts(f); got != want {
			t.Errorf("Accepts(%q) = %v, want %v", f, got, want)
		}
	}
	if got := KindsAccepting("subject"); len(got) != 2 || got[0] != GoogleServiceAccount || got[1] != OAuth2JWTBearer {
		t.Errorf("KindsAccepting(subject) = %v", got)
	}
	if !IsAnySecret("credentials_json") || IsAnySecret("scopes") {
		t.Error("IsAnySecret")
	}
	for _, k := range kinds {
		for _, group := range k.Required {
			for _, f := range group {
				if !k.Accepts(f) {
					t.Errorf("%s requires %s, which it does not accept", k.Name, f)
				}
			}
		}
		for _, f := range append(append([]string(nil), k.Secret...), k.Plain...) {
			if FieldDescriptions[f] == "" {
				t.Errorf("%s: field %s has no description", k.Name, f)
			}
		}
	}
}
