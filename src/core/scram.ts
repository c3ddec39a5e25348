import { createHash } from "node:crypto";
import { createRequire } from "node:module";

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
 * pg looks `deriveKey` up on its utils module at each call, so replacing it
 * there is enough; should a pg upgrade move or rename it, nothing is replaced
 * and pg works as before, only slower.
 */
const cached = new WeakSet<DeriveKey>();

export function cacheScramKeys(): void {
  let utils: { deriveKey?: DeriveKey };
  try {
    utils = createRequire(import.meta.url)("pg/lib/crypto/utils");
  } catch {
    return;
  }
  const derive = utils.deriveKey;
  if (typeof derive !== "function" || cached.has(derive)) return;
  const keys = new Map<string, Promise<ArrayBuffer>>();
  const cachedDerive: DeriveKey = (password, salt, iterations) => {
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
  cached.add(cachedDerive);
  utils.deriveKey = cachedDerive;
}
