package leakcheck

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// The leak detector itself (no Vault needed): it finds a planted value
// verbatim, JSON-escaped, and by one line of a multi-line value. (This was
// integration's own scanner's test; integration now plants into a Set.)
func TestLeakDetectorFindsPlantedValues(t *testing.T) {
	set := New()
	set.Add("simple", "fcsecret-simple-0123456789abcdef")
	pemLike := "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\nQUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\n-----END PRIVATE KEY-----\n"
	set.Add("pem", pemLike)
	set.Add("quote", `fcsecret-"quoted"-value`)

	require.Empty(t, set.Find(`{"data":{"kind":"api_token","inline_fields":["token"]}}`))
	require.Equal(t, []string{"simple"}, set.Find(`{"token":"fcsecret-simple-0123456789abcdef"}`))
	escaped, err := json.Marshal(map[string]string{"private_key": pemLike})
	require.NoError(t, err)
	require.Equal(t, []string{"pem"}, set.Find(string(escaped)))
	require.Equal(t, []string{"pem"}, set.Find("key line QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo= in a log"))
	quoted, err := json.Marshal(`fcsecret-"quoted"-value`)
	require.NoError(t, err)
	require.Equal(t, []string{"quote"}, set.Find(string(quoted)))
}
