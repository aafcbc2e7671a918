// A Cloudflare Worker connector that calls Google Sheets with the credential
// handle google_sales, resolved by flowcred in Vault.
//
// - The Worker authenticates to Vault with AppRole (VAULT_ROLE_ID and
//   VAULT_SECRET_ID, set with `wrangler secret put`), and reads
//   <mount>/token/<handle>: only the token path, never a binding or a secret.
// - One Durable Object per handle (TokenCache) caches the material until the
//   end of its lease or the token's expiry, minus REFRESH_MARGIN_SECONDS, so
//   all isolates share one token and Vault sees one read per lease. Concurrent
//   requests inside the object share one Vault read.
// - On a 401 from the API, the Worker asks the object for a token newer than
//   the rejected one (read with min_ttl, which makes the plugin refresh) and
//   retries once.
// - The token never leaves the Worker: responses carry the API's answer, and
//   errors carry Vault's message (which never holds a secret).

const DEFAULT_MARGIN_SECONDS = 60;
const VAULT_TIMEOUT_MS = 10_000;

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname !== "/leads") {
      return new Response("not found\n", { status: 404 });
    }
    const api = `https://sheets.googleapis.com/v4/spreadsheets/${encodeURIComponent(env.SHEET_ID)}/values/Leads!A1:D100`;
    try {
      let material = await resolve(env, "google_sales");
      let resp = await fetch(api, { headers: material.headers });
      if (resp.status === 401) {
        material = await resolve(env, "google_sales", material.access_token);
        resp = await fetch(api, { headers: material.headers });
      }
      return new Response(resp.body, {
        status: resp.status,
        headers: { "content-type": resp.headers.get("content-type") ?? "application/json" },
      });
    } catch (err) {
      if (err instanceof ResolveError) {
        return Response.json({ error: err.kind, message: err.message }, { status: err.status });
      }
      throw err;
    }
  },
};

// ResolveError mirrors the Go resolver's errors: kind is one of not_found,
// needs_reauth, permission_denied, unavailable, misconfigured.
export class ResolveError extends Error {
  constructor(kind, status, message) {
    super(message);
    this.kind = kind;
    this.status = status;
  }
}

// resolve returns the handle's material from its Durable Object. rejected
// is the access token an API refused, if any.
export async function resolve(env, handle, rejected = null) {
  const stub = env.TOKEN_CACHE.get(env.TOKEN_CACHE.idFromName(handle));
  const resp = await stub.fetch("https://token-cache/resolve", {
    method: "POST",
    body: JSON.stringify({ handle, rejected }),
  });
  const body = await resp.json();
  if (!resp.ok) {
    throw new ResolveError(body.error, resp.status, body.message);
  }
  return body;
}

// TokenCache is a Durable Object holding one handle's material.
export class TokenCache {
  constructor(state, env) {
    this.state = state;
    this.env = env;
    this.material = undefined; // loaded from storage on first use
    this.vaultToken = undefined; // { token, expiresAt }
    this.inflight = null;
  }

  async fetch(request) {
    const { handle, rejected } = await request.json();
    try {
      return Response.json(await this.resolve(handle, rejected, Date.now()));
    } catch (err) {
      if (err instanceof ResolveError) {
        return Response.json({ error: err.kind, message: err.message }, { status: err.status });
      }
      return Response.json({ error: "unavailable", message: String(err) }, { status: 503 });
    }
  }

  async resolve(handle, rejected, now) {
    if (this.material === undefined) {
      // Storage survives the object's eviction; Cloudflare encrypts it at rest.
      this.material = (await this.state.storage.get("material")) ?? null;
    }
    const m = this.material;
    if (m && m.access_token !== rejected && now < refreshAt(m, this.marginMs())) {
      return m;
    }
    if (!this.inflight) {
      const minTTL = rejected && m && m.access_token === rejected ? minTTLFor(m, now) : 0;
      this.inflight = this.read(handle, minTTL, now).finally(() => {
        this.inflight = null;
      });
    }
    return this.inflight;
  }

  marginMs() {
    const s = Number(this.env.REFRESH_MARGIN_SECONDS ?? DEFAULT_MARGIN_SECONDS);
    return (Number.isFinite(s) && s >= 0 ? s : DEFAULT_MARGIN_SECONDS) * 1000;
  }

