// Loopback OAuth2 test server for flowcred, built on panva's oidc-provider.
//
//   PORT=0 node --no-warnings server.js
//
// Prints exactly one JSON line on stdout once ready:
//   {"issuer":"http://127.0.0.1:PORT","token_url":"...","admin_url":".../__admin",
//    "authorization_url","device_authorization_url","device_url", ...}
// Errors go to stderr. Exits on SIGTERM/SIGINT, and on stdin EOF when
// EXIT_ON_STDIN_EOF=1 (so it dies with the Go test process that started it).
// Set OAUTH_SERVER_DEBUG=1 to log every token endpoint error to stderr.
//
// Clients (secrets: see CLIENTS below and internal/oauthtest/clients.go):
//   rt-basic  client_secret_basic, authorization_code+refresh_token, no rotation
//   rt-post   client_secret_post,  same
//   rt-rotate client_secret_basic, refresh token rotated on every use; reuse of
//             a rotated token -> invalid_grant and the whole grant is revoked
//   cc-client client_secret_basic, client_credentials (+ resource/audience -> JWT)
//   cc-post   client_secret_post,  client_credentials
//   JWT bearer (urn:ietf:params:oauth:grant-type:jwt-bearer) needs no client
//   authentication (Google service-account style); stats call it "jwt-bearer".
//   connect-basic, connect-post, connect-rotate (connect.js): for connecting a
//             binding: native clients (a loopback redirect URI matches on any
//             port), authorization_code with PKCE (S256) required,
//             refresh_token, the device grant; a refresh token is issued on
//             every code and device grant, with or without offline_access;
//             connect-rotate rotates it like rt-rotate
// The registered auth method is enforced (oidc-provider alone accepts either
// client_secret_basic or client_secret_post for any secret-based client).
//
// Connecting (the authorization code and device grants) goes through
// oidc-provider's development login and consent pages (devInteractions: any
// login and password sign in, the login becomes the account id) and its
// device page at /device; internal/oauthtest drives them with an HTTP client.
// The authorization endpoint is /auth, device authorization /device/auth.
//
// Admin API (JSON, loopback only): /__admin, see admin.js.
// The RFC 7009 revocation endpoint is at /token/revocation, introspection at
// /token/introspection, the signing keys at /jwks.

import crypto from 'node:crypto';
import http from 'node:http';

// Silence known-harmless oidc-provider notices before it is loaded: the
// Node 20 "Unsupported runtime" warning, the one about our pre-parsed token
// request bodies (see token-request.js), and the one that devInteractions
// (the development login and consent pages, on purpose here) are enabled.
const origWarn = console.warn;
console.warn = (...args) => {
  const first = String(args[0] ?? '');
  if (first.includes('Unsupported runtime') || first.includes('already parsed request body')
    || first.includes('devInteractions is enabled')) return;
  origWarn(...args);
};
// oidc-provider prints its notices with console.info; keep stdout for the
// ready line.
console.info = (...args) => console.error(...args);

// Key generation runs on libuv's thread pool: start it before loading
// oidc-provider so the two overlap (RSA-2048 generation takes 0.1-1 s).
function genKeyPair(type, options) {
  return new Promise((resolve, reject) => {
    crypto.generateKeyPair(type, options, (err, publicKey, privateKey) => (
      err ? reject(err) : resolve(privateKey)));
  });
}
const keyPromises = [
  genKeyPair('rsa', { modulusLength: 2048 }),
  genKeyPair('ec', { namedCurve: 'P-256' }),
];

const { default: Provider, errors } = await import('oidc-provider');
const { default: MapAdapter, storeSize, startSweeper } = await import('./adapter.js');
const jwtBearer = await import('./jwt-bearer.js');
const connect = await import('./connect.js');
const { createAdmin, sendJSON, newStats } = await import('./admin.js');
const { createPreprocess } = await import('./token-request.js');

const DEBUG = process.env.OAUTH_SERVER_DEBUG === '1';
const HOST = '127.0.0.1';
const PORT = Number.parseInt(process.env.PORT ?? '0', 10) || 0;

// Test-only client credentials. Keep in sync with internal/oauthtest/clients.go.
const CLIENTS = {
  'rt-basic': 'rt-basic-secret-for-tests-only',
  'rt-post': 'rt-post-secret-for-tests-only',
  'rt-rotate': 'rt-rotate-secret-for-tests-only',
  'cc-client': 'cc-client-secret-for-tests-only',
  'cc-post': 'cc-post-secret-for-tests-only',
  ...connect.CONNECT_SECRETS,
};
// Pseudo client used for client-less (Google style) JWT-bearer requests.
const JWT_BEARER_CLIENT = 'jwt-bearer';
const ROTATING_CLIENTS = new Set(['rt-rotate', ...connect.CONNECT_ROTATING]);
// oidc-provider accepts client_secret_basic and client_secret_post
// interchangeably for any secret-based client; we enforce the registered
// method so tests notice a client using the wrong auth style.
const AUTH_METHODS = {
  'rt-basic': 'client_secret_basic',
  'rt-post': 'client_secret_post',
  'rt-rotate': 'client_secret_basic',
  'cc-client': 'client_secret_basic',
  'cc-post': 'client_secret_post',
  ...connect.CONNECT_AUTH_METHODS,
};

