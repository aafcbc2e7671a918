// Loopback OAuth2 test server for flowcred, built on panva's oidc-provider.
//
//   PORT=0 node --no-warnings server.js
//
// Prints exactly one JSON line on stdout once ready:
//   {"issuer":"http://127.0.0.1:PORT","token_url":"...","admin_url":".../__admin", ...}
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
// The registered auth method is enforced (oidc-provider alone accepts either
// client_secret_basic or client_secret_post for any secret-based client).
//
// Admin API (JSON, loopback only):
//   GET    /__admin/health
//   POST   /__admin/refresh-tokens {"client_id","scope","account_id","resource"?}
//                                  -> {"refresh_token","grant_id",...}
//   GET    /__admin/config; POST /__admin/config
//          {"access_token_ttl","id_token_ttl","refresh_token_ttl"} (seconds)
//   GET    /__admin/jwt-issuers
//   POST   /__admin/jwt-issuers {"issuer","kid"?,"public_key_pem"|"jwk","replace"?}
//   DELETE /__admin/jwt-issuers {"issuer","kid"?} (or ?issuer=&kid=)
//   GET    /__admin/stats; POST /__admin/stats/reset
//   GET    /__admin/last-assertion  ({} if none)
//   POST   /__admin/revoke {"refresh_token"}  (revokes the whole grant)
// The RFC 7009 revocation endpoint is at /token/revocation, introspection at
// /token/introspection, the signing keys at /jwks.

import crypto from 'node:crypto';
import http from 'node:http';

// Silence two known-harmless oidc-provider notices before it is loaded:
// the Node 20 "Unsupported runtime" warning and the one about our pre-parsed
// token request bodies (see preprocessTokenRequest).
const origWarn = console.warn;
console.warn = (...args) => {
  const first = String(args[0] ?? '');
  if (first.includes('Unsupported runtime') || first.includes('already parsed request body')) return;
  origWarn(...args);
};

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
};
// Pseudo client used for client-less (Google style) JWT-bearer requests.
const JWT_BEARER_CLIENT = 'jwt-bearer';
const ROTATING_CLIENTS = new Set(['rt-rotate']);
// oidc-provider accepts client_secret_basic and client_secret_post
// interchangeably for any secret-based client; we enforce the registered
// method so tests notice a client using the wrong auth style.
const AUTH_METHODS = {
  'rt-basic': 'client_secret_basic',
  'rt-post': 'client_secret_post',
  'rt-rotate': 'client_secret_basic',
  'cc-client': 'client_secret_basic',
  'cc-post': 'client_secret_post',
};

const settings = {
  accessTokenTTL: 3600,
  idTokenTTL: 3600,
  refreshTokenTTL: 14 * 24 * 3600,
};

// ---------------------------------------------------------------- stats

function newStats() {
  return {
    token_requests: {},
    token_success: {},
    by_client: {},
    errors: {},
    refresh_token_reuse_detected: 0,
    grants_revoked: 0,
    refresh_tokens_minted: 0,
    revocation_requests: 0,
  };
}
let stats = newStats();
let lastAssertion = null;

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
    devInteractions: { enabled: false },
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
  rotateRefreshToken: (ctx) => ROTATING_CLIENTS.has(ctx.oidc.client.clientId),
  issueRefreshToken: async (ctx, client, code) => client.grantTypeAllowed('refresh_token')
    && code.scopes.has('offline_access'),
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
    onVerified: (claims) => { lastAssertion = claims; },
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
  inc(stats.token_requests, gt);
  inc(stats.token_success, gt);
  inc(stats.by_client, clientOf(ctx));
});

provider.on('grant.error', (ctx, err) => {
  const gt = grantTypeOf(ctx);
  inc(stats.token_requests, gt);
  inc(stats.by_client, clientOf(ctx));
  const code = ctx.body?.error ?? err.error ?? 'unknown';
  inc(stats.errors, code);
  if (err.error_detail === 'refresh token already used') {
    stats.refresh_token_reuse_detected += 1;
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

provider.on('grant.revoked', () => { stats.grants_revoked += 1; });
provider.on('revocation.success', () => { stats.revocation_requests += 1; });
provider.on('revocation.error', (ctx, err) => {
  stats.revocation_requests += 1;
  inc(stats.errors, err.error ?? 'unknown');
});
provider.on('server_error', (ctx, err) => {
  console.error(`server_error ${ctx?.method} ${ctx?.path}:`, err);
});

// ---------------------------------------------------------------- request plumbing

const BODY_LIMIT = 1024 * 1024;

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > BODY_LIMIT) {
        reject(Object.assign(new Error('request entity too large'), { status: 413 }));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks, size).toString('utf8')));
    req.on('error', reject);
  });
}

