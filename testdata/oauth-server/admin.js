// The admin API of server.js (JSON, loopback only):
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
//   POST   /__admin/revoke-account {"account_id","client_id"?}
//                                  -> {"grants_revoked"} (every grant of the account)
//   GET    /__admin/issued[?client_id=] -> {"tokens":[{"kind","value","client_id","account_id"}]}
//          every opaque access token, refresh token, authorization code and
//          device code issued so far (for leak scans; test secrets only)
//   The config also takes "device_interval" (the interval device
//   authorizations announce, default 5) and "device_min_poll_gap" (polls of
//   one device code closer than this answer slow_down; 0 = the interval).

import { listEntries, listIssued } from './adapter.js';
import { deviceSettings } from './connect.js';

// The counters of GET /__admin/stats.
export function newStats() {
  return {
    token_requests: {},
    token_success: {},
    by_client: {},
    errors: {},
    refresh_token_reuse_detected: 0,
    grants_revoked: 0,
    refresh_tokens_minted: 0,
    revocation_requests: 0,
    device_authorizations: 0,
  };
}

const BODY_LIMIT = 1024 * 1024;

export function readBody(req) {
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

export function sendJSON(res, status, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

function positiveInt(v, name) {
  if (!Number.isInteger(v) || v <= 0) {
    throw Object.assign(new Error(`${name} must be a positive integer (seconds)`), { status: 400 });
  }
  return v;
}

function nonNegativeInt(v, name) {
  if (!Number.isInteger(v) || v < 0) {
    throw Object.assign(new Error(`${name} must be a non-negative integer (seconds)`), { status: 400 });
  }
  return v;
}

// createAdmin returns the admin request handler. state holds stats and
// lastAssertion (replaced on reset).
export function createAdmin({
  provider, settings, state, jwtBearer, issuer, tokenPath, storeSize,
}) {
  async function mintRefreshToken({
    client_id: clientId, scope, account_id: accountId, resource,
  }) {
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
    state.stats.refresh_tokens_minted += 1;
    return {
      refresh_token: value, grant_id: grantId, account_id: account, scope: effectiveScope,
    };
  }

  async function revokeGrant(grantId) {
    await Promise.all([
      provider.RefreshToken.revokeByGrantId(grantId),
      provider.AccessToken.revokeByGrantId(grantId),
      provider.Grant.adapter.destroy(grantId),
    ]);
  }

  async function revokeRefreshToken({ refresh_token: value }) {
    if (!value) throw Object.assign(new Error('refresh_token is required'), { status: 400 });
    const rt = await provider.RefreshToken.find(value, { ignoreExpiration: true });
    if (!rt) throw Object.assign(new Error('refresh token not found'), { status: 404 });
    const { grantId } = rt;
    await rt.destroy();
    if (grantId) await revokeGrant(grantId);
    return { revoked: true, grant_id: grantId ?? null };
  }

  // revokeAccount revokes every grant of account_id (with every refresh and
  // access token of it), for client_id only when given: how a test revokes
  // a refresh token it never saw (one a connect flow gave the plugin).
  async function revokeAccount({ account_id: accountId, client_id: clientId }) {
    if (!accountId) throw Object.assign(new Error('account_id is required'), { status: 400 });
    const grantIds = listEntries('Grant')
      .filter(([, g]) => g.accountId === accountId && (!clientId || g.clientId === clientId))
      .map(([id]) => id);
    await Promise.all(grantIds.map(revokeGrant));
    return { grants_revoked: grantIds.length };
  }

  function configView() {
    return {
      access_token_ttl: settings.accessTokenTTL,
      id_token_ttl: settings.idTokenTTL,
      refresh_token_ttl: settings.refreshTokenTTL,
      device_interval: deviceSettings.interval,
      device_min_poll_gap: deviceSettings.minPollGap,
    };
  }

  function setConfig(body) {
    if (body.access_token_ttl !== undefined) settings.accessTokenTTL = positiveInt(body.access_token_ttl, 'access_token_ttl');
    if (body.id_token_ttl !== undefined) settings.idTokenTTL = positiveInt(body.id_token_ttl, 'id_token_ttl');
    if (body.refresh_token_ttl !== undefined) settings.refreshTokenTTL = positiveInt(body.refresh_token_ttl, 'refresh_token_ttl');
    if (body.device_interval !== undefined) deviceSettings.interval = positiveInt(body.device_interval, 'device_interval');
    if (body.device_min_poll_gap !== undefined) deviceSettings.minPollGap = nonNegativeInt(body.device_min_poll_gap, 'device_min_poll_gap');
  }

  return async function admin(req, res, pathname, searchParams) {
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
        setConfig(body);
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
        return sendJSON(res, 200, { ...state.stats, store_size: storeSize() });
      case 'POST /__admin/stats/reset':
        state.stats = newStats();
        state.lastAssertion = null;
        return sendJSON(res, 200, { ok: true });
      case 'GET /__admin/last-assertion':
        return sendJSON(res, 200, state.lastAssertion ?? {});
      case 'POST /__admin/revoke':
        return sendJSON(res, 200, await revokeRefreshToken(body));
      case 'GET /__admin/issued':
        return sendJSON(res, 200, {
          tokens: listIssued().filter((t) => !searchParams.get('client_id') || t.client_id === searchParams.get('client_id')),
        });
      case 'POST /__admin/revoke-account':
        return sendJSON(res, 200, await revokeAccount(body));
      default:
        return sendJSON(res, 404, { error: `no admin route ${route}` });
    }
  };
}