const settings = {
  accessTokenTTL: 3600,
  idTokenTTL: 3600,
  refreshTokenTTL: 14 * 24 * 3600,
};

// stats and lastAssertion are replaced on reset (admin.js).
const state = { stats: newStats(), lastAssertion: null };

function inc(obj, key) {
  obj[key] = (obj[key] ?? 0) + 1;
}

// ---------------------------------------------------------------- keys

async function toKey(keyPromise, alg, kid) {
  const privateKey = await keyPromise;
  const jwk = privateKey.export({ format: 'jwk' });
  return { key: privateKey, jwk: { ...jwk, kid, alg, use: 'sig' } };
}
const [rsaKey, ecKey] = await Promise.all([
  toKey(keyPromises[0], 'RS256', 'rs1'),
  toKey(keyPromises[1], 'ES256', 'es1'),
]);

// ---------------------------------------------------------------- http server

const server = http.createServer();
// Go's default idle timeout is 90s; keep server-side idle connections longer so
// the client, not the server, closes them (avoids "server closed idle
// connection" on non-replayable POSTs).
server.keepAliveTimeout = 120_000;
server.headersTimeout = 125_000;

await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(PORT, HOST, resolve);
});
const { port } = server.address();
const issuer = `http://${HOST}:${port}`;

// ---------------------------------------------------------------- provider

const redirectUris = ['http://127.0.0.1/callback'];
function rtClient(id, method) {
  return {
    client_id: id,
    client_secret: CLIENTS[id],
    token_endpoint_auth_method: method,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: redirectUris,
    // ES256 signs much faster than RS256; keeps refreshes with `openid` cheap.
    id_token_signed_response_alg: 'ES256',
  };
}
function ccClient(id, method) {
  return {
    client_id: id,
    client_secret: CLIENTS[id],
    token_endpoint_auth_method: method,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
  };
}

const SCOPES = ['openid', 'offline_access', 'email', 'profile', 'api', 'read', 'write', 'admin'];

const provider = new Provider(issuer, {
  adapter: MapAdapter,
  clients: [
    rtClient('rt-basic', 'client_secret_basic'),
    rtClient('rt-post', 'client_secret_post'),
    rtClient('rt-rotate', 'client_secret_basic'),
    ccClient('cc-client', 'client_secret_basic'),
    ccClient('cc-post', 'client_secret_post'),
    ...connect.connectClients(),
    {
      client_id: JWT_BEARER_CLIENT,
      token_endpoint_auth_method: 'none',
      grant_types: [jwtBearer.GRANT_TYPE],
      response_types: [],
      redirect_uris: [],
    },
  ],
  jwks: { keys: [rsaKey.jwk, ecKey.jwk] },
  cookies: { keys: ['flowcred-oauth-test-server-cookie-key'] },
  scopes: SCOPES,
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
  },
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    clientCredentials: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (ctx, client, oneOf) => oneOf,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resource) => {
        const requested = ctx?.oidc?.params?.scope ? String(ctx.oidc.params.scope).split(' ') : [];
        return {
          scope: [...new Set(['api', 'read', 'write', ...requested])].join(' '),
          audience: resource,
          accessTokenTTL: settings.accessTokenTTL,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  findAccount: async (ctx, sub) => ({
    accountId: sub,
    async claims() {
      return { sub, email: `${sub}@example.test`, email_verified: true };
    },
  }),
  ttl: {
    AccessToken: () => settings.accessTokenTTL,
    ClientCredentials: () => settings.accessTokenTTL,
    IdToken: () => settings.idTokenTTL,
    RefreshToken: () => settings.refreshTokenTTL,
    Grant: () => Math.max(settings.refreshTokenTTL, 30 * 24 * 3600),
    AuthorizationCode: () => 60,
    Interaction: () => 3600,
    Session: () => 14 * 24 * 3600,
    DeviceCode: () => 600,
    BackchannelAuthenticationRequest: () => 600,
    PreAuthorizedCode: () => 600,
  },
  // Every authorization code grant proves possession with PKCE (S256).
  pkce: { required: () => true },
  rotateRefreshToken: (ctx) => ROTATING_CLIENTS.has(ctx.oidc.client.clientId),
  issueRefreshToken: async (ctx, client, code) => client.grantTypeAllowed('refresh_token')
    && (code.scopes.has('offline_access') || connect.isConnectClient(client.clientId)),
  expiresWithSession: async (ctx, code) => !code.scopes.has('offline_access')
    && !connect.isConnectClient(ctx.oidc.client?.clientId),
  renderError: async (ctx, out) => {
    ctx.type = 'json';
    ctx.body = out;
  },
});

const randomToken = () => crypto.randomBytes(32).toString('base64url');