function basicClientId(req) {
  const h = req.headers.authorization;
  if (!h || !h.toLowerCase().startsWith('basic ')) return undefined;
  try {
    const dec = Buffer.from(h.slice(6), 'base64').toString('utf8');
    const i = dec.indexOf(':');
    return i === -1 ? undefined : decodeURIComponent(dec.slice(0, i).replace(/\+/g, '%20'));
  } catch {
    return undefined;
  }
}

// Reads the token request body up front (it is small) so that we can
//  - record the grant_type / client for stats even when the request fails early,
//  - let Google-style JWT-bearer requests (no client authentication at all)
//    through oidc-provider's client authentication by adding client_id=jwt-bearer,
//  - map an `audience` parameter to a `resource` indicator for client_credentials.
// The (possibly rewritten) body is handed to oidc-provider as req.body.
async function preprocessTokenRequest(req) {
  const ct = String(req.headers['content-type'] ?? '').toLowerCase();
  if (!ct.startsWith('application/x-www-form-urlencoded')) return;
  const raw = await readBody(req);
  const form = new URLSearchParams(raw);
  const gt = form.get('grant_type') ?? undefined;
  req.flowcredGrantType = gt;
  req.flowcredClientId = form.get('client_id') ?? basicClientId(req);
  let changed = false;
  if (
    gt === jwtBearer.GRANT_TYPE
    && !req.headers.authorization
    && !form.has('client_id')
    && !form.has('client_assertion')
  ) {
    form.set('client_id', JWT_BEARER_CLIENT);
    req.flowcredClientId = JWT_BEARER_CLIENT;
    changed = true;
  }
  if (gt === 'client_credentials' && form.has('audience')) {
    const audience = form.get('audience');
    form.delete('audience');
    if (!form.has('resource') && URL.canParse(audience)) {
      form.set('resource', audience);
    }
    changed = true;
  }
  req.body = changed ? form.toString() : raw;

  const hasBasic = basicClientId(req) !== undefined;
  const registered = AUTH_METHODS[req.flowcredClientId];
  if (
    (registered === 'client_secret_post' && hasBasic)
    || (registered === 'client_secret_basic' && !hasBasic && form.has('client_secret'))
  ) {
    return {
      error: 'invalid_client',
      error_description: `client authentication failed (client ${req.flowcredClientId} must use ${registered})`,
    };
  }
  return undefined;
}

