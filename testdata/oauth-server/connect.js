// What connecting a binding needs from the test server: the connect clients
// (authorization code with PKCE, refresh token, device grant; native
// clients, so a loopback redirect URI matches on any port, RFC 8252 section
// 7.3), the device grant's polling interval, and slow_down.
//
// oidc-provider 9.13.3 answers a device authorization without `interval`
// and never answers `slow_down` (its SlowDown error exists but nothing throws
// it). This server adds both, as RFC 8628 sections 3.2 and 3.5 describe:
// every device authorization answer carries `interval` (default 5 s), and a
// poll of a device code sooner than the minimum gap after the previous poll
// of that code (default: the interval) is answered 400 slow_down. The admin
// API sets both (device_interval, device_min_poll_gap).

import crypto from 'node:crypto';

// Test-only client credentials. Keep in sync with internal/oauthtest/clients.go.
export const CONNECT_SECRETS = {
  'connect-basic': 'connect-basic-secret-for-tests-only',
  'connect-post': 'connect-post-secret-for-tests-only',
  'connect-rotate': 'connect-rotate-secret-for-tests-only',
};
export const CONNECT_AUTH_METHODS = {
  'connect-basic': 'client_secret_basic',
  'connect-post': 'client_secret_post',
  'connect-rotate': 'client_secret_basic',
};
export const CONNECT_ROTATING = new Set(['connect-rotate']);

export const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

// Where a connect client may send the browser back. Native clients: any port
// of the loopback address matches (oidc-provider's redirectUriAllowed). The
// second one is a Vault dev server's public callback for a mount named
// flowcred (http://127.0.0.1:PORT/v1/flowcred/callback).
export const CONNECT_REDIRECT_URIS = [
  'http://127.0.0.1/callback',
  'http://127.0.0.1/v1/flowcred/callback',
];

export function isConnectClient(id) {
  return Object.hasOwn(CONNECT_SECRETS, id ?? '');
}

export function connectClients() {
  return Object.entries(CONNECT_AUTH_METHODS).map(([id, method]) => ({
    client_id: id,
    client_secret: CONNECT_SECRETS[id],
    application_type: 'native',
    token_endpoint_auth_method: method,
    grant_types: ['authorization_code', 'refresh_token', DEVICE_GRANT],
    response_types: ['code'],
    redirect_uris: CONNECT_REDIRECT_URIS,
    id_token_signed_response_alg: 'ES256',
  }));
}

// Device grant settings (seconds); the admin API changes them.
export const deviceSettings = {
  interval: 5,
  minPollGap: 0, // 0: the interval
};

// Last poll (ms epoch) by the SHA-256 of a device code; entries go after
// the device code's lifetime (600 s) with some margin.
const lastPoll = new Map();
const FORGET_AFTER_MS = 15 * 60 * 1000;

const digest = (v) => crypto.createHash('sha256').update(v).digest('base64url');

// checkDevicePoll answers slow_down for a device code polled too soon after
// its previous poll; undefined lets the request through.
export function checkDevicePoll(form) {
  if (form.get('grant_type') !== DEVICE_GRANT || !form.get('device_code')) return undefined;
  const key = digest(form.get('device_code'));
  const now = Date.now();
  const gap = (deviceSettings.minPollGap || deviceSettings.interval) * 1000;
  const prev = lastPoll.get(key);
  lastPoll.set(key, now);
  if (lastPoll.size > 10_000) {
    for (const [k, at] of lastPoll) {
      if (now - at > FORGET_AFTER_MS) lastPoll.delete(k);
    }
  }
  if (prev !== undefined && now - prev < gap) {
    return {
      error: 'slow_down',
      error_description: `polled ${now - prev} ms after the previous poll; poll at most every ${gap / 1000} s`,
    };
  }
  return undefined;
}

// addInterval puts the polling interval into a device authorization answer.
export function addInterval(body) {
  if (body && typeof body === 'object' && body.interval === undefined) {
    body.interval = deviceSettings.interval;
  }
}
