package flowcred

import (
	"context"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

func TestBackend_Factory(t *testing.T) {
	b, err := Factory(context.Background(), &logical.BackendConfig{
		StorageView: &logical.InmemStorage{},
		System:      logical.TestSystemView(),
		Logger:      hclog.NewNullLogger(),
	})
	require.NoError(t, err)
	require.Equal(t, logical.TypeLogical, b.Type())
}
