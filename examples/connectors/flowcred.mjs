// flowcred.mjs: a Node connector reading a credential handle from flowcred
// with fetch (Node >= 18, no npm packages). It reads <mount>/token/<handle>,
// caches the material until 90% of its lease (or, without a lease, of
// data.ttl) has passed, injects data.headers into its API calls, and branches
// on the answer: 404 (no binding), 400 "needs_reauth: ..." and 400
// "needs_authorization: ..." (a person must connect the binding).
//
//   VAULT_ADDR=... VAULT_TOKEN=... node flowcred.mjs HANDLE [API_URL]
//
// Optional: FLOWCRED_MOUNT (default flowcred), VAULT_NAMESPACE,
// FLOWCRED_CALLS (API calls to make, default 1), FLOWCRED_CALL_INTERVAL
// (seconds between them). Exit codes: 0 ok, 1 other error, 2 no binding,
// 3 needs_reauth, 4 needs_authorization. The token is never printed.

import { pathToFileURL } from "node:url";

export class FlowcredError extends Error {
  // kind: not_bound, needs_reauth, needs_authorization or error.
  constructor(kind, status, message) {
    super(message);
    this.kind = kind;
    this.status = status;
  }
}

export class Flowcred {
  constructor({ addr, token, namespace, mount = "flowcred" }) {
    Object.assign(this, { addr: addr.replace(/\/+$/, ""), token, namespace, mount });
    this.cache = new Map(); // handle -> { material, until }
    this.reads = 0;
  }

  // material returns data of token/<handle>: access_token, headers, ...
  async material(handle) {
    const hit = this.cache.get(handle);
    if (hit && Date.now() < hit.until) return hit.material;
    const headers = { "X-Vault-Token": this.token };
    if (this.namespace) headers["X-Vault-Namespace"] = this.namespace;
    const resp = await fetch(`${this.addr}/v1/${this.mount}/token/${encodeURIComponent(handle)}`, {
      headers,
      signal: AbortSignal.timeout(10_000),
    });
    this.reads++;
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok) throw answerError(resp.status, body);
    // Read again once 90% of the lease (or of data.ttl) is over.
    const seconds = body.lease_duration > 0 ? body.lease_duration : body.data.ttl ?? 0;
    this.cache.set(handle, { material: body.data, until: Date.now() + seconds * 900 });
    return body.data;
  }
}

// answerError branches on the status and the message's leading word only.
// Vault wraps some messages ("1 error occurred:\n\t* ..."); that goes first.
function answerError(status, body) {
  const msg = (body.errors ?? [])
    .join("; ")
    .replace(/^\d+ errors? occurred:\s*\*\s*/, "")
    .replace(/\s+/g, " ")
    .trim();
  const word = msg.match(/^(\w+):/)?.[1];
  if (status === 404) return new FlowcredError("not_bound", status, msg || "no binding (or nothing mounted)");
  if (status === 400 && (word === "needs_reauth" || word === "needs_authorization")) {
    return new FlowcredError(word, status, msg);
  }
  return new FlowcredError("error", status, `HTTP ${status}: ${msg}`);
}

const exitCodes = { error: 1, not_bound: 2, needs_reauth: 3, needs_authorization: 4 };

async function main() {
  const [handle, apiURL] = process.argv.slice(2);
  const fc = new Flowcred({
    addr: process.env.VAULT_ADDR,
    token: process.env.VAULT_TOKEN,
    namespace: process.env.VAULT_NAMESPACE,
    mount: process.env.FLOWCRED_MOUNT || "flowcred",
  });
  const calls = Number(process.env.FLOWCRED_CALLS || 1);
  const interval = Number(process.env.FLOWCRED_CALL_INTERVAL || 0);
  try {
    for (let i = 1; i <= calls; i++) {
      if (i > 1) await new Promise((r) => setTimeout(r, interval * 1000));
      const m = await fc.material(handle);
      if (apiURL) {
        const resp = await fetch(apiURL, { headers: m.headers });
        console.log(`call ${i}: HTTP ${resp.status}`);
      }
    }
    console.log(`ok handle=${handle} vault_reads=${fc.reads} calls=${calls}`);
  } catch (err) {
    if (!(err instanceof FlowcredError)) throw err;
    switch (err.kind) {
      case "not_bound":
        console.log(`not_bound: handle ${handle} has no binding: ${err.message}`);
        break;
      case "needs_reauth":
      case "needs_authorization":
        console.log(`${err.kind}: ask an operator to connect the binding: ${err.message}`);
        break;
      default:
        console.log(`error: ${err.message}`);
    }
    process.exitCode = exitCodes[err.kind];
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) await main();
