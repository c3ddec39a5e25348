// Settings as text: durations, numbers and switches through resolveConfig (on
// a temporary directory, no server), .env values cut at "#", connection URLs,
// database names and identifiers.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import {
  type ConfigFlags,
  DEFAULT_LOCK_TIMEOUT_MS,
  DEFAULT_PG_LOCK_TIMEOUT_MS,
  resolveConfig,
} from "../../src/core/config.ts";
import {
  describeConnection,
  parseDatabaseUrl,
  pgClientConfig,
  serverKey,
  withDatabase,
} from "../../src/core/connection.ts";
import { hashProblems, valuesCutAtHash } from "../../src/core/env-comments.ts";
import { ConfigError } from "../../src/core/errors.ts";
import { databaseNameFrom, databaseNameProblem, quoteIdent } from "../../src/core/identifiers.ts";

const URL = "postgres://unit:unit-test-pw@db.example:5433/cat";
const cwd = mkdtempSync(path.join(tmpdir(), "tenant-migrate-unit-settings-"));
after(() => rmSync(cwd, { recursive: true, force: true }));

/** The config for these flags and environment (a catalog URL unless told), in a directory with no .env. */
const resolve = (flags: ConfigFlags = {}, env: Record<string, string> = {}, dir = cwd) =>
  resolveConfig({ catalogUrl: URL, ...flags }, env, dir);

/** The problems resolveConfig reports, or a failed assertion when it reports none. */
function problems(flags: ConfigFlags = {}, env: Record<string, string> = {}, dir = cwd): string[] {
  try {
    resolve(flags, env, dir);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.problems;
  }
  assert.fail("resolveConfig reported no problem");
}

describe("durations (--lock-timeout, --pg-lock-timeout)", () => {
  it("reads seconds (bare or s), ms and minutes, fractions rounded to a ms", () => {
    const ms = (lockTimeout: string | number) => resolve({ lockTimeout }).lockTimeoutMs;
    assert.deepEqual(
      ["90", "90s", "500ms", "2m", "1.5s", "0.5m", "0.0004s", " 30s ", 45].map(ms),
      [90_000, 90_000, 500, 120_000, 1500, 30_000, 0, 30_000, 45_000],
    );
  });

  it("takes --pg-lock-timeout 0 as off, and the environment when no flag is given", () => {
    assert.equal(resolve({ pgLockTimeout: "0" }).pgLockTimeoutMs, 0);
    assert.equal(resolve({}, { TENANT_MIGRATE_PG_LOCK_TIMEOUT: "250ms" }).pgLockTimeoutMs, 250);
    assert.equal(resolve({}, { TENANT_MIGRATE_LOCK_TIMEOUT: "3m" }).lockTimeoutMs, 180_000);
    assert.equal(resolve({ lockTimeout: "1s" }, { TENANT_MIGRATE_LOCK_TIMEOUT: "3m" }).lockTimeoutMs, 1000);
  });

  it("falls back to the defaults when unset or empty", () => {
    const config = resolve({ lockTimeout: "", pgLockTimeout: "" }, { TENANT_MIGRATE_PG_LOCK_TIMEOUT: "" });
    assert.equal(config.lockTimeoutMs, DEFAULT_LOCK_TIMEOUT_MS);
    assert.equal(config.pgLockTimeoutMs, DEFAULT_PG_LOCK_TIMEOUT_MS);
  });

  it("refuses other units, signs, spaces inside and words, naming the setting and the value", () => {
    for (const value of ["1h", "-5s", "5 s", "s", "1e3", "soon", ".5s"]) {
      assert.deepEqual(
        problems({ pgLockTimeout: value }),
        [
          `--pg-lock-timeout / TENANT_MIGRATE_PG_LOCK_TIMEOUT must be a duration such as 60, 60s, 500ms or 2m (got ${JSON.stringify(value)})`,
        ],
        value,
      );
    }
  });
});

