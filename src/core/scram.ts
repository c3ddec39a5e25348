import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import pg from "pg";

export type DeriveKey = (password: string, salt: Uint8Array, iterations: number) => Promise<ArrayBuffer>;

/**
 * Every connection of a run authenticates as the same few roles, and SCRAM's
 * salted password depends only on the password and the role's salt and
 * iteration count: so node-postgres's PBKDF2 (4,096 rounds of HMAC-SHA-256,
 * about 1 ms of CPU) is done once per role and run instead of once per
 * connection. The proof sent to the server is the same bytes either way. The
 * cache is keyed by a hash of the password, salt and count; its values are as
 * secret as the password itself and, like it, live only in this process.
 *
 * Only the tool's own connections (CachingClient: catalog, admin and status
 * reads) use it: knex's connections, which run the user's migrations, and any
 * other pg client of the process authenticate exactly as pg does.
 */
const keys = new Map<string, Promise<ArrayBuffer>>();

/** Forgets every cached key (tests count derivations from a clean start). */
export function forgetScramKeys(): void {
  keys.clear();
}

function cachedDerive(derive: DeriveKey): DeriveKey {
  return (password, salt, iterations) => {
    const id = createHash("sha256")
      .update(`${iterations}:${Buffer.from(salt).toString("base64")}:${password}`)
      .digest("base64");
    let key = keys.get(id);
    if (!key) {
      key = derive(password, salt, iterations);
      keys.set(id, key);
      key.catch(() => keys.delete(id));
    }
    return key;
  };
}

let utils: { deriveKey?: DeriveKey } | undefined;
try {
  utils = createRequire(import.meta.url)("pg/lib/crypto/utils");
} catch {
  utils = undefined;
}

/**
 * A pg.Client whose SCRAM continue step uses the cache. pg's SCRAM code looks
 * `deriveKey` up on its utils module and calls it synchronously, before its
 * first await: the cached function is put there for that synchronous call
 * only and put back before any other code of the process can run, so no
 * other client ever sees it. Should a pg upgrade change any of this, the
 * cache is simply not used (pg derives the key itself, only slower).
 */
export class CachingClient extends pg.Client {
  _handleAuthSASLContinue(message: unknown): Promise<void> {
    const parent = (pg.Client.prototype as unknown as { _handleAuthSASLContinue?: (m: unknown) => Promise<void> })
      ._handleAuthSASLContinue;
    if (typeof parent !== "function") return Promise.resolve();
    const original = utils?.deriveKey;
    if (!utils || typeof original !== "function") return parent.call(this, message);
    utils.deriveKey = cachedDerive(original);
    try {
      return parent.call(this, message);
    } finally {
      utils.deriveKey = original;
    }
  }
}
