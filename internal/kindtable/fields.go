package kindtable

import "strings"

// FieldDescriptions documents every binding field (vault path-help and the
// OpenAPI document show them).
var FieldDescriptions = map[string]string{
	"handle":                   "The credential handle, e.g. google_sales.",
	"kind":                     "The kind of credential; required on create, immutable. One of: " + strings.Join(Names(), ", ") + ".",
	"description":              "Free text for operators.",
	"extra_headers":            "Non-secret headers added to the material, e.g. x-goog-user-project=my-project. Names must be HTTP tokens; values may not contain CR or LF.",
	"ttl":                      "Cap on the token lease. For api_token, the lease length (default 1h).",
	"client_id":                "OAuth2 client ID (secret-capable).",
	"client_secret":            "OAuth2 client secret (secret-capable, write-only).",
	"refresh_token":            "OAuth2 refresh token (secret-capable, write-only). Optional: without one the binding needs authorization, which bindings/<handle>/authorize or /device obtains. A token rotated by the provider, or obtained by connecting, is kept by flowcred in the binding's token state.",
	"credentials_json":         "Google service-account key file, JSON (secret-capable, write-only). Its token_uri is ignored: token_url decides where assertions go.",
	"private_key":              "PEM private key, PKCS#8, PKCS#1 or SEC1: RSA (at least 2048 bits) for google.service_account; RSA or EC P-256/P-384/P-521 (signing RS256/ES256/ES384/ES512) for oauth2.jwt_bearer (secret-capable, write-only).",
	"token":                    "The static API token (secret-capable, write-only).",
	"scopes":                   "Scopes to request, comma-separated. google.service_account needs scopes or target_audience.",
	"token_url":                "Token endpoint. https, or http on a loopback host. Defaults to Google's for the google.* kinds.",
	"authorization_url":        "Authorization endpoint for connecting (bindings/<handle>/authorize). https, or http on a loopback host. Defaults to Google's for google.oauth2.",
	"device_authorization_url": "Device authorization endpoint (RFC 8628) for connecting with bindings/<handle>/device. https, or http on a loopback host. Defaults to Google's for google.oauth2.",
	"redirect_uri":             "Default redirect URI for bindings/<handle>/authorize, e.g. https://vault.example.com/v1/flowcred/callback (with public_callback) or a loopback URI. https, or http on a loopback host.",
	"revoke_on_delete":         "Deleting the binding revokes its current refresh token at revocation_url (RFC 7009) first; a failed revocation keeps the binding unless the delete says force=true. A refresh token another binding also uses is never revoked. Default false.",
	"revocation_url":           "Token revocation endpoint (RFC 7009). https, or http on a loopback host. Defaults to Google's for google.oauth2.",
	"auth_style":               "How client credentials are sent: auto (try header, then params), header (HTTP Basic), params (form body). Default auto.",
	"token_params":             "Extra token request parameters for client credentials, e.g. audience=https://api.example.com or resource=...",
	"client_email":             "Service account email (with private_key, instead of credentials_json).",
	"private_key_id":           "Key ID of the service account key (the kid header).",
	"subject":                  "Subject of the assertion: the user to impersonate (Google domain-wide delegation) or the sub claim (oauth2.jwt_bearer; default: issuer).",
	"target_audience":          "Issue a Google ID token for this audience instead of an access token (e.g. a Cloud Run URL). Not combined with scopes.",
	"key_id":                   "kid header of the JWT assertion.",
	"issuer":                   "iss claim of the JWT assertion.",
	"audience":                 "aud claim of the JWT assertion (default: token_url).",
	"header":                   "Header that carries an api_token. Default Authorization.",
	"scheme":                   "Scheme before an api_token, e.g. Bearer or token. Default Bearer; empty sends the bare token.",
}