  // read fetches <mount>/token/<handle>, logging in again once if Vault
  // refuses the cached Vault token.
  async read(handle, minTTL, now) {
    const mount = (this.env.FLOWCRED_MOUNT ?? "flowcred").replace(/^\/+|\/+$/g, "");
    const query = minTTL > 0 ? `?min_ttl=${minTTL}` : "";
    const path = `/v1/${mount}/token/${encodeURIComponent(handle)}${query}`;
    let resp = await this.vault(path, { headers: await this.authHeaders(now) });
    if (resp.status === 403) {
      this.vaultToken = undefined;
      resp = await this.vault(path, { headers: await this.authHeaders(now) });
    }
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      throw vaultError(resp.status, body);
    }
    const d = body.data ?? {};
    const material = {
      handle: d.handle,
      kind: d.kind,
      access_token: d.access_token,
      token_type: d.token_type,
      expires_at: d.expires_at ?? null,
      expires_in: d.expires_in ?? null,
      headers: d.headers ?? {},
      lease_id: body.lease_id,
      lease_duration: body.lease_duration,
      fetched_at: now,
    };
    this.material = material;
    await this.state.storage.put("material", material);
    return material;
  }

  async authHeaders(now) {
    if (!this.vaultToken || now >= this.vaultToken.expiresAt) {
      const resp = await this.vault("/v1/auth/approle/login", {
        method: "POST",
        body: JSON.stringify({ role_id: this.env.VAULT_ROLE_ID, secret_id: this.env.VAULT_SECRET_ID }),
      });
      const body = await resp.json().catch(() => ({}));
      if (!resp.ok || !body.auth?.client_token) {
        throw vaultError(resp.status, body, "AppRole login failed");
      }
      // Log in again a little before the Vault token's own end.
      const ttl = body.auth.lease_duration > 0 ? body.auth.lease_duration * 1000 : 3_600_000;
      this.vaultToken = { token: body.auth.client_token, expiresAt: now + ttl * 0.9 };
    }
    const h = { "X-Vault-Token": this.vaultToken.token };
    if (this.env.VAULT_NAMESPACE) h["X-Vault-Namespace"] = this.env.VAULT_NAMESPACE;
    return h;
  }

  async vault(path, init) {
    try {
      return await fetch(this.env.VAULT_ADDR.replace(/\/+$/, "") + path, {
        ...init,
        signal: AbortSignal.timeout(VAULT_TIMEOUT_MS),
      });
    } catch (err) {
      throw new ResolveError("unavailable", 503, `Vault unreachable: ${err.message}`);
    }
  }
}

// refreshAt is when material stops being served from the cache: the end of
// its lease or the token's expiry, whichever is first, minus the margin.
export function refreshAt(m, marginMs) {
  let end = m.fetched_at + (m.lease_duration > 0 ? m.lease_duration * 1000 : 0);
  if (m.expires_at) {
    const exp = Date.parse(m.expires_at);
    if (!Number.isNaN(exp) && (m.lease_duration <= 0 || exp < end)) end = exp;
  }
  return end - marginMs;
}

// minTTLFor asks for more life than the rejected token has left, so that the
// plugin refreshes instead of serving it again.
export function minTTLFor(m, now) {
  if (!m.expires_at) return 0;
  const left = Math.ceil((Date.parse(m.expires_at) - now) / 1000);
  return Math.max(left, 0) + 5;
}

// vaultError maps Vault's answer like the Go resolver does.
export function vaultError(status, body, prefix = "") {
  const msg = (prefix ? prefix + ": " : "") + (body.errors ?? []).join("; ");
  if (status === 403) return new ResolveError("permission_denied", 403, msg || "permission denied");
  // The plugin answers 404 for an unbound handle (Vault's own 404 when nothing is
  // mounted), and a 400 whose message starts with the health word for a binding a
  // person must fix (docs/errors.md): decided by status and that word only.
  if (status === 404) return new ResolveError("not_found", 404, msg || "nothing mounted at the token path");
  const word = ((body.errors ?? [])[0] ?? "").trim().split(":")[0];
  if (status === 400 && word === "needs_reauth") return new ResolveError("needs_reauth", 409, msg);
  if (status === 400 && word === "needs_authorization") return new ResolveError("needs_authorization", 409, msg);
  if (status === 429 || status >= 500) return new ResolveError("unavailable", 503, msg || `Vault answered ${status}`);
  return new ResolveError("misconfigured", 500, msg || `Vault answered ${status}`);
}
