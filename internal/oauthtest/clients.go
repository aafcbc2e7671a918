// Package oauthtest runs a real, independently written OAuth2 server (panva's
// oidc-provider, see testdata/oauth-server) on loopback for integration tests
// and benchmarks. It also provides the test harness's one forwarding proxy,
// FaultProxy, with fault, gate and hold modes, to put in front of a token
// endpoint, and its one fake token endpoint, TokenEndpoint: a scriptable
// in-process issuer behind that proxy, for tests that need no Node.
//
// Typical use in a test:
//
//	srv := oauthtest.Start(t) // skips the test if node is not installed
//	rt, err := srv.MintRefreshToken(oauthtest.ClientRTBasic, "openid offline_access api")
//	cfg := oauth2.Config{
//		ClientID:     oauthtest.ClientRTBasic,
//		ClientSecret: oauthtest.SecretRTBasic,
//		Endpoint:     oauth2.Endpoint{TokenURL: srv.TokenURL, AuthStyle: oauth2.AuthStyleInHeader},
//	}
//	tok, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token()
//
// Connecting a binding (the authorization code grant with PKCE, the device
// grant) uses the connect clients (ClientConnect...) and the server's
// development login and consent pages, which a Browser drives like a user:
//
//	redirect, err := oauthtest.Approve(authURL) // sign in, consent
//	// redirect is the client's redirect URI with code and state
//	err = srv.ApproveDevice(userCode)           // the device page
//
// Server.Issued lists every token and code the server issued, for leak
// scans of tokens a test never saw.
//
// Benchmark programs that are not tests use StartProcess and Close.
package oauthtest

// Static clients configured in testdata/oauth-server/server.js. The secrets are
// test-only constants; keep both files in sync.
const (
	// ClientRTBasic authenticates with client_secret_basic; grants
	// authorization_code and refresh_token; refresh tokens are never rotated.
	ClientRTBasic = "rt-basic"
	SecretRTBasic = "rt-basic-secret-for-tests-only"

	// ClientRTPost is like ClientRTBasic but authenticates with client_secret_post.
	ClientRTPost = "rt-post"
	SecretRTPost = "rt-post-secret-for-tests-only"

	// ClientRTRotate authenticates with client_secret_basic and gets a new
	// refresh token on every refresh. Reusing a rotated (consumed) refresh
	// token fails with invalid_grant, revokes the whole grant and increments
	// Stats.RefreshTokenReuseDetected.
	ClientRTRotate = "rt-rotate"
	SecretRTRotate = "rt-rotate-secret-for-tests-only"

	// ClientCC uses the client_credentials grant with client_secret_basic.
	// A `resource` (or an absolute-URI `audience`) parameter yields a JWT
	// access token whose aud is that resource.
	ClientCC = "cc-client"
	SecretCC = "cc-client-secret-for-tests-only"

	// ClientCCPost is like ClientCC but authenticates with client_secret_post.
	ClientCCPost = "cc-post"
	SecretCCPost = "cc-post-secret-for-tests-only"

	// ClientConnect, ClientConnectPost and ClientConnectRotate are for
	// connecting a binding: native clients (RFC 8252: a redirect URI
	// http://127.0.0.1:<any port>/callback, or a Vault dev server's public
	// callback http://127.0.0.1:<any port>/v1/flowcred/callback, see
	// ConnectRedirectPaths) allowed authorization_code with PKCE (S256,
	// required), refresh_token and the device grant. Every code or device
	// grant issues a refresh token (with or without offline_access).
	// ClientConnect and ClientConnectRotate authenticate with
	// client_secret_basic, ClientConnectPost with client_secret_post;
	// ClientConnectRotate rotates refresh tokens like ClientRTRotate.
	ClientConnect       = "connect-basic"
	SecretConnect       = "connect-basic-secret-for-tests-only"
	ClientConnectPost   = "connect-post"
	SecretConnectPost   = "connect-post-secret-for-tests-only"
	ClientConnectRotate = "connect-rotate"
	SecretConnectRotate = "connect-rotate-secret-for-tests-only"

	// ClientJWTBearer is the pseudo client that JWT-bearer requests without
	// any client authentication (Google service-account style) are
	// attributed to in Stats.ByClient.
	ClientJWTBearer = "jwt-bearer"
)

// Grant type names as used in Stats.TokenRequests.
const (
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
	GrantJWTBearer         = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	GrantAuthorizationCode = "authorization_code"
	GrantDeviceCode        = "urn:ietf:params:oauth:grant-type:device_code"
)

// ConnectRedirectPaths are the redirect URI paths registered for the connect
// clients, on http://127.0.0.1 with any port.
var ConnectRedirectPaths = []string{"/callback", "/v1/flowcred/callback"}

// Error descriptions the JWT-bearer grant answers with (Google's texts).
const (
	ErrDescInvalidSignature = "Invalid JWT Signature."
	ErrDescTimeframe        = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim."
	ErrDescAccountNotFound  = "Invalid grant: account not found"
	ErrDescInvalidScope     = "Invalid OAuth scope or ID token audience provided."
)
