// RFC 7523 JWT-bearer authorization grant, Google service-account style.
//
// The grant verifies the `assertion` against public keys registered at runtime
// (admin API) for the assertion's `iss`, checks the claims the way Google's
// token endpoint does, and answers with either an access token or (when the
// assertion carries `target_audience`) a Google-shaped `{"id_token": ...}`.

import crypto from 'node:crypto';

import * as jose from 'jose';

export const GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

// Google's texts, where they apply.
export const MSG = {
  signature: 'Invalid JWT Signature.',
  timeframe: 'Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.',
  account: 'Invalid grant: account not found',
  scope: 'Invalid OAuth scope or ID token audience provided.',
  missingAssertion: 'Missing required parameter: assertion',
};

const MAX_LIFETIME = 3600; // seconds between iat and exp
const MAX_FUTURE_IAT = 60; // seconds of allowed clock skew for iat

// issuer -> [{ kid, key: KeyObject, algorithms: [..] }]
const issuers = new Map();

function algorithmsFor(key) {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return ['RS256', 'RS384', 'RS512'];
    case 'rsa-pss':
      return ['PS256', 'PS384', 'PS512'];
    case 'ec': {
      const crv = key.asymmetricKeyDetails?.namedCurve;
      if (crv === 'prime256v1' || crv === 'P-256') return ['ES256'];
      if (crv === 'secp384r1' || crv === 'P-384') return ['ES384'];
      if (crv === 'secp521r1' || crv === 'P-521') return ['ES512'];
      throw new Error(`unsupported EC curve ${crv}`);
    }
    case 'ed25519':
      return ['EdDSA', 'Ed25519'];
    default:
      throw new Error(`unsupported key type ${key.asymmetricKeyType}`);
  }
}

// Accepts { public_key_pem } (SPKI, PKCS#1 or an X.509 certificate) or { jwk }.
export function parsePublicKey({ public_key_pem: pem, jwk }) {
  let key;
  if (pem) {
    key = crypto.createPublicKey(pem);
  } else if (jwk) {
    key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
  } else {
    throw new Error('public_key_pem or jwk is required');
  }
  if (key.type !== 'public') {
    key = crypto.createPublicKey(key);
  }
  return key;
}

export function registerIssuer({ issuer, kid, replace, ...keyMaterial }) {
  if (!issuer || typeof issuer !== 'string') throw new Error('issuer is required');
  const key = parsePublicKey(keyMaterial);
  const algorithms = algorithmsFor(key);
  const effectiveKid = kid ?? keyMaterial.jwk?.kid;
  let list = replace ? [] : (issuers.get(issuer) ?? []);
  if (effectiveKid !== undefined) {
    list = list.filter((k) => k.kid !== effectiveKid);
  }
  list.push({ kid: effectiveKid, key, algorithms });
  issuers.set(issuer, list);
  return { issuer, keys: list.map((k) => ({ kid: k.kid ?? null, algorithms: k.algorithms })) };
}

export function removeIssuer(issuer, kid) {
  if (!issuers.has(issuer)) return false;
  if (kid === undefined || kid === null || kid === '') {
    issuers.delete(issuer);
    return true;
  }
  const list = issuers.get(issuer).filter((k) => k.kid !== kid);
  if (list.length) issuers.set(issuer, list); else issuers.delete(issuer);
  return true;
}

export function listIssuers() {
  return Object.fromEntries([...issuers].map(([iss, list]) => [
    iss, list.map((k) => ({ kid: k.kid ?? null, algorithms: k.algorithms })),
  ]));
}

export function createJwtBearerHandler({
  errors, settings, signingKey, onVerified, randomToken,
}) {
  const { InvalidGrant, InvalidRequest, InvalidScope } = errors;

  function fail(description) {
    const err = new InvalidGrant();
    err.error_description = description;
    return err;
  }

  return async function jwtBearerHandler(ctx) {
    const { params } = ctx.oidc;
    const { assertion } = params;
    if (!assertion) {
      throw new InvalidRequest(MSG.missingAssertion);
    }

    let header;
    let claims;
    try {
      header = jose.decodeProtectedHeader(assertion);
      claims = jose.decodeJwt(assertion);
    } catch (e) {
      throw fail(`Invalid JWT: malformed assertion (${e.message})`);
    }

    const list = typeof claims.iss === 'string' ? issuers.get(claims.iss) : undefined;
    if (!list?.length) {
      throw fail(MSG.account);
    }

    const candidates = header.kid !== undefined
      ? list.filter((k) => k.kid === header.kid)
      : list;
    let verified = false;
    for (const { key, algorithms } of candidates) {
      if (!algorithms.includes(header.alg)) continue;
      try {
        // eslint-disable-next-line no-await-in-loop
        await jose.compactVerify(assertion, key, { algorithms });
        verified = true;
        break;
      } catch {
        // try the next key
      }
    }
    if (!verified) {
      throw fail(MSG.signature);
    }

    const tokenUrl = ctx.oidc.urlFor('token');
    const { issuer } = ctx.oidc.provider;
    const auds = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!auds.some((a) => a === tokenUrl || a === issuer || a === `${issuer}/`)) {
      throw fail(`Invalid JWT: Failed audience check. The right audience is ${tokenUrl}`);
    }

    const now = Math.floor(Date.now() / 1000);
    const { iat, exp } = claims;
    if (
      typeof exp !== 'number'
      || typeof iat !== 'number'
      || exp <= iat
      || exp - iat > MAX_LIFETIME
      || iat > now + MAX_FUTURE_IAT
      || exp <= now
    ) {
      throw fail(MSG.timeframe);
    }

    const targetAudience = claims.target_audience;
    const scope = (typeof claims.scope === 'string' && claims.scope.trim())
      ? claims.scope.trim().split(/\s+/).join(' ')
      : (params.scope || '');

    if (!targetAudience && !scope) {
      throw new InvalidScope(MSG.scope, '');
    }

    onVerified({
      iss: claims.iss,
      sub: claims.sub,
      aud: claims.aud,
      scope: claims.scope,
      iat,
      exp,
      kid: header.kid,
      alg: header.alg,
      target_audience: targetAudience,
      form_scope: params.scope,
    });

    if (targetAudience) {
      const subject = claims.sub || claims.iss;
      const idToken = await new jose.SignJWT({
        aud: targetAudience,
        azp: claims.iss,
        sub: subject,
        email: subject,
        email_verified: true,
      })
        .setProtectedHeader({ alg: 'RS256', kid: signingKey.kid, typ: 'JWT' })
        .setIssuer(issuer)
        .setIssuedAt(now)
        .setExpirationTime(now + settings.idTokenTTL)
        .sign(signingKey.key);
      ctx.body = { id_token: idToken };
      return;
    }

    ctx.body = {
      access_token: `ya29.${randomToken()}`,
      token_type: 'Bearer',
      expires_in: settings.accessTokenTTL,
      scope,
    };
  };
}
