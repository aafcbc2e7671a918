// Unbounded in-memory adapter for oidc-provider.
//
// oidc-provider's bundled MemoryAdapter is an LRU capped at 1,000 entries: under
// benchmark load it silently evicts grants and refresh tokens, which shows up as
// spurious `invalid_grant` ("refresh token not found"). This adapter keeps every
// entry until it expires (lazy expiry on read plus a periodic sweep) or is
// destroyed/revoked.

const store = new Map(); // "Model:id" -> { payload, expiresAt (ms epoch | Infinity) }
const grantIndex = new Map(); // grantId -> Set("Model:id")
const sessionUidIndex = new Map(); // uid -> session id
const userCodeIndex = new Map(); // userCode -> "Model:id"

const grantable = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

function nowMs() {
  return Date.now();
}

function epochTime() {
  return Math.floor(Date.now() / 1000);
}

function getEntry(key) {
  const entry = store.get(key);
  if (!entry) return undefined;
  if (entry.expiresAt <= nowMs()) {
    removeKey(key, entry);
    return undefined;
  }
  return entry;
}

function removeKey(key, entry = store.get(key)) {
  store.delete(key);
  if (!entry) return;
  const { payload } = entry;
  if (payload.grantId) {
    const members = grantIndex.get(payload.grantId);
    if (members) {
      members.delete(key);
      if (members.size === 0) grantIndex.delete(payload.grantId);
    }
  }
  if (payload.uid && sessionUidIndex.get(payload.uid) === key) {
    sessionUidIndex.delete(payload.uid);
  }
  if (payload.userCode && userCodeIndex.get(payload.userCode) === key) {
    userCodeIndex.delete(payload.userCode);
  }
}

// Every opaque token and code ever stored (its id is its value), with its
// client and account, for leak scans (GET /__admin/issued); kept after the
// entry itself expires or is revoked, the oldest dropped beyond MAX_ISSUED.
const ISSUED_MODELS = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode']);
const MAX_ISSUED = 50_000;
const issued = new Map(); // "Model:id" -> { kind, value, client_id, account_id }

function recordIssued(model, id, payload) {
  if (!ISSUED_MODELS.has(model)) return;
  const key = `${model}:${id}`;
  const prev = issued.get(key);
  issued.set(key, {
    kind: model,
    value: id,
    client_id: payload.clientId ?? prev?.client_id,
    account_id: payload.accountId ?? prev?.account_id,
  });
  if (issued.size > MAX_ISSUED) issued.delete(issued.keys().next().value);
}

// listIssued returns what recordIssued kept.
export function listIssued() {
  return [...issued.values()];
}

export default class MapAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const previous = store.get(key);
    if (previous) removeKey(key, previous);

    const expiresAt = typeof expiresIn === 'number' ? nowMs() + expiresIn * 1000 : Infinity;
    store.set(key, { payload, expiresAt });
    recordIssued(this.model, id, payload);

    if (grantable.has(this.model) && payload.grantId) {
      let members = grantIndex.get(payload.grantId);
      if (!members) {
        members = new Set();
        grantIndex.set(payload.grantId, members);
      }
      members.add(key);
    }
    if (this.model === 'Session' && payload.uid) {
      sessionUidIndex.set(payload.uid, key);
    }
    if (payload.userCode) {
      userCodeIndex.set(payload.userCode, key);
    }
  }

  async find(id) {
    return getEntry(this.key(id))?.payload;
  }

  async findByUid(uid) {
    const key = sessionUidIndex.get(uid);
    return key ? getEntry(key)?.payload : undefined;
  }

  async findByUserCode(userCode) {
    const key = userCodeIndex.get(userCode);
    return key ? getEntry(key)?.payload : undefined;
  }

  async consume(id) {
    const entry = getEntry(this.key(id));
    if (entry) entry.payload.consumed = epochTime();
  }

  async destroy(id) {
    removeKey(this.key(id));
  }

  async revokeByGrantId(grantId) {
    const members = grantIndex.get(grantId);
    if (!members) return;
    grantIndex.delete(grantId);
    for (const key of [...members]) {
      removeKey(key);
    }
  }
}

// listEntries returns [id, payload] of every live entry of a model.
export function listEntries(model) {
  const prefix = `${model}:`;
  const out = [];
  for (const [key] of store) {
    if (!key.startsWith(prefix)) continue;
    const entry = getEntry(key);
    if (entry) out.push([key.slice(prefix.length), entry.payload]);
  }
  return out;
}

export function storeSize() {
  return store.size;
}

// Periodic sweep so expired entries don't accumulate in long benchmark runs.
export function startSweeper(intervalMs = 30_000) {
  const timer = setInterval(() => {
    const now = nowMs();
    for (const [key, entry] of store) {
      if (entry.expiresAt <= now) removeKey(key, entry);
    }
  }, intervalMs);
  timer.unref();
  return timer;
}