function sendJSON(res, status, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

// ---------------------------------------------------------------- admin API

async function mintRefreshToken({ client_id: clientId, scope, account_id: accountId, resource }) {
  const client = await provider.Client.find(clientId ?? '');
  if (!client) throw Object.assign(new Error(`unknown client_id ${clientId}`), { status: 400 });
  if (!client.grantTypeAllowed('refresh_token')) {
    throw Object.assign(new Error(`client ${clientId} may not use refresh_token`), { status: 400 });
  }
  const effectiveScope = scope || 'openid offline_access api';
  const account = accountId || 'alice';
  const grant = new provider.Grant({ accountId: account, clientId });
  grant.addOIDCScope(effectiveScope);
  if (resource) grant.addResourceScope(resource, effectiveScope);
  const grantId = await grant.save();
  const now = Math.floor(Date.now() / 1000);
  const rt = new provider.RefreshToken({
    accountId: account,
    authTime: now,
    client,
    expiresWithSession: false,
    grantId,
    gty: 'authorization_code',
    resource: resource || undefined,
    rotations: 0,
    scope: effectiveScope,
  });
  const value = await rt.save();
  stats.refresh_tokens_minted += 1;
  return { refresh_token: value, grant_id: grantId, account_id: account, scope: effectiveScope };
}

async function revokeRefreshToken({ refresh_token: value }) {
  if (!value) throw Object.assign(new Error('refresh_token is required'), { status: 400 });
  const rt = await provider.RefreshToken.find(value, { ignoreExpiration: true });
  if (!rt) throw Object.assign(new Error('refresh token not found'), { status: 404 });
  const { grantId } = rt;
  await rt.destroy();
  if (grantId) {
    await Promise.all([
      provider.RefreshToken.revokeByGrantId(grantId),
      provider.AccessToken.revokeByGrantId(grantId),
      provider.Grant.adapter.destroy(grantId),
    ]);
  }
  return { revoked: true, grant_id: grantId ?? null };
}

function configView() {
  return {
    access_token_ttl: settings.accessTokenTTL,
    id_token_ttl: settings.idTokenTTL,
    refresh_token_ttl: settings.refreshTokenTTL,
  };
}

function positiveInt(v, name) {
  if (!Number.isInteger(v) || v <= 0) {
    throw Object.assign(new Error(`${name} must be a positive integer (seconds)`), { status: 400 });
  }
  return v;
}

async function admin(req, res, pathname, searchParams) {
  if (!LOOPBACK.has(req.socket.remoteAddress)) {
    sendJSON(res, 403, { error: 'forbidden' });
    return;
  }
  let body = {};
  if (req.method === 'POST' || req.method === 'DELETE' || req.method === 'PUT') {
    const raw = await readBody(req);
    if (raw.trim()) {
      try {
        body = JSON.parse(raw);
      } catch (e) {
        sendJSON(res, 400, { error: `invalid JSON body: ${e.message}` });
        return;
      }
    }
  }
  const route = `${req.method} ${pathname.replace(/\/+$/, '')}`;
  switch (route) {
    case 'GET /__admin':
    case 'GET /__admin/health':
      return sendJSON(res, 200, { ok: true, issuer, token_url: `${issuer}${tokenPath}` });
    case 'POST /__admin/refresh-tokens':
      return sendJSON(res, 200, await mintRefreshToken(body));
    case 'GET /__admin/config':
      return sendJSON(res, 200, configView());
    case 'POST /__admin/config':
      if (body.access_token_ttl !== undefined) settings.accessTokenTTL = positiveInt(body.access_token_ttl, 'access_token_ttl');
      if (body.id_token_ttl !== undefined) settings.idTokenTTL = positiveInt(body.id_token_ttl, 'id_token_ttl');
      if (body.refresh_token_ttl !== undefined) settings.refreshTokenTTL = positiveInt(body.refresh_token_ttl, 'refresh_token_ttl');
      return sendJSON(res, 200, configView());
    case 'GET /__admin/jwt-issuers':
      return sendJSON(res, 200, jwtBearer.listIssuers());
    case 'POST /__admin/jwt-issuers':
      try {
        return sendJSON(res, 200, jwtBearer.registerIssuer(body));
      } catch (e) {
        return sendJSON(res, 400, { error: e.message });
      }
    case 'DELETE /__admin/jwt-issuers': {
      const iss = body.issuer ?? searchParams.get('issuer');
      const kid = body.kid ?? searchParams.get('kid') ?? undefined;
      if (!iss) return sendJSON(res, 400, { error: 'issuer is required' });
      return sendJSON(res, 200, { removed: jwtBearer.removeIssuer(iss, kid) });
    }
    case 'GET /__admin/stats':
      return sendJSON(res, 200, { ...stats, store_size: storeSize() });
    case 'POST /__admin/stats/reset':
      stats = newStats();
      lastAssertion = null;
      return sendJSON(res, 200, { ok: true });
    case 'GET /__admin/last-assertion':
      return sendJSON(res, 200, lastAssertion ?? {});
    case 'POST /__admin/revoke':
      return sendJSON(res, 200, await revokeRefreshToken(body));
    default:
      return sendJSON(res, 404, { error: `no admin route ${route}` });
  }
}

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
        inc(stats.token_requests, req.flowcredGrantType ?? 'unknown');
        inc(stats.by_client, req.flowcredClientId ?? 'unknown');
        inc(stats.errors, reject.error);
        if (DEBUG) console.error(`token error ${JSON.stringify(reject)}`);
        sendJSON(res, 401, reject);
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
  pid: process.pid,
})}\n`);
