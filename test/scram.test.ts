// The SCRAM key cache (src/core/scram.ts) against the real server: one PBKDF2
// per role and password on the tool's own connections, connections still
// authenticated, a wrong password still refused, and no other pg client
// (knex's, which run migrations, or a library user's) sees the cache.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { describe, it } from "node:test";
import pg from "pg";
import { parseDatabaseUrl } from "../src/core/connection.ts";
import { withClient } from "../src/core/db.ts";
import { type DeriveKey, forgetScramKeys } from "../src/core/scram.ts";
import { urlFor } from "./helpers.ts";

describe("SCRAM key cache", () => {
  it("derives the salted password once per role and password; a wrong password is still refused", async () => {
    const utils = createRequire(import.meta.url)("pg/lib/crypto/utils") as { deriveKey: DeriveKey };
    const installed = utils.deriveKey;
    // Count what reaches the underlying PBKDF2 by wrapping it beneath a fresh cache.
    let derived = 0;
    const counting: DeriveKey = (password, salt, iterations) => {
      derived++;
      return installed(password, salt, iterations);
    };
    utils.deriveKey = counting;
    forgetScramKeys();
    try {
      const settings = parseDatabaseUrl(urlFor("postgres"), "TEST");
      for (let i = 0; i < 3; i++) {
        const user = await withClient(settings, async (c) => (await c.query("select current_user as u")).rows[0].u);
        assert.equal(user, settings.user);
      }
      assert.equal(derived, 1, "three connections, one PBKDF2");
      assert.equal(utils.deriveKey, counting, "pg's own deriveKey is left in place");

      // A plain pg client, as knex makes for migrations: pg's own derivation, every time.
      for (let i = 0; i < 2; i++) {
        const client = new pg.Client({ connectionString: urlFor("postgres") });
        await client.connect();
        await client.end();
      }
      assert.equal(derived, 3, "other pg clients never use the cache");

      const wrong = { ...settings, password: `${settings.password}-wrong` };
      await assert.rejects(
        withClient(wrong, async () => {}),
        (error: { code?: string }) => error.code === "28P01",
      );
      assert.equal(derived, 4, "another password is derived anew, not served from the cache");
    } finally {
      utils.deriveKey = installed;
    }
  });
});