describe("whole numbers and switches", () => {
  it("holds --concurrency to 1..1000 and --retries to 0..100", () => {
    assert.equal(resolve({ concurrency: "1000", retries: "0" }).concurrency, 1000);
    assert.equal(resolve({ retries: "100" }).retries, 100);
    assert.equal(resolve({ concurrency: 3 }).concurrency, 3);
    assert.equal(resolve({}, { TENANT_MIGRATE_RETRIES: " 4 " }).retries, 4);
    assert.deepEqual(problems({ concurrency: "1001" }), [
      '--concurrency / TENANT_MIGRATE_CONCURRENCY must be a whole number from 1 to 1000 (got "1001")',
    ]);
    assert.deepEqual(problems({ retries: "101" }), [
      '--retries / TENANT_MIGRATE_RETRIES must be a whole number from 0 to 100 (got "101")',
    ]);
    assert.equal(problems({ retries: "-1" }).length, 1);
    assert.equal(problems({ concurrency: "0x10" }).length, 1);
  });

  it("reads TENANT_MIGRATE_TEMPLATE and TENANT_MIGRATE_EMBEDDED as 1/true/yes/on, any case", () => {
    for (const on of ["1", "true", "YES", "On"]) {
      assert.equal(resolve({}, { TENANT_MIGRATE_TEMPLATE: on }).template, true, on);
      assert.equal(resolveConfig({}, { TENANT_MIGRATE_EMBEDDED: on }, cwd).embedded, true, on);
    }
    for (const off of ["0", "false", "NO", "off", ""]) {
      assert.equal(resolve({}, { TENANT_MIGRATE_TEMPLATE: off }).template, false, off);
    }
    assert.equal(resolve({ template: false }, { TENANT_MIGRATE_TEMPLATE: "1" }).template, false, "the flag wins");
    assert.equal(resolve({ template: true }, { TENANT_MIGRATE_TEMPLATE: "maybe" }).template, true, "env not read");
  });

  it("accepts an --app-role of up to 63 bytes", () => {
    assert.equal(resolve({ appRole: "r".repeat(63) }).appRole, "r".repeat(63));
    assert.equal(resolve({}, { TENANT_MIGRATE_APP_ROLE: "lunch_app" }).appRole, "lunch_app");
    assert.equal(resolve().appRole, undefined);
    for (const role of ["r".repeat(64), "é".repeat(32), "a\u0000b"]) {
      assert.deepEqual(problems({ appRole: role }), [
        "--app-role / TENANT_MIGRATE_APP_ROLE is not a valid PostgreSQL role name (at most 63 bytes)",
      ]);
    }
  });

  it("needs no catalog when the command says so", () => {
    assert.equal(resolveConfig({}, {}, cwd, { catalog: false }).catalog, undefined);
  });
});

describe("values cut at # in .env", () => {
  it("finds unquoted values with a #, glued to the value or not", () => {
    const cut = valuesCutAtHash(
      `${[
        "GLUED=pa#ss",
        "SPACED=value # a comment",
        'QUOTED="pa#ss"',
        "SINGLE='pa#ss'",
        "export EXPORTED=#all",
        "  PADDED = x#y",
        "# A=b#c",
        "PLAIN=nothing",
      ].join("\n")}\r\nWINDOWS=a#b\r\nLAST=x`,
    );
    assert.deepEqual(Object.fromEntries(cut), {
      GLUED: { glued: true },
      SPACED: { glued: false },
      EXPORTED: { glued: true },
      PADDED: { glued: true },
      WINDOWS: { glued: true },
    });
  });

  it("reports the watched settings when the # is glued, or when the setting was found wrong", () => {
    const cut = new Map([
      ["CATALOG_DATABASE_URL", { glued: true }],
      ["PGPASSWORD", { glued: false }],
      ["TENANT_SERVERS", { glued: false }],
      ["OTHER", { glued: true }],
    ]);
    const found = hashProblems(cut, "/app/.env", ["TENANT_SERVERS is not valid JSON"], () => false);
    assert.deepEqual(found, [
      'CATALOG_DATABASE_URL in /app/.env is cut at "#": quote the value: # starts a comment in .env, e.g. CATALOG_DATABASE_URL="…" (in a URL, write a "#" of a password as %23)',
      'TENANT_SERVERS in /app/.env is cut at "#": quote the value: # starts a comment in .env, e.g. TENANT_SERVERS="…" (in a URL, write a "#" of a password as %23)',
    ]);
    assert.deepEqual(
      hashProblems(new Map([["PGPASSWORD", { glued: true }]]), "f", [], () => false),
      ['PGPASSWORD in f is cut at "#": quote the value: # starts a comment in .env, e.g. PGPASSWORD="…"'],
    );
    assert.deepEqual(
      hashProblems(cut, "f", [], () => true),
      [],
      "settings taken from elsewhere",
    );
  });

  it("resolveConfig reports a catalog URL cut at #, unless a flag or the environment gives it", () => {
    const dir = mkdtempSync(path.join(cwd, "hash-"));
    writeFileSync(path.join(dir, ".env"), "CATALOG_DATABASE_URL=postgres://app:pa#ss@db/catalog\n");
    const found = problems({ catalogUrl: "" }, {}, dir).join("\n");
    assert.match(found, /CATALOG_DATABASE_URL in .*\.env is cut at "#"/);
    assert.equal(resolve({}, {}, dir).catalog?.database, "cat");
    assert.equal(resolveConfig({}, { CATALOG_DATABASE_URL: URL }, dir).catalog?.host, "db.example");
  });
});

