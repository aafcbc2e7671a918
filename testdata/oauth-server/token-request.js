// What server.js does to a token request before oidc-provider sees it.

import { readBody } from './admin.js';
import { checkDevicePoll } from './connect.js';

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

// createPreprocess returns the function that reads the token request body up
// front (it is small) so that we can
//  - record the grant_type / client for stats even when the request fails early,
//  - let Google-style JWT-bearer requests (no client authentication at all)
//    through oidc-provider's client authentication by adding client_id=jwt-bearer,
//  - map an `audience` parameter to a `resource` indicator for client_credentials,
//  - enforce the registered client authentication method,
//  - answer slow_down to a device code polled too often (connect.js).
// The (possibly rewritten) body is handed to oidc-provider as req.body. It
// returns an error answer ({error, error_description, status?}; status
// default 401) or undefined.
export function createPreprocess({ jwtBearer, jwtBearerClient, authMethods }) {
  return async function preprocessTokenRequest(req) {
    const ct = String(req.headers['content-type'] ?? '').toLowerCase();
    if (!ct.startsWith('application/x-www-form-urlencoded')) return undefined;
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
      form.set('client_id', jwtBearerClient);
      req.flowcredClientId = jwtBearerClient;
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
    const registered = authMethods[req.flowcredClientId];
    if (
      (registered === 'client_secret_post' && hasBasic)
      || (registered === 'client_secret_basic' && !hasBasic && form.has('client_secret'))
    ) {
      return {
        error: 'invalid_client',
        error_description: `client authentication failed (client ${req.flowcredClientId} must use ${registered})`,
      };
    }
    const slowDown = checkDevicePoll(form);
    if (slowDown) return { ...slowDown, status: 400 };
    return undefined;
  };
}
