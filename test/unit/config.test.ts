// resolveConfig (no database): where each setting comes from (flag, environment,
// .env file, default), in that order, and every problem it refuses with exit 2.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  BUNDLED_CATALOG_MIGRATIONS,
  type ConfigFlags,
  DEFAULT_CONCURRENCY,
  DEFAULT_LOCK_TIMEOUT_MS,
  resolveConfig,
} from "../../src/core/config.ts";
import { ConfigError } from "../../src/core/errors.ts";

const FILE_URL = "postgres://file_user:file_pw@file-host:5001/file_db";
const ENV_URL = "postgres://env_user:env_pw@env-host:5002/env_db";
const FLAG_URL = "postgres://flag_user:flag_pw@flag-host:5003/flag_db";

/** resolveConfig's ConfigError, or a failed assertion when it does not throw one. */
function configError(flags: ConfigFlags, env: Record<string, string | undefined>, cwd: string): ConfigError {
  try {
    resolveConfig(flags, env, cwd);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    assert.equal(error.exitCode, 2);
    return error;
  }
  assert.fail("resolveConfig did not throw");
}

describe("resolveConfig", () => {
  let cwd: string;
  before(() => {
    cwd = mkdtempSync(path.join(tmpdir(), "tenant-migrate-config-"));
  });
  after(() => {
    rmSync(cwd, { recursive: true, force: true });
  });

  /** A fresh directory under cwd, with an optional .env file. */
  function dir(name: string, dotenv?: string): string {
    const d = path.join(cwd, name);
    mkdirSync(d, { recursive: true });
    if (dotenv !== undefined) writeFileSync(path.join(d, ".env"), dotenv);
    return d;
  }

  it("uses the defaults when only a catalog URL is given", () => {
    const d = dir("defaults");
    const config = resolveConfig({ catalogUrl: FLAG_URL }, {}, d);
    assert.deepEqual(config.catalog, {
      host: "flag-host",
      port: 5003,
      user: "flag_user",
      password: "flag_pw",
      database: "flag_db",
    });
    assert.equal(config.appMigrationsDir, path.join(d, "app_migrations"));
    assert.equal(config.catalogMigrationsDir, BUNDLED_CATALOG_MIGRATIONS);
    assert.equal(config.concurrency, DEFAULT_CONCURRENCY);
    assert.equal(DEFAULT_CONCURRENCY, 8, "the default README and --help document");
    assert.equal(config.lockTimeoutMs, DEFAULT_LOCK_TIMEOUT_MS);
    assert.equal(config.embedded, false);
    assert.equal(config.tenantServers.size, 0);
    assert.equal(config.appRole, undefined);
    assert.equal(config.template, false, "template copies are opt-in");
  });

  it("--template / TENANT_MIGRATE_TEMPLATE=1 opt in to template copies; --no-template and =0 stay accepted", () => {
    const d = dir("template", "TENANT_MIGRATE_TEMPLATE=1\n");
    const base = { catalogUrl: FLAG_URL };
    assert.equal(resolveConfig(base, {}, dir("template-none")).template, false);
    assert.equal(resolveConfig({ ...base, template: true }, {}, dir("template-none")).template, true);
    assert.equal(resolveConfig(base, { TENANT_MIGRATE_TEMPLATE: "1" }, dir("template-none")).template, true);
    assert.equal(resolveConfig(base, { TENANT_MIGRATE_TEMPLATE: "0" }, dir("template-none")).template, false);
    assert.equal(resolveConfig(base, {}, d).template, true, "from the .env file");
    assert.equal(resolveConfig(base, { TENANT_MIGRATE_TEMPLATE: "0" }, d).template, false, "the environment wins");
    assert.equal(resolveConfig({ ...base, template: false }, {}, d).template, false, "--no-template wins");
  });

  it("takes a flag over the environment over the .env file over the default", () => {
    const d = dir(
      "precedence",
      `CATALOG_DATABASE_URL=${FILE_URL}\nAPP_MIGRATIONS_DIR=file_migrations\nTENANT_MIGRATE_CONCURRENCY=3\n`,
    );
    const env = {
      CATALOG_DATABASE_URL: ENV_URL,
      APP_MIGRATIONS_DIR: "env_migrations",
      TENANT_MIGRATE_CONCURRENCY: "5",
    };
    const flags = { catalogUrl: FLAG_URL, appMigrations: "flag_migrations", concurrency: "7" };

    const fromFlags = resolveConfig(flags, env, d);
    assert.equal(fromFlags.catalog?.host, "flag-host");
    assert.equal(fromFlags.appMigrationsDir, path.join(d, "flag_migrations"));
    assert.equal(fromFlags.concurrency, 7);

    const fromEnv = resolveConfig({}, env, d);
    assert.equal(fromEnv.catalog?.host, "env-host");
    assert.equal(fromEnv.catalog?.database, "env_db");
    assert.equal(fromEnv.appMigrationsDir, path.join(d, "env_migrations"));
    assert.equal(fromEnv.concurrency, 5);

    const fromFile = resolveConfig({}, {}, d);
    assert.equal(fromFile.catalog?.host, "file-host");
    assert.equal(fromFile.catalog?.password, "file_pw");
    assert.equal(fromFile.appMigrationsDir, path.join(d, "file_migrations"));
    assert.equal(fromFile.concurrency, 3);

    const fromDefaults = resolveConfig({ catalogUrl: FLAG_URL }, {}, dir("precedence-empty"));
    assert.equal(fromDefaults.appMigrationsDir, path.join(cwd, "precedence-empty", "app_migrations"));
    assert.equal(fromDefaults.concurrency, DEFAULT_CONCURRENCY);
  });

  it("lets each setting fall back on its own (flag for one, file for another)", () => {
    const d = dir("mixed", `CATALOG_DATABASE_URL=${FILE_URL}\nTENANT_MIGRATE_CONCURRENCY=3\n`);
    const config = resolveConfig({ appMigrations: "/abs/migrations" }, { TENANT_MIGRATE_CONCURRENCY: "11" }, d);
    assert.equal(config.catalog?.host, "file-host");
    assert.equal(config.appMigrationsDir, "/abs/migrations");
    assert.equal(config.concurrency, 11);
  });

  it("a variable already set in the environment wins over the .env file, even a libpq one", () => {
    const d = dir(
      "env-wins",
      "PGHOST=file-host\nPGPORT=6000\nPGUSER=file_user\nPGPASSWORD=file_pw\nCATALOG_DB=file_cat\n",
    );
    const config = resolveConfig({}, { PGPASSWORD: "env_pw", CATALOG_DB: "env_cat" }, d);
    assert.deepEqual(config.catalog, {
      host: "file-host",
      port: 6000,
      user: "file_user",
      password: "env_pw",
      database: "env_cat",
    });
  });

  it("--env-file picks another file, relative to the working directory, instead of ./.env", () => {
    const d = dir("env-file", `CATALOG_DATABASE_URL=${FILE_URL}\nTENANT_MIGRATE_CONCURRENCY=3\n`);
    mkdirSync(path.join(d, "deploy"));
    writeFileSync(path.join(d, "deploy", "prod.env"), `CATALOG_DATABASE_URL=${ENV_URL}\n`);
    const config = resolveConfig({ envFile: "deploy/prod.env" }, {}, d);
    assert.equal(config.catalog?.host, "env-host");
    // ./.env is not read at all when another file is chosen.
    assert.equal(config.concurrency, DEFAULT_CONCURRENCY);
    // And the environment still wins over the chosen file.
    assert.equal(
      resolveConfig({ envFile: "deploy/prod.env" }, { CATALOG_DATABASE_URL: FLAG_URL }, d).catalog?.host,
      "flag-host",
    );
  });

  it("builds the catalog connection from PGHOST/PGPORT/PGUSER/PGPASSWORD with CATALOG_DB or catalog", () => {
    const d = dir("libpq");
    const env = { PGHOST: "db.internal", PGPORT: "6543", PGUSER: "alice", PGPASSWORD: "alice_pw" };
    assert.deepEqual(resolveConfig({}, env, d).catalog, {
      host: "db.internal",
      port: 6543,
      user: "alice",
      password: "alice_pw",
      database: "catalog",
    });
    assert.equal(resolveConfig({}, { ...env, CATALOG_DB: "fleet_catalog" }, d).catalog?.database, "fleet_catalog");
    // libpq's defaults: port 5432, the OS user, no password.
    assert.deepEqual(resolveConfig({}, { PGHOST: "db.internal" }, d).catalog, {
      host: "db.internal",
      port: 5432,
      user: userInfo().username,
      database: "catalog",
    });
    // A catalog URL wins over the libpq variables.
    assert.equal(resolveConfig({}, { ...env, CATALOG_DATABASE_URL: ENV_URL }, d).catalog?.host, "env-host");
  });

  it("reads TENANT_SERVERS and the embedded switch", () => {
    const d = dir("servers");
    const config = resolveConfig(
      {},
      {
        CATALOG_DATABASE_URL: ENV_URL,
        TENANT_SERVERS: JSON.stringify({ east: "postgres://e:e_pw@east-host:5433", west: "postgres://w@west-host" }),
      },
      d,
    );
    assert.deepEqual([...config.tenantServers.keys()].sort(), ["east", "west"]);
    assert.equal(config.tenantServers.get("east")?.host, "east-host");
    assert.equal(config.tenantServers.get("east")?.port, 5433);
    assert.equal(config.tenantServers.get("west")?.port, 5432);

    const embedded = resolveConfig({}, { TENANT_MIGRATE_EMBEDDED: "1" }, d);
    assert.equal(embedded.embedded, true);
    assert.equal(embedded.catalog, undefined, "the embedded server fills in the catalog later");
    assert.equal(resolveConfig({ embedded: true }, {}, d).embedded, true);
  });

  it("uses ./catalog_migrations when it exists, and --catalog-migrations over it", () => {
    const d = dir("local-catalog");
    mkdirSync(path.join(d, "catalog_migrations"));
    mkdirSync(path.join(d, "mine"));
    assert.equal(
      resolveConfig({ catalogUrl: FLAG_URL }, {}, d).catalogMigrationsDir,
      path.join(d, "catalog_migrations"),
    );
    assert.equal(
      resolveConfig({ catalogUrl: FLAG_URL, catalogMigrations: "mine" }, {}, d).catalogMigrationsDir,
      path.join(d, "mine"),
    );
    assert.equal(
      resolveConfig({ catalogUrl: FLAG_URL }, { CATALOG_MIGRATIONS_DIR: "mine" }, d).catalogMigrationsDir,
      path.join(d, "mine"),
    );
  });

  describe("errors", () => {
    const cases: { what: string; flags?: ConfigFlags; env?: Record<string, string>; problem: RegExp }[] = [
      { what: "a malformed URL flag", flags: { catalogUrl: "not a url" }, problem: /--catalog-url is not a valid URL/ },
      {
        what: "a malformed URL in the environment",
        env: { CATALOG_DATABASE_URL: "postgres://u:p@host:notaport/db" },
        problem: /CATALOG_DATABASE_URL is not a valid URL/,
      },
      {
        what: "a wrong scheme",
        env: { CATALOG_DATABASE_URL: "mysql://u:p@host:3306/db" },
        problem: /CATALOG_DATABASE_URL must start with postgres:\/\/ or postgresql:\/\//,
      },
      {
        what: "a URL without a database",
        flags: { catalogUrl: "postgres://u:p@host:5432" },
        problem: /--catalog-url names no database/,
      },
      {
        what: "a non-numeric --concurrency",
        flags: { catalogUrl: FLAG_URL, concurrency: "lots" },
        problem: /--concurrency \/ TENANT_MIGRATE_CONCURRENCY must be a whole number/,
      },
      {
        what: "a zero concurrency from the environment",
        flags: { catalogUrl: FLAG_URL },
        env: { TENANT_MIGRATE_CONCURRENCY: "0" },
        problem: /TENANT_MIGRATE_CONCURRENCY must be a whole number from 1/,
      },
      {
        what: "a fractional concurrency",
        flags: { catalogUrl: FLAG_URL, concurrency: "2.5" },
        problem: /--concurrency/,
      },
      {
        what: "a bad --lock-timeout",
        flags: { catalogUrl: FLAG_URL, lockTimeout: "soon" },
        problem: /--lock-timeout \/ TENANT_MIGRATE_LOCK_TIMEOUT must be a duration/,
      },
      {
        what: "a --lock-timeout in hours",
        flags: { catalogUrl: FLAG_URL, lockTimeout: "1h" },
        problem: /--lock-timeout/,
      },
      {
        what: "TENANT_SERVERS that is not JSON",
        flags: { catalogUrl: FLAG_URL },
        env: { TENANT_SERVERS: "{east: postgres://e@east}" },
        problem: /TENANT_SERVERS is not valid JSON/,
      },
      {
        what: "TENANT_SERVERS that is a JSON array",
        flags: { catalogUrl: FLAG_URL },
        env: { TENANT_SERVERS: '["postgres://e@east"]' },
        problem: /TENANT_SERVERS must be a JSON object/,
      },
      {
        what: "a TENANT_SERVERS entry that is not a string",
        flags: { catalogUrl: FLAG_URL },
        env: { TENANT_SERVERS: '{"east": 5432}' },
        problem: /TENANT_SERVERS\.east must be a URL string/,
      },
      {
        what: "a TENANT_SERVERS entry with a wrong scheme",
        flags: { catalogUrl: FLAG_URL },
        env: { TENANT_SERVERS: '{"east": "http://east:5432"}' },
        problem: /TENANT_SERVERS\.east must start with postgres:\/\//,
      },
      {
        what: "a missing --env-file",
        flags: { catalogUrl: FLAG_URL, envFile: "nope/missing.env" },
        problem: /--env-file: .*nope\/missing\.env does not exist/,
      },
      {
        what: "no catalog connection at all",
        problem: /no catalog connection: set --catalog-url or CATALOG_DATABASE_URL/,
      },
      {
        what: "libpq variables without PGHOST",
        env: { PGUSER: "alice", PGPASSWORD: "pw", CATALOG_DB: "cat" },
        problem: /no catalog connection/,
      },
      {
        what: "a PGPORT that is not a port",
        env: { PGHOST: "db", PGPORT: "99999" },
        problem: /PGPORT must be a port number/,
      },
      {
        what: "--embedded with a catalog URL flag",
        flags: { embedded: true, catalogUrl: FLAG_URL },
        problem: /--embedded cannot be combined with --catalog-url \/ CATALOG_DATABASE_URL/,
      },
      {
        what: "TENANT_MIGRATE_EMBEDDED=1 with CATALOG_DATABASE_URL",
        env: { TENANT_MIGRATE_EMBEDDED: "1", CATALOG_DATABASE_URL: ENV_URL },
        problem: /--embedded cannot be combined/,
      },
      {
        what: "a TENANT_MIGRATE_TEMPLATE that is not a switch",
        flags: { catalogUrl: FLAG_URL },
        env: { TENANT_MIGRATE_TEMPLATE: "maybe" },
        problem: /TENANT_MIGRATE_TEMPLATE must be 1 or 0/,
      },
      {
        what: "a --catalog-migrations folder that does not exist",
        flags: { catalogUrl: FLAG_URL, catalogMigrations: "no_such_folder" },
        problem: /--catalog-migrations \/ CATALOG_MIGRATIONS_DIR: .*no_such_folder is not a directory/,
      },
    ];
    for (const c of cases) {
      it(`reports ${c.what}`, () => {
        const error = configError(c.flags ?? {}, c.env ?? {}, dir("errors"));
        assert.equal(error.problems.length, 1, error.problems.join("\n"));
        assert.match(error.problems[0] as string, c.problem);
        assert.match(error.message, /^configuration error: /);
      });
    }

    it("never puts the password of a malformed URL in the problem", () => {
      const error = configError({ catalogUrl: "postgres://u:Sekrit-Malformed-991@host:port/db" }, {}, dir("errors"));
      assert.doesNotMatch(error.message, /Sekrit-Malformed-991/);
    });

    it("reports every problem at once", () => {
      const d = dir("many-errors");
      const error = configError(
        { catalogUrl: "ftp://nope", concurrency: "many", lockTimeout: "later", envFile: "gone.env" },
        { TENANT_SERVERS: "{", TENANT_MIGRATE_RETRIES: "-1" },
        d,
      );
      assert.equal(error.problems.length, 6, error.problems.join("\n"));
      for (const pattern of [
        /--env-file: .*gone\.env does not exist/,
        /--catalog-url must start with postgres:\/\//,
        /--concurrency/,
        /--lock-timeout/,
        /TENANT_SERVERS is not valid JSON/,
        /TENANT_MIGRATE_RETRIES/,
      ]) {
        assert.ok(
          error.problems.some((p) => pattern.test(p)),
          `${pattern} in ${error.problems.join(" | ")}`,
        );
      }
      assert.match(error.message, /^configuration errors:\n {2}- /);
      assert.equal(error.message.split("\n").length, 7);
    });
  });
});