describe("connection URLs", () => {
  it("parses user, %-encoded password, host, port, database and sslmode", () => {
    assert.deepEqual(parseDatabaseUrl("postgresql://app:p%40ss%3Aw0rd@db.internal:6432/cat?sslmode=require", "X"), {
      host: "db.internal",
      port: 6432,
      user: "app",
      password: "p@ss:w0rd",
      database: "cat",
      sslmode: "require",
    });
    const ipv6 = parseDatabaseUrl("postgres://u@[::1]/d", "X");
    assert.equal(ipv6.host, "::1");
    assert.equal(ipv6.port, 5432);
    assert.equal("password" in ipv6, false);
  });

  it("allows no database for a server URL (then postgres), and refuses it for the catalog", () => {
    assert.equal(parseDatabaseUrl("postgres://u:p@east:5432", "TENANT_SERVERS.east", false).database, "postgres");
    assert.throws(() => parseDatabaseUrl("postgres://u:p@east:5432/", "--catalog-url"), {
      message: "--catalog-url names no database (add /DBNAME to the URL)",
    });
  });

  it("refuses other schemes, bad paths, sslmodes and % escapes, naming the setting and never the password", () => {
    const cases: [string, RegExp][] = [
      ["mysql://u:Hidden-Pw-1@h/d", /^X must start with postgres:\/\/ or postgresql:\/\/ \(got mysql:\/\/\)$/],
      ["postgres://u:Hidden-Pw-1@h/a/b", /^X has a malformed database path$/],
      ["postgres://u:Hidden-Pw-1@h/d?sslmode=maybe", /^X has an unknown sslmode "maybe"$/],
      ["postgres://u:Hidden%zz-Pw-1@h/d", /^X: the password has a "%" that starts no %XX escape/],
      ["postgres://u:Hidden-Pw-1@h:port/d", /^X is not a valid URL/],
    ];
    for (const [url, pattern] of cases) {
      assert.throws(
        () => parseDatabaseUrl(url, "X"),
        (error: Error) => pattern.test(error.message) && !error.message.includes("Hidden"),
        url,
      );
    }
  });

  it("prints a connection with the password masked, IPv6 hosts bracketed", () => {
    const settings = parseDatabaseUrl("postgres://app%20user:secret-pw@[fe80::1]:5433/cat", "X");
    assert.equal(describeConnection(settings), "postgres://app%20user:***@[fe80::1]:5433/cat");
    assert.equal(
      describeConnection({ host: "h", port: 1, user: "u", database: "d" }),
      "postgres://u@h:1/d",
      "no password, no mask",
    );
    assert.equal(serverKey(settings), "fe80::1:5433");
    assert.deepEqual(withDatabase(settings, "school"), { ...settings, database: "school" });
    assert.equal(settings.database, "cat", "withDatabase copies");
  });

  it("turns sslmode into node-postgres' ssl option", () => {
    const ssl = (sslmode?: string) =>
      pgClientConfig({ host: "h", port: 1, user: "u", database: "d", ...(sslmode ? { sslmode } : {}) }).ssl;
    assert.deepEqual([undefined, "disable", "allow", "prefer"].map(ssl), [undefined, undefined, undefined, undefined]);
    assert.deepEqual(ssl("require"), { rejectUnauthorized: false });
    assert.deepEqual(ssl("no-verify"), { rejectUnauthorized: false });
    assert.deepEqual(ssl("verify-ca"), { rejectUnauthorized: true });
    assert.deepEqual(ssl("verify-full"), { rejectUnauthorized: true });
    const config = pgClientConfig({ host: "h", port: 1, user: "u", database: "d", password: "pw" }, 500);
    assert.equal(config.application_name, "tenant-migrate");
    assert.equal(config.connectionTimeoutMillis, 500);
    assert.equal(config.password, "pw");
  });
});

describe("database names and identifiers", () => {
  it("accepts lower-case PostgreSQL names of up to 63 bytes", () => {
    for (const name of ["lincoln_high", "_x", "s1", "a".repeat(63)]) assert.equal(databaseNameProblem(name), undefined);
  });

  it("refuses empty, long, upper-case, quoted or digit-first names", () => {
    assert.equal(databaseNameProblem(""), "database name is empty");
    assert.equal(databaseNameProblem(null), "database name is empty");
    assert.equal(databaseNameProblem(42), "database name is empty");
    assert.equal(
      databaseNameProblem("a".repeat(64)),
      `database name "${"a".repeat(64)}" is 64 bytes long; PostgreSQL allows at most 63`,
    );
    assert.match(databaseNameProblem("é".repeat(32)) ?? "", /is 64 bytes long/, "bytes, not characters");
    for (const name of ["Lincoln", "1st", "a-b", 'a"b', "a b", "école"]) {
      assert.match(databaseNameProblem(name) ?? "", /is not a lower-case PostgreSQL name/, name);
    }
  });

  it("quoteIdent doubles embedded quotes", () => {
    assert.equal(quoteIdent("plain"), '"plain"');
    assert.equal(quoteIdent('we"ird'), '"we""ird"');
    assert.equal(quoteIdent('"; drop database x; --'), '"""; drop database x; --"');
  });

  it("databaseNameFrom makes a valid name from a school name", () => {
    assert.equal(databaseNameFrom("Lincoln High"), "lincoln_high");
    assert.equal(databaseNameFrom("  École Sainte-Marie!  "), "ecole_sainte_marie");
    assert.equal(databaseNameFrom("123 Main St."), "_123_main_st");
    const long = databaseNameFrom("9".repeat(80));
    assert.equal(long.length, 63);
    assert.equal(databaseNameProblem(long), undefined);
    assert.equal(databaseNameProblem(databaseNameFrom("Some School ".repeat(10))), undefined);
  });
});
