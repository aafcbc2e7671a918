package flowcred

import (
	"context"
	"fmt"
)

// jwtGrant obtains a token with a JWT-bearer grant (google.service_account,
// oauth2.jwt_bearer).
func (b *backend) jwtGrant(ctx context.Context, e *bindingEntry, in map[string]string) (*upstreamToken, error) {
	return nil, &upstreamError{class: classConfig, msg: fmt.Sprintf("kind %s is not issued by this version yet", e.Kind)}
}

// validateKindInputs checks kind-specific inputs given inline (key files,
// PEM keys) at write time.
func validateKindInputs(e *bindingEntry) *fieldError {
	if e.Kind == kindGoogleServiceAccount && e.Plain["target_audience"] != "" && len(e.Scopes) > 0 {
		return fieldErr("target_audience", "an ID token for a target_audience carries no scopes; remove scopes or target_audience")
	}
	return nil
}
