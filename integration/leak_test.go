package integration

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// The leak detector itself (no Vault needed): it finds a planted value
// verbatim, JSON-escaped, and by one line of a multi-line value.
func TestLeakDetectorFindsPlantedValues(t *testing.T) {
	set := &plantedSet{values: map[string]string{}}
	set.add("simple", "fcsecret-simple-0123456789abcdef")
	pemLike := "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\nQUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\n-----END PRIVATE KEY-----\n"
	set.add("pem", pemLike)
	set.add("quote", `fcsecret-"quoted"-value`)

	require.Empty(t, set.findIn(`{"data":{"kind":"api_token","inline_fields":["token"]}}`))
	require.Equal(t, []string{"simple"}, set.findIn(`{"token":"fcsecret-simple-0123456789abcdef"}`))
	escaped, err := json.Marshal(map[string]string{"private_key": pemLike})
	require.NoError(t, err)
	require.Equal(t, []string{"pem"}, set.findIn(string(escaped)))
	require.Equal(t, []string{"pem"}, set.findIn("key line QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo= in a log"))
	quoted, err := json.Marshal(`fcsecret-"quoted"-value`)
	require.NoError(t, err)
	require.Equal(t, []string{"quote"}, set.findIn(string(quoted)))
}