provider.registerGrantType(
  jwtBearer.GRANT_TYPE,
  jwtBearer.createJwtBearerHandler({
    errors,
    settings,
    signingKey: { key: rsaKey.key, kid: rsaKey.jwk.kid },
    randomToken,
    onVerified: (claims) => { state.lastAssertion = claims; },
  }),
  ['assertion', 'scope'],
);

const tokenPath = provider.pathFor('token');

// ---------------------------------------------------------------- events

function grantTypeOf(ctx) {
  return ctx.req.flowcredGrantType ?? 'unknown';
}
function clientOf(ctx) {
  return ctx.oidc?.client?.clientId ?? ctx.req.flowcredClientId ?? 'unknown';
}

provider.on('grant.success', (ctx) => {
  const gt = grantTypeOf(ctx);
  inc(state.stats.token_requests, gt);
  inc(state.stats.token_success, gt);
  inc(state.stats.by_client, clientOf(ctx));
});

provider.on('grant.error', (ctx, err) => {
  const gt = grantTypeOf(ctx);
  inc(state.stats.token_requests, gt);
  inc(state.stats.by_client, clientOf(ctx));
  const code = ctx.body?.error ?? err.error ?? 'unknown';
  inc(state.stats.errors, code);
  if (err.error_detail === 'refresh token already used') {
    state.stats.refresh_token_reuse_detected += 1;
  }
  // oidc-provider keeps the real reason in error_detail and only exposes a
  // generic description ("grant request is invalid"): surface it.
  if (ctx.body && typeof ctx.body === 'object' && err.error_detail) {
    const desc = ctx.body.error_description;
    if (!desc) {
      ctx.body.error_description = err.error_detail;
    } else if (!desc.includes(err.error_detail)) {
      ctx.body.error_description = `${desc} (${err.error_detail})`;
    }
  }
  if (DEBUG) {
    console.error(`token error grant_type=${gt} client=${clientOf(ctx)} ${JSON.stringify(ctx.body)}`);
  }
});

provider.on('grant.revoked', () => { state.stats.grants_revoked += 1; });
provider.on('revocation.success', () => { state.stats.revocation_requests += 1; });
provider.on('revocation.error', (ctx, err) => {
  state.stats.revocation_requests += 1;
  inc(state.stats.errors, err.error ?? 'unknown');
});
provider.on('device_authorization.success', (ctx, body) => {
  connect.addInterval(body);
  state.stats.device_authorizations += 1;
});
provider.on('server_error', (ctx, err) => {
  console.error(`server_error ${ctx?.method} ${ctx?.path}:`, err);
});

const preprocessTokenRequest = createPreprocess({
  jwtBearer, jwtBearerClient: JWT_BEARER_CLIENT, authMethods: AUTH_METHODS,
});

const admin = createAdmin({
  provider, settings, state, jwtBearer, issuer, tokenPath, storeSize,
});

const callback = provider.callback();

server.on('request', (req, res) => {
  (async () => {
    const q = req.url.indexOf('?');
    const pathname = q === -1 ? req.url : req.url.slice(0, q);
    if (pathname === '/__admin' || pathname.startsWith('/__admin/')) {
      await admin(req, res, pathname, new URLSearchParams(q === -1 ? '' : req.url.slice(q + 1)));
      return;
    }
    if (req.method === 'POST' && pathname === tokenPath) {
      const reject = await preprocessTokenRequest(req);
      if (reject) {
        inc(state.stats.token_requests, req.flowcredGrantType ?? 'unknown');
        inc(state.stats.by_client, req.flowcredClientId ?? 'unknown');
        inc(state.stats.errors, reject.error);
        if (DEBUG) console.error(`token error ${reject.error} ${reject.error_description}`);
        const { status = 401, ...answer } = reject;
        sendJSON(res, status, answer);
        return;
      }
    }
    await callback(req, res);
  })().catch((err) => {
    const status = err.status ?? 500;
    if (status >= 500) console.error(`request ${req.method} ${req.url} failed:`, err);
    if (!res.headersSent) {
      sendJSON(res, status, { error: status >= 500 ? 'server_error' : 'invalid_request', error_description: err.message });
    } else {
      res.destroy();
    }
  });
});

startSweeper();

// ---------------------------------------------------------------- lifecycle

let shuttingDown = false;
function shutdown() {
  if (shuttingDown) return;
  shuttingDown = true;
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (process.env.EXIT_ON_STDIN_EOF === '1') {
  process.stdin.on('end', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume();
}
process.on('uncaughtException', (err) => {
  console.error('uncaughtException:', err);
});
process.on('unhandledRejection', (err) => {
  console.error('unhandledRejection:', err);
});

process.stdout.write(`${JSON.stringify({
  issuer,
  token_url: `${issuer}${tokenPath}`,
  admin_url: `${issuer}/__admin`,
  revocation_url: `${issuer}${provider.pathFor('revocation')}`,
  jwks_url: `${issuer}/jwks`,
  authorization_url: `${issuer}${provider.pathFor('authorization')}`,
  device_authorization_url: `${issuer}${provider.pathFor('device_authorization')}`,
  device_url: `${issuer}${provider.pathFor('code_verification')}`,
  pid: process.pid,
})}\n`);
