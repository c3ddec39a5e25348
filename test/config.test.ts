// Configuration through the CLI: configuration and catalog errors, and settings
// written the way people write them (a % in a URL, a # in .env, `node -- bin …
// --env-file`). resolveConfig's precedence and errors are unit tests
// (test/unit/config.test.ts).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import {
  BIN,
  type CatalogStatusJson,
  databaseExists,
  type Fleet,
  freePort,
  parseJson,
  runCli,
  SERVER,
  tableExists,
  urlFor,
  useFleet,
  withFleet,
} from "./helpers.ts";

describe("configuration and catalog errors through the CLI", () => {
  let fleet: Fleet;
  useFleet((f) => {
    fleet = f;
  });

  it("exits 2 on a configuration error, naming the setting, and changes nothing", async () => {
    await withFleet({ migrateCatalog: false }, async (fresh) => {
      const database = fresh.db("untouched");
      const bad = await fresh.run(["all", "--concurrency", "zero"]);
      assert.equal(bad.code, 2, bad.stderr);
      assert.match(
        bad.stderr,
        /configuration error: --concurrency \/ TENANT_MIGRATE_CONCURRENCY must be a whole number/,
      );
      assert.equal(bad.stdout, "");
      // `all` would have migrated the catalog first: it did not even connect.
      assert.equal(await tableExists(fresh.catalog, "schools"), false);
      assert.equal(await tableExists(fresh.catalog, "knex_migrations"), false);

      const servers = await fresh.run(["all"], { env: { TENANT_SERVERS: "not json" } });
      assert.equal(servers.code, 2, servers.stderr);
      assert.match(servers.stderr, /TENANT_SERVERS is not valid JSON/);
      assert.equal(await tableExists(fresh.catalog, "schools"), false);

      assert.equal((await fresh.run(["catalog", "migrate"])).code, 0);
      await fresh.addSchools({ name: "Untouched", database });
      const lock = await fresh.run(["all", "--lock-timeout", "eventually"]);
      assert.equal(lock.code, 2, lock.stderr);
      assert.match(lock.stderr, /--lock-timeout/);
      assert.equal(await databaseExists(database), false);
      assert.equal(await tableExists(fresh.catalog, "tenant_migrate_history"), false, "no run history was written");
    });
  });

  it("reports several configuration problems in one run", async () => {
    const result = await fleet.run(["status", "--concurrency", "0", "--lock-timeout", "x"], {
      env: { CATALOG_DATABASE_URL: "mysql://a@b/c" },
    });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /configuration errors:/);
    assert.match(result.stderr, /CATALOG_DATABASE_URL must start with postgres:\/\//);
    assert.match(result.stderr, /--concurrency/);
    assert.match(result.stderr, /--lock-timeout/);
  });

  it("reads the catalog URL from .env, from --env-file, and lets the environment win", async () => {
    writeFileSync(path.join(fleet.cwd, ".env"), `CATALOG_DATABASE_URL=${urlFor(fleet.db("nowhere"))}\n`);
    writeFileSync(path.join(fleet.cwd, "good.env"), `CATALOG_DATABASE_URL=${urlFor(fleet.catalog)}\n`);
    try {
      // The environment's URL wins over the broken one in .env.
      const envWins = await fleet.run(["catalog", "status"]);
      assert.equal(envWins.code, 0, envWins.stderr);
      // Without it, .env is used: its database does not exist.
      const fromFile = await fleet.run(["catalog", "status"], { env: { CATALOG_DATABASE_URL: undefined } });
      assert.equal(fromFile.code, 2);
      assert.match(fromFile.stderr, new RegExp(`catalog database "${fleet.db("nowhere")}" does not exist`));
      // --env-file names the good file instead.
      const chosen = await fleet.run(["catalog", "status", "--env-file", "good.env"], {
        env: { CATALOG_DATABASE_URL: undefined },
      });
      assert.equal(chosen.code, 0, chosen.stderr);
      assert.match(chosen.stdout, /catalog: 2 applied, 0 pending/);
    } finally {
      rmSync(path.join(fleet.cwd, ".env"));
      rmSync(path.join(fleet.cwd, "good.env"));
    }
  });

  // On Node 20, node itself scans the script's arguments for --env-file and
  // exits 9 ("node: missing.env: not found") before the tool runs (nodejs/node#54232).
  it("--env-file naming a missing file exits 2 naming the setting", async () => {
    for (const args of [
      ["catalog", "status", "--env-file", "missing.env"],
      ["--env-file=missing.env", "status"],
    ]) {
      const result = await fleet.run(args);
      assert.equal(result.code, 2, `${args.join(" ")}: exit ${result.code}: ${result.stderr}`);
      assert.match(result.stderr, /--env-file: .*missing\.env does not exist/);
    }
  });

  it("connects with the libpq variables and CATALOG_DB", async () => {
    const result = await fleet.run(["catalog", "status", "--json"], {
      env: {
        CATALOG_DATABASE_URL: undefined,
        PGHOST: SERVER.hostname,
        PGPORT: SERVER.port,
        PGUSER: decodeURIComponent(SERVER.username),
        PGPASSWORD: decodeURIComponent(SERVER.password),
        CATALOG_DB: fleet.catalog,
      },
    });
    assert.equal(result.code, 0, result.stderr);
    const status = parseJson<CatalogStatusJson>(result.stdout);
    assert.equal(status.applied.length, 2);
    assert.deepEqual(status.pending, []);
  });

  it("a wrong password exits 2 and never prints it", async () => {
    const password = "Zebra-Quokka-93817-wrong";
    const url = urlFor(fleet.catalog, { name: decodeURIComponent(SERVER.username), password });
    for (const args of [["all"], ["status"], ["catalog", "migrate"], ["tenants", "list"], ["all", "--json"]]) {
      const result = await fleet.run(args, { env: { CATALOG_DATABASE_URL: url } });
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, /password authentication failed/);
      assert.ok(!result.stdout.includes(password), `${args.join(" ")}: stdout shows the password`);
      assert.ok(!result.stderr.includes(password), `${args.join(" ")}: stderr shows the password`);
      assert.match(result.stderr, /postgres:\/\/[^:\s]+:\*\*\*@/);
    }
    // The same password given as a flag is not printed either.
    const flag = await fleet.run(["status", "--catalog-url", url], { env: { CATALOG_DATABASE_URL: undefined } });
    assert.equal(flag.code, 2);
    assert.ok(!`${flag.stdout}${flag.stderr}`.includes(password));
  });

  it("an unreachable port exits 2 with the URL printed masked", async () => {
    const port = await freePort();
    const password = "Unreachable-Pw-55121";
    const url = `postgres://someone:${password}@127.0.0.1:${port}/somewhere`;
    for (const args of [["all"], ["status"], ["catalog", "migrate"], ["catalog", "status"], ["migrate"]]) {
      // A refused catalog is retried (a restarting server) before it is an error: no retries here.
      const result = await fleet.run(args, { env: { CATALOG_DATABASE_URL: url, TENANT_MIGRATE_RETRIES: "0" } });
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.ok(result.stderr.includes(`postgres://someone:***@127.0.0.1:${port}/somewhere`), result.stderr);
      assert.match(result.stderr, /ECONNREFUSED/);
      assert.ok(!`${result.stdout}${result.stderr}`.includes(password));
    }
  });

  it("a catalog host that does not resolve exits 2 for every command, naming the masked URL", async () => {
    const password = "Nohost-Pw-40417";
    const url = `postgres://someone:${password}@no-such-host.invalid:5432/somewhere`;
    const masked = "postgres://someone:***@no-such-host.invalid:5432/somewhere";
    const seen: Record<string, string> = {};
    const expected: Record<string, string> = {};
    for (const args of [
      ["status"],
      ["tenants", "list"],
      ["catalog", "migrate"],
      ["catalog", "status"],
      ["all"],
      ["catalog", "rollback"],
    ]) {
      const result = await fleet.run(args, { env: { CATALOG_DATABASE_URL: url } });
      assert.ok(!`${result.stdout}${result.stderr}`.includes(password));
      assert.match(result.stderr, /ENOTFOUND/);
      // Every command, checked before asserting, so that a failure lists them all.
      seen[args.join(" ")] =
        `exit ${result.code}, ${result.stderr.includes(masked) ? "names" : "does not name"} the URL`;
      expected[args.join(" ")] = "exit 2, names the URL";
    }
    assert.deepEqual(seen, expected);
  });

  it("a catalog database that does not exist exits 2 with a clear message", async () => {
    const missing = fleet.db("no_such_catalog");
    for (const args of [["all"], ["catalog", "migrate"], ["status"], ["tenants", "list"]]) {
      const result = await fleet.run(args, { env: { CATALOG_DATABASE_URL: urlFor(missing) } });
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, new RegExp(`catalog database "${missing}" does not exist`));
    }
    assert.equal(await databaseExists(missing), false);
  });

  it("migrate and status on a catalog never migrated exit 2 saying to run catalog migrate", async () => {
    await withFleet({ migrateCatalog: false }, async (fresh) => {
      for (const args of [
        ["migrate"],
        ["status"],
        ["status", "--json"],
        ["provision", "--missing"],
        ["tenants", "list"],
      ]) {
        const result = await fresh.run(args);
        assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
        assert.match(result.stderr, /tenant-migrate catalog migrate/);
        if (args.includes("--json")) {
          // Even a run that cannot start prints its one JSON document.
          const doc = parseJson<{ ok: boolean; error: string }>(result.stdout);
          assert.equal(doc.ok, false);
          assert.match(doc.error, /tenant-migrate catalog migrate/);
        }
      }
      assert.equal(await tableExists(fresh.catalog, "schools"), false);
      assert.equal(await tableExists(fresh.catalog, "tenant_migrate_history"), false);
    });
  });

  it("commander usage errors exit 2", async () => {
    for (const args of [
      ["all", "--no-such-option"],
      ["no-such-command"],
      ["catalog", "no-such-subcommand"],
      ["tenants", "add"],
      ["all", "--on-error", "maybe"],
      ["status", "--shard", "3/2"],
      ["migrate", "--canary", "zero"],
      ["rollback"],
    ]) {
      const result = await fleet.run(args);
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, /error/i);
      assert.equal(result.stdout, "", `${args.join(" ")} printed on stdout`);
    }
    const version = await fleet.run(["--version"]);
    assert.equal(version.code, 0);
    assert.match(version.stdout, /^\d+\.\d+\.\d+/);
  });
});

