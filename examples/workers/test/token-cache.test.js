// Tests of the Worker recipe's caching logic on Node (node --test test/),
// with Vault and the API replaced by a fake fetch and DO storage by a Map.
import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";

import worker, { TokenCache, refreshAt, minTTLFor, vaultError } from "../src/index.js";

const T0 = Date.parse("2030-01-01T00:00:00Z");

let calls;
let tokenSeq;
let vaultAnswer; // optional override for token reads: (url) => Response
let revoked;

function fakeFetch(input, init = {}) {
  const url = new URL(typeof input === "string" ? input : input.url);
  calls.push({ path: url.pathname, query: url.search, headers: init.headers ?? {} });
  if (url.pathname === "/v1/auth/approle/login") {
    const body = JSON.parse(init.body);
    assert.equal(body.role_id, "role-id");
    return Promise.resolve(Response.json({ auth: { client_token: "vault-token", lease_duration: 3600 } }));
  }
  if (url.pathname.startsWith("/v1/flowcred/token/")) {
    if (vaultAnswer) return Promise.resolve(vaultAnswer(url));
    tokenSeq++;
    return Promise.resolve(
      Response.json({
        lease_id: `flowcred/token/google_sales/${tokenSeq}`,
        lease_duration: 3300,
        data: {
          handle: "google_sales",
          kind: "google.oauth2",
          access_token: `tok-${tokenSeq}`,
          token_type: "Bearer",
          expires_at: new Date(T0 + 3600_000).toISOString(),
          expires_in: 3600,
          headers: { Authorization: `Bearer tok-${tokenSeq}` },
        },
      }),
    );
  }
  if (url.hostname === "sheets.googleapis.com") {
    const auth = init.headers?.Authorization ?? "";
    if (revoked.has(auth)) return Promise.resolve(new Response("{}", { status: 401 }));
    return Promise.resolve(new Response(`rows for ${auth}`, { status: 200 }));
  }
  return Promise.resolve(new Response("unexpected", { status: 599 }));
}

function newCache() {
  const store = new Map();
  const state = {
    storage: {
      get: async (k) => store.get(k),
      put: async (k, v) => void store.set(k, structuredClone(v)),
    },
  };
  const env = { VAULT_ADDR: "https://vault.test", VAULT_ROLE_ID: "role-id", VAULT_SECRET_ID: "secret-id", REFRESH_MARGIN_SECONDS: "60" };
  return { cache: new TokenCache(state, env), state, env };
}

const tokenReads = () => calls.filter((c) => c.path.startsWith("/v1/flowcred/token/"));

beforeEach(() => {
  calls = [];
  tokenSeq = 0;
  vaultAnswer = null;
  revoked = new Set();
  globalThis.fetch = fakeFetch;
});

test("cached until the lease end minus the margin", async () => {
  const { cache } = newCache();
  const m1 = await cache.resolve("google_sales", null, T0);
  const m2 = await cache.resolve("google_sales", null, T0 + 3300_000 - 61_000);
  assert.equal(m1.access_token, "tok-1");
  assert.equal(m2.access_token, "tok-1");
  assert.equal(tokenReads().length, 1);
  assert.equal(calls.filter((c) => c.path === "/v1/auth/approle/login").length, 1);
  assert.equal(tokenReads()[0].headers["X-Vault-Token"], "vault-token");

  const m3 = await cache.resolve("google_sales", null, T0 + 3300_000 - 59_000);
  assert.equal(m3.access_token, "tok-2");
  assert.equal(tokenReads().length, 2);
});

test("concurrent resolves share one Vault read", async () => {
  const { cache } = newCache();
  const all = await Promise.all(Array.from({ length: 20 }, () => cache.resolve("google_sales", null, T0)));
  assert.ok(all.every((m) => m.access_token === "tok-1"));
  assert.equal(tokenReads().length, 1);
});

test("material survives the object's eviction through storage", async () => {
  const { cache, state, env } = newCache();
  await cache.resolve("google_sales", null, T0);
  const again = new TokenCache(state, env);
  const m = await again.resolve("google_sales", null, T0 + 1000);
  assert.equal(m.access_token, "tok-1");
  assert.equal(tokenReads().length, 1);
});

test("a rejected token is replaced with a min_ttl read", async () => {
  const { cache } = newCache();
  const m1 = await cache.resolve("google_sales", null, T0);
  const m2 = await cache.resolve("google_sales", m1.access_token, T0 + 10_000);
  assert.equal(m2.access_token, "tok-2");
  assert.equal(tokenReads()[1].query, "?min_ttl=3595");
  // Another caller rejecting the old token gets the new one without a read.
  const m3 = await cache.resolve("google_sales", m1.access_token, T0 + 11_000);
  assert.equal(m3.access_token, "tok-2");
  assert.equal(tokenReads().length, 2);
});

test("a Vault token Vault refuses is replaced by a new login", async () => {
  const { cache } = newCache();
  let first = true;
  vaultAnswer = () => {
    if (first) {
      first = false;
      return Response.json({ errors: ["permission denied"] }, { status: 403 });
    }
    vaultAnswer = null;
    return fakeFetch("https://vault.test/v1/flowcred/token/google_sales");
  };
  const m = await cache.resolve("google_sales", null, T0);
  assert.equal(m.access_token, "tok-1");
  assert.equal(calls.filter((c) => c.path === "/v1/auth/approle/login").length, 2);
});

test("errors are mapped like the Go resolver's", async () => {
  const { cache } = newCache();
  vaultAnswer = () => Response.json({ errors: ['no binding for handle "google_sales"'] }, { status: 404 });
  await assert.rejects(cache.resolve("google_sales", null, T0), (e) => e.kind === "not_found" && e.status === 404);
  assert.equal(vaultError(400, { errors: ['needs_reauth: handle "x" needs re-authorization: invalid_grant'] }).kind, "needs_reauth");
  assert.equal(vaultError(400, { errors: ['needs_authorization: handle "x" has no refresh token'] }).kind, "needs_authorization");
  assert.equal(vaultError(400, { errors: ['handle "x" needs re-authorization: invalid_grant'] }).kind, "misconfigured");
  assert.equal(vaultError(502, { errors: ["no cached token is valid"] }).kind, "unavailable");
  assert.equal(vaultError(403, {}).kind, "permission_denied");
  assert.equal(vaultError(400, { errors: ["secret missing"] }).kind, "misconfigured");
});

test("refreshAt and minTTLFor", () => {
  const m = { fetched_at: T0, lease_duration: 100, expires_at: new Date(T0 + 50_000).toISOString() };
  assert.equal(refreshAt(m, 10_000), T0 + 40_000); // the token ends before the lease
  assert.equal(refreshAt({ fetched_at: T0, lease_duration: 100, expires_at: null }, 10_000), T0 + 90_000);
  assert.equal(minTTLFor(m, T0), 55);
  assert.equal(minTTLFor({ expires_at: null }, T0), 0);
});

test("the Worker retries a 401 once with a fresh token", async () => {
  const { cache } = newCache();
  const env = {
    SHEET_ID: "sheet",
    TOKEN_CACHE: {
      idFromName: (n) => n,
      get: () => ({ fetch: (url, init) => cache.fetch(new Request(url, init)) }),
    },
  };
  revoked.add("Bearer tok-1");
  const resp = await worker.fetch(new Request("https://worker.test/leads"), env);
  assert.equal(resp.status, 200);
  assert.equal(await resp.text(), "rows for Bearer tok-2");
  const apiCalls = calls.filter((c) => c.path.startsWith("/v4/"));
  assert.equal(apiCalls.length, 2);
});