describe("settings written the way people write them", () => {
  let dir: string;
  // The servers named here refuse connections: no retries, the settings' errors are what is checked.
  const cli = (args: string[], env: Record<string, string> = {}) =>
    runCli(args, { cwd: dir, env: { TENANT_MIGRATE_RETRIES: "0", ...env } });

  it('a % in a URL names the setting (never "URI malformed") and prints no password', async () => {
    dir = mkdtempSync(path.join(tmpdir(), "tenant-migrate-settings-"));
    try {
      const result = await cli(["status"], { CATALOG_DATABASE_URL: "postgres://app:50%off@127.0.0.1:1/catalog" });
      assert.equal(result.code, 2, result.stderr);
      assert.match(
        result.stderr,
        /CATALOG_DATABASE_URL: the password has a "%" that starts no %XX escape; write a % in a URL as %25/,
      );
      assert.doesNotMatch(result.stderr, /URI malformed|50%off/);
      const servers = await cli(["status"], {
        CATALOG_DATABASE_URL: "postgres://app@127.0.0.1:1/catalog",
        TENANT_SERVERS: JSON.stringify({ east: "postgres://app:x@127.0.0.1:1/%zz" }),
      });
      assert.equal(servers.code, 2, servers.stderr);
      assert.match(servers.stderr, /TENANT_SERVERS\.east: the database name has a "%"/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a # in an unquoted .env value gets the hint to quote it; a comment after a value does not", async () => {
    dir = mkdtempSync(path.join(tmpdir(), "tenant-migrate-settings-"));
    try {
      const env = path.join(dir, ".env");
      writeFileSync(env, "CATALOG_DATABASE_URL=postgres://app:pa#ss@127.0.0.1:1/catalog\n");
      const cut = await cli(["status"]);
      assert.equal(cut.code, 2, cut.stderr);
      assert.match(
        cut.stderr,
        /CATALOG_DATABASE_URL in .*\.env is cut at "#": quote the value: # starts a comment in \.env/,
      );
      assert.doesNotMatch(cut.stderr, /pa#ss|ss@/);

      writeFileSync(env, "PGHOST=127.0.0.1\nPGPORT=1\nPGPASSWORD=abc#def\n");
      const password = await cli(["status"]);
      assert.equal(password.code, 2, password.stderr);
      assert.match(password.stderr, /PGPASSWORD in .*\.env is cut at "#": quote the value/);

      // A comment after the value is what # is for: no hint, the connection is tried (and refused here).
      writeFileSync(env, "CATALOG_DATABASE_URL=postgres://app:pass@127.0.0.1:1/catalog # the catalog\n");
      const comment = await cli(["tenants", "list"]);
      assert.doesNotMatch(comment.stderr, /cut at "#"/);
      assert.match(comment.stderr, /cannot connect to the catalog postgres:\/\/app:\*\*\*@127\.0\.0\.1:1\/catalog/);
      // Quoted, the value is read whole.
      writeFileSync(env, 'PGHOST=127.0.0.1\nPGPORT=1\nPGPASSWORD="abc#def"\n');
      const quoted = await cli(["tenants", "list"]);
      assert.doesNotMatch(quoted.stderr, /cut at "#"/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("`node -- bin/tenant-migrate.js … --env-file X` reads X (the form README gives; without --, Node 20 takes --env-file)", () => {
    dir = mkdtempSync(path.join(tmpdir(), "tenant-migrate-settings-"));
    try {
      const missing = path.join(dir, "missing.env");
      const result = spawnSync(process.execPath, ["--", BIN, "status", "--env-file", missing], {
        cwd: dir,
        encoding: "utf8",
        env: { PATH: process.env.PATH ?? "" },
      });
      assert.equal(result.status, 2, result.stderr);
      assert.match(result.stderr, /--env-file: .*missing\.env does not exist/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
