// Faults a real fleet meets, injected against real servers: a server
// restarted with `-m immediate` mid-run, terminated backends (the admin, the
// catalog and a tenant session), a server with few connections, one
// database reached through two spellings of its server, and a refused
// connection retried a bounded number of times. The shared test
// server is never restarted: restarts happen on throwaway servers of their own.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { HistoryRecorder } from "../src/core/history.ts";
import {
  byDatabase,
  type CliResult,
  databaseExists,
  type Fleet,
  type FleetJson,
  parseJson,
  query,
  runCli,
  type SecondServer,
  slowMigration,
  startCli,
  startSecondServer,
  tableMigration,
  urlFor,
  useFleet,
  waitFor,
  withFleet,
} from "./helpers.ts";

/** A catalog and `count` schools (school1…) on a throwaway server, with a working directory of their own. */
class ServerFleet {
  readonly cwd = mkdtempSync(path.join(tmpdir(), "tenant-migrate-faults-"));
  readonly appMigrations = path.join(this.cwd, "app_migrations");
  readonly env: Record<string, string>;
  readonly schools: string[];

  constructor(
    readonly server: SecondServer,
    count: number,
    readonly catalog = "catalog",
    stem = "school",
  ) {
    mkdirSync(this.appMigrations);
    writeFileSync(path.join(this.cwd, "package.json"), '{ "type": "module" }\n');
    this.writeMigration("20240101000000_create_lunch_week.js", tableMigration("lunch_week"));
    this.env = { CATALOG_DATABASE_URL: `${server.url}/${catalog}`, APP_MIGRATIONS_DIR: this.appMigrations };
    this.schools = Array.from({ length: count }, (_, i) => `${stem}${i + 1}`);
  }

  /** Creates the catalog, migrates it and adds the schools (not provisioned). */
  async create(): Promise<void> {
    await this.server.query(`create database ${this.catalog}`);
    const migrated = await this.run(["catalog", "migrate"]);
    assert.equal(migrated.code, 0, migrated.stderr);
    await this.server.query(
      "insert into schools (school_name, school_database) select s, s from unnest($1::text[]) as s",
      [this.schools],
      this.catalog,
    );
  }

  writeMigration(name: string, source: string): void {
    writeFileSync(path.join(this.appMigrations, name), source);
  }

  run(args: string[], env: Record<string, string> = {}, timeoutMs = 240_000): Promise<CliResult> {
    return runCli(args, { cwd: this.cwd, env: { ...this.env, ...env }, timeoutMs });
  }

  start(args: string[], env: Record<string, string> = {}) {
    return startCli(args, { cwd: this.cwd, env: { ...this.env, ...env } });
  }

  /** The last run's history rows: school_id, result, whether finished. */
  async lastRunHistory(): Promise<{ school_id: string; school_database: string; result: string; finished: boolean }[]> {
    return (await this.server.query(
      `select school_id, school_database, result, finished_at is not null as finished from tenant_migrate_history
        where run_id = (select run_id from tenant_migrate_history order by id desc limit 1) order by id`,
      [],
      this.catalog,
    )) as { school_id: string; school_database: string; result: string; finished: boolean }[];
  }

  /** The tool's sessions on this server (pg_stat_activity), by a condition on its columns. */
  async sessions(condition = "true"): Promise<{ pid: number; datname: string; query: string }[]> {
    return (await this.server.query(
      `select pid, datname, query from pg_stat_activity
        where application_name = 'tenant-migrate' and backend_type = 'client backend' and (${condition})`,
    )) as { pid: number; datname: string; query: string }[];
  }

  async applied(database: string): Promise<string[]> {
    const rows = await this.server.query("select name from knex_migrations order by id", [], database);
    return rows.map((r) => r.name as string);
  }

  cleanup(): void {
    rmSync(this.cwd, { recursive: true, force: true });
  }
}

/**
 * A non-transactional migration creating `table`; its `holds` direction, on
 * `database` only and once (a file marks it), sleeps until the test
 * terminates its session.
 */
function heldOnceMigration(
  fleet: ServerFleet,
  table: string,
  holds: "up" | "down" | undefined,
  database: string,
): string {
  const hold = (direction: "up" | "down") =>
    holds !== direction
      ? ""
      : `const { rows } = await knex.raw("select current_database() as db");
  const mark = ${JSON.stringify(path.join(fleet.cwd, `held-${table}`))};
  if (rows[0].db === ${JSON.stringify(database)} && !existsSync(mark)) {
    writeFileSync(mark, "");
    await knex.raw("select pg_sleep(120)");
  }`;
  return `import { existsSync, writeFileSync } from "node:fs";
export const config = { transaction: false };
export async function up(knex) {
  ${hold("up")}
  await knex.schema.createTable("${table}", (t) => { t.increments("id"); });
}
export async function down(knex) {
  ${hold("down")}
  await knex.schema.dropTable("${table}");
}
`;
}

/** History consistent with the JSON: one row per school, every row final, the same result. */
async function assertHistoryMatches(fleet: ServerFleet, json: FleetJson): Promise<void> {
  const rows = await fleet.lastRunHistory();
  assert.equal(rows.length, json.tenants.length);
  const results = new Map(json.tenants.map((t) => [t.database, t.result]));
  for (const row of rows) {
    assert.ok(row.finished, `history row of ${row.school_database} is not final: ${row.result}`);
    assert.equal(row.result, results.get(row.school_database), row.school_database);
  }
}

describe("a server restarted with -m immediate mid-run (issue 9, Show it)", () => {
  let server: SecondServer;
  let fleet: ServerFleet;
  before(async () => {
    server = await startSecondServer("faults-restart-pw");
    fleet = new ServerFleet(server, 40);
    await fleet.create();
    const first = await fleet.run(["all"]);
    assert.equal(first.code, 0, first.stderr);
  });
  after(async () => {
    fleet?.cleanup();
    await server?.stop();
  });

  it("40 schools with a 1.5 s migration: every school ends migrated in the same run, exit 0, history final", async (t) => {
    fleet.writeMigration("20240201000000_slow.js", slowMigration("slow_done", 1.5));
    const started = performance.now();
    const run = fleet.start(["all", "--json"]);
    // Mid-run: some schools done, others in flight (their migration sleeping in its transaction).
    await waitFor(() => (run.output().stderr.match(/ migrated: /g) ?? []).length >= 8, 120_000, "8 schools migrated");
    await waitFor(async () => (await fleet.sessions("query like '%pg_sleep%'")).length > 0, 60_000, "in flight");
    const inFlight = (await fleet.sessions("query like '%pg_sleep%' and state = 'active'")).length;
    const doneBefore = (run.output().stderr.match(/ migrated: /g) ?? []).length;
    await server.restart({ immediate: true, downMs: 3000 });
    const result = await run.done;
    const seconds = ((performance.now() - started) / 1000).toFixed(1);

    assert.equal(result.code, 0, result.stderr);
    const json = parseJson<FleetJson>(result.stdout);
    assert.equal(json.tenants.length, 40);
    for (const tenant of json.tenants) assert.equal(tenant.result, "migrated", `${tenant.database}: ${tenant.error}`);
    // The cut transactions were rolled back and tried again: each school has the migration once.
    for (const school of fleet.schools) {
      assert.deepEqual(await fleet.applied(school), ["20240101000000_create_lunch_week.js", "20240201000000_slow.js"]);
    }
    await assertHistoryMatches(fleet, json);
    const retries = result.stderr.match(/\S+: transient fault[^\n]*/g) ?? [];
    assert.ok(retries.length > 0, "the restart cut some schools, which were retried");
    assert.doesNotMatch(result.stderr, /ROLLBACK - /);
    t.diagnostic(
      `40 schools, restart with ${inFlight} in flight after ${doneBefore} done: exit ${result.code} in ${seconds} s, ` +
        `${retries.length} retry notices, ${new Set(retries.map((r) => r.split(":")[0])).size} schools retried; ` +
        `summary.ms ${json.summary.ms}`,
    );
    for (const line of retries.slice(0, 3)) t.diagnostic(line);
  });

  it("a catalog that is restarting when the run starts is waited for (not exit 2)", async () => {
    const restarting = server.restart({ immediate: true, downMs: 2000 });
    // The server is down: the run starts against a refused port and waits it out.
    await waitFor(
      async () => {
        try {
          await server.query("select 1");
          return false;
        } catch {
          return true;
        }
      },
      30_000,
      "server down",
    );
    const result = await fleet.run(["status", "--json"]);
    await restarting;
    assert.equal(result.code, 0, result.stderr);
    assert.equal(parseJson<{ tenants: unknown[] }>(result.stdout).tenants.length, 40);
  });
});

describe("lost connections during a run (issue 9 items 1, 2, 5)", () => {
  let server: SecondServer;
  before(async () => {
    server = await startSecondServer("faults-terminate-pw");
  });
  after(async () => {
    await server?.stop();
  });

  it("the admin connection terminated while provisioning: no crash, a JSON document, history final", async () => {
    const fleet = new ServerFleet(server, 3, "catalog_admin", "admin_school");
    try {
      await fleet.create();
      // The template build keeps the admin connection checked out while this migration sleeps.
      fleet.writeMigration("20240201000000_slow.js", slowMigration("slow_done", 2));
      const run = fleet.start(["all", "--template", "--json"]);
      const admin = () => fleet.sessions("datname = 'catalog_admin' and query like '%create database%'");
      await waitFor(async () => (await fleet.sessions("query like '%pg_sleep%'")).length > 0, 60_000, "template build");
      const sessions = await admin();
      assert.equal(sessions.length, 1, JSON.stringify(sessions));
      await server.query("select pg_terminate_backend($1)", [sessions[0]?.pid]);
      const result = await run.done;
      assert.doesNotMatch(result.stderr, /Unhandled 'error' event|at .*\.js:\d+/);
      assert.equal(result.code, 0, result.stderr);
      const json = parseJson<FleetJson>(result.stdout);
      for (const tenant of json.tenants) assert.equal(tenant.result, "provisioned", tenant.error);
      for (const school of fleet.schools) assert.equal((await fleet.applied(school)).length, 2);
      await assertHistoryMatches(fleet, json);
    } finally {
      fleet.cleanup();
    }
  });

  it("a tenant session terminated mid-migration: retried by default; with --retries 0 the real cause is named", async () => {
    const fleet = new ServerFleet(server, 2, "catalog_tenant", "tenant_school");
    try {
      await fleet.create();
      assert.equal((await fleet.run(["all"])).code, 0);
      fleet.writeMigration("20240201000000_slow.js", slowMigration("slow_done", 2));
      const terminateOne = async () => {
        await waitFor(async () => (await fleet.sessions("query like '%pg_sleep%'")).length > 0, 60_000, "in flight");
        const [victim] = await fleet.sessions("query like '%pg_sleep%' and datname = 'tenant_school1'");
        if (victim) await server.query("select pg_terminate_backend($1)", [victim.pid]);
        return victim;
      };

      const strict = fleet.start(["migrate", "tenant_school1", "--json", "--retries", "0"]);
      assert.ok(await terminateOne());
      const failed = await strict.done;
      assert.equal(failed.code, 1, failed.stderr);
      const [school1] = parseJson<FleetJson>(failed.stdout).tenants;
      assert.equal(school1?.result, "failed");
      // The real cause, not knex's ROLLBACK on the dead connection.
      assert.match(school1?.error ?? "", /terminating connection due to administrator command|57P01/);
      assert.doesNotMatch(school1?.error ?? "", /ROLLBACK|not queryable/);
      assert.deepEqual(await fleet.applied("tenant_school1"), ["20240101000000_create_lunch_week.js"]);

      const retried = fleet.start(["migrate", "--json"]);
      assert.ok(await terminateOne());
      const result = await retried.done;
      assert.equal(result.code, 0, result.stderr);
      assert.match(
        result.stderr,
        /tenant_school1: transient fault \(.*(administrator command|57P01).*\); retry 1 of 10/,
      );
      for (const tenant of parseJson<FleetJson>(result.stdout).tenants) assert.equal(tenant.result, "migrated");
      for (const school of fleet.schools) assert.equal((await fleet.applied(school)).length, 2);
    } finally {
      fleet.cleanup();
    }
  });

  it("a school retried after non-transactional migrations stayed done: its result lists them all, once", async () => {
    const fleet = new ServerFleet(server, 2, "catalog_partial", "partial_school");
    try {
      await fleet.create();
      assert.equal((await fleet.run(["all"])).code, 0);
      // Outside a transaction: 001 (its down holds) and 002 (its up holds), each holding on partial_school1
      // only, once (a file marks it), until the test terminates its session.
      fleet.writeMigration(
        "20240201000001_first.js",
        heldOnceMigration(fleet, "first_done", "down", "partial_school1"),
      );
      fleet.writeMigration(
        "20240201000002_second.js",
        heldOnceMigration(fleet, "second_done", "up", "partial_school1"),
      );
      const both = ["20240201000001_first.js", "20240201000002_second.js"];
      const terminateHeld = async () => {
        const held = () => fleet.sessions("query like '%pg_sleep%' and datname = 'partial_school1'");
        await waitFor(async () => (await held()).length > 0, 60_000, "a migration held on partial_school1");
        const [victim] = await held();
        await server.query("select pg_terminate_backend($1)", [victim?.pid]);
      };

      // migrate: the first try applies 001 and loses its connection in 002; the retry applies 002.
      const migrate = fleet.start(["migrate", "--json"]);
      await terminateHeld();
      const migrated = await migrate.done;
      assert.equal(migrated.code, 0, migrated.stderr);
      assert.match(migrated.stderr, /partial_school1: transient fault .*; retry 1 of 10/);
      const json = parseJson<FleetJson>(migrated.stdout);
      for (const tenant of json.tenants) {
        assert.equal(tenant.result, "migrated", tenant.database);
        assert.deepEqual(tenant.migrations, both, tenant.database);
      }
      assert.match(migrated.stderr, /partial_school1 .*migrated: 20240201000001_first\.js, 20240201000002_second\.js/);
      for (const school of fleet.schools) {
        assert.deepEqual(await fleet.applied(school), ["20240101000000_create_lunch_week.js", ...both]);
      }
      const history = await server.query(
        "select migrations from tenant_migrate_history where school_database = 'partial_school1' order by id desc limit 1",
        [],
        "catalog_partial",
      );
      assert.deepEqual(history[0]?.migrations, both);
      await assertHistoryMatches(fleet, json);

      // rollback --to, file by file: the first try undoes 002 and loses its connection in 001's down.
      const rollback = fleet.start([
        "rollback",
        "partial_school1",
        "--to",
        "20240101000000_create_lunch_week.js",
        "--json",
      ]);
      await terminateHeld();
      const rolledBack = await rollback.done;
      assert.equal(rolledBack.code, 0, rolledBack.stderr);
      assert.match(rolledBack.stderr, /partial_school1: transient fault .*; retry 1 of 10/);
      const [school1] = parseJson<FleetJson>(rolledBack.stdout).tenants;
      assert.equal(school1?.result, "rolled-back");
      assert.deepEqual(school1?.migrations, [...both].reverse());
      assert.deepEqual(await fleet.applied("partial_school1"), ["20240101000000_create_lunch_week.js"]);
    } finally {
      fleet.cleanup();
    }
  });

  it("rollback --step 2 retried after a lost connection undoes the two batches it first planned, no more", async () => {
    const fleet = new ServerFleet(server, 1, "catalog_steps", "steps_school");
    try {
      await fleet.create();
      assert.equal((await fleet.run(["all"])).code, 0);
      // Three batches of one non-transactional migration each; 002's down holds once, until terminated.
      const names = ["20240301000001_one.js", "20240301000002_two.js", "20240301000003_three.js"];
      for (const [i, name] of names.entries()) {
        fleet.writeMigration(
          name,
          heldOnceMigration(fleet, `steps_${i + 1}`, i === 1 ? "down" : undefined, "steps_school1"),
        );
        assert.equal((await fleet.run(["migrate"])).code, 0);
      }
      // The first try undoes batch 4 (three) and loses its connection in batch 3 (two)'s down.
      const rollback = fleet.start(["rollback", "steps_school1", "--step", "2", "--json"]);
      const held = () => fleet.sessions("query like '%pg_sleep%' and datname = 'steps_school1'");
      await waitFor(async () => (await held()).length > 0, 60_000, "002's down held on steps_school1");
      const [victim] = await held();
      await server.query("select pg_terminate_backend($1)", [victim?.pid]);
      const done = await rollback.done;
      assert.equal(done.code, 0, done.stderr);
      assert.match(done.stderr, /steps_school1: transient fault .*; retry 1 of 10/);
      const [school] = parseJson<FleetJson>(done.stdout).tenants;
      assert.equal(school?.result, "rolled-back");
      assert.deepEqual(school?.migrations, ["20240301000003_three.js", "20240301000002_two.js"]);
      // Counting two batches again after the first try would also have undone one.
      assert.deepEqual(await fleet.applied("steps_school1"), [
        "20240101000000_create_lunch_week.js",
        "20240301000001_one.js",
      ]);
    } finally {
      fleet.cleanup();
    }
  });

  it("the catalog connection terminated mid-run: history is written on a new connection", async () => {
    const fleet = new ServerFleet(server, 4, "catalog_history", "history_school");
    try {
      await fleet.create();
      assert.equal((await fleet.run(["all"])).code, 0);
      fleet.writeMigration("20240201000000_slow.js", slowMigration("slow_done", 1.5));
      const run = fleet.start(["migrate", "--json", "--concurrency", "1"]);
      await waitFor(async () => (await fleet.sessions("query like '%pg_sleep%'")).length > 0, 60_000, "in flight");
      const catalog = await fleet.sessions("datname = 'catalog_history'");
      assert.equal(catalog.length, 1, JSON.stringify(await fleet.sessions()));
      await server.query("select pg_terminate_backend($1)", [catalog[0]?.pid]);
      const result = await run.done;
      assert.equal(result.code, 0, result.stderr);
      const json = parseJson<FleetJson>(result.stdout);
      await assertHistoryMatches(fleet, json);
    } finally {
      fleet.cleanup();
    }
  });
});

describe("a server with max_connections=12 (issue 9 item 6)", () => {
  let server: SecondServer;
  let fleet: ServerFleet;
  before(async () => {
    server = await startSecondServer("faults-connections-pw", ["max_connections=12"]);
    fleet = new ServerFleet(server, 30);
    await fleet.create();
  });
  after(async () => {
    fleet?.cleanup();
    await server?.stop();
  });

  /** The most sessions of the tool seen at once (sampled every 10 ms) while `fn` runs. */
  async function mostSessionsDuring(fn: () => Promise<void>): Promise<number> {
    let most = 0;
    let sampling = true;
    // One connection of its own, opened before the run: sampling never needs a free slot.
    const probe = new pg.Client({ connectionString: `${server.url}/postgres` });
    await probe.connect();
    const sampler = (async () => {
      while (sampling) {
        const { rows } = await probe.query(
          "select count(*)::int as n from pg_stat_activity where application_name = 'tenant-migrate' and backend_type = 'client backend'",
        );
        most = Math.max(most, rows[0].n);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    try {
      await fn();
    } finally {
      sampling = false;
      await sampler;
      await probe.end();
    }
    return most;
  }

  it("30 schools, default concurrency 8: all succeed, never more than 8 + 2 of the tool's sessions", async (t) => {
    const most = await mostSessionsDuring(async () => {
      // Provisioning with an admin connection, then knex, per school; then migrating every school with knex.
      const provisioned = await fleet.run(["all", "--json", "--no-template"]);
      assert.equal(provisioned.code, 0, provisioned.stderr);
      fleet.writeMigration("20240201000000_slow.js", slowMigration("slow_done", 0.3));
      const migrated = await fleet.run(["all", "--json"]);
      assert.equal(migrated.code, 0, migrated.stderr);
      for (const tenant of parseJson<FleetJson>(migrated.stdout).tenants) assert.equal(tenant.result, "migrated");
    });
    t.diagnostic(`most sessions of the tool at once: ${most}`);
    assert.ok(most <= 10, `the tool held ${most} connections at once (at most concurrency 8 + 2)`);
  });

  it("30 schools copied from a template (--template), concurrency 8: all succeed, never more than 8 + 2 sessions", async (t) => {
    // A catalog of its own on the same server: 30 new schools, copied by 8 admin connections at once.
    const copies = new ServerFleet(server, 30, "copies_catalog", "copy");
    try {
      await copies.create();
      const most = await mostSessionsDuring(async () => {
        const provisioned = await copies.run(["all", "--json", "--template"]);
        assert.equal(provisioned.code, 0, provisioned.stderr);
        const tenants = parseJson<FleetJson>(provisioned.stdout).tenants;
        assert.equal(tenants.length, 30);
        for (const tenant of tenants) assert.equal(tenant.result, "provisioned");
      });
      t.diagnostic(`most sessions of the tool at once: ${most}`);
      assert.ok(most <= 10, `the tool held ${most} connections at once (at most concurrency 8 + 2)`);
    } finally {
      copies.cleanup();
    }
  });

  it("a server full of other sessions (53300) is waited out, not a failure, and costs no retry", async () => {
    fleet.writeMigration("20240301000000_after_full.js", tableMigration("after_full"));
    // Every connection slot taken by someone else.
    const holders: pg.Client[] = [];
    for (;;) {
      const client = new pg.Client({ connectionString: `${server.url}/postgres` });
      try {
        await client.connect();
      } catch (error) {
        assert.equal((error as { code?: string }).code, "53300");
        break;
      }
      holders.push(client);
    }
    const run = fleet.start(["all", "--json", "--retries", "0"]);
    try {
      await new Promise((r) => setTimeout(r, 3000));
    } finally {
      await Promise.all(holders.map((c) => c.end()));
    }
    const result = await run.done;
    assert.equal(result.code, 0, result.stderr);
    for (const tenant of parseJson<FleetJson>(result.stdout).tenants) assert.equal(tenant.result, "migrated");
  });
});

describe("one database reached through two spellings of its server (issue 9 item 7)", () => {
  let fleet: Fleet;
  useFleet((f) => {
    fleet = f;
  });

  it("rows on 127.0.0.1 and on a TENANT_SERVERS alias (localhost) naming one database both fail, before any change", async (t) => {
    const alias = new URL(urlFor(fleet.catalog));
    alias.hostname = "localhost";
    const [shared, own, other] = fleet.dbs("shared", "own", "other");
    // A catalog of the user's own, without the bundled unique constraint.
    await query(fleet.catalog, "alter table schools drop constraint schools_school_database_unique");
    const [a, b] = await fleet.addSchools(
      { name: "A", database: shared },
      { name: "B", database: shared, server: "alias" },
      { name: "C", database: own },
      { name: "D", database: other, server: "alias" },
    );
    const result = await fleet.run(["all", "--json"], {
      env: { TENANT_SERVERS: JSON.stringify({ alias: alias.href }) },
    });
    assert.equal(result.code, 1, result.stderr);
    const tenants = byDatabase(parseJson<FleetJson>(result.stdout).tenants);
    const results = parseJson<FleetJson>(result.stdout).tenants;
    const rowA = results.find((t) => t.id === a);
    const rowB = results.find((t) => t.id === b);
    assert.equal(rowA?.result, "failed");
    assert.equal(rowB?.result, "failed");
    assert.match(rowA?.error ?? "", new RegExp(`same database as school ${b}\\b`));
    assert.match(rowB?.error ?? "", new RegExp(`same database as school ${a}\\b`));
    assert.equal(tenants.get(own)?.result, "provisioned");
    assert.equal(tenants.get(other)?.result, "provisioned");
    // Nothing reached the shared database.
    assert.equal(await databaseExists(shared), false);
    t.diagnostic(rowA?.error ?? "");
  });
});

describe("a refused connection (a transient fault)", () => {
  let fleet: Fleet;
  useFleet((f) => {
    fleet = f;
  });

  it("retries a refused connection a bounded number of times, then fails that tenant", async () => {
    await fleet.addSchools({ name: "Far away", database: fleet.db("far"), server: "closed" });
    const result = await fleet.run(["migrate", fleet.db("far"), "--retries", "2", "--json"], {
      env: { TENANT_SERVERS: JSON.stringify({ closed: "postgres://nobody:secret-pw@127.0.0.1:1" }) },
    });
    assert.equal(result.code, 1);
    assert.equal((result.stderr.match(/transient fault .*ECONNREFUSED.*; retry \d of 2/g) ?? []).length, 2);
    const tenant = parseJson<FleetJson>(result.stdout).tenants[0];
    assert.equal(tenant?.result, "failed");
    assert.match(tenant?.error ?? "", /ECONNREFUSED/);
    assert.doesNotMatch(result.stdout + result.stderr, /secret-pw/);
  });
});

describe("history on a catalog connection lost twice", () => {
  it("a new connection cut again before its UPDATE is replaced by another: the row is still final", async () => {
    await withFleet({}, async (fleet) => {
      const open = async () => {
        const client = new pg.Client({ connectionString: urlFor(fleet.catalog) });
        client.on("error", () => {});
        await client.connect();
        return client;
      };
      // pg_terminate_backend with a timeout returns once the session is gone.
      const cut = (client: pg.Client) =>
        query("postgres", "select pg_terminate_backend($1, 10000)", [
          (client as unknown as { processID: number }).processID,
        ]);
      const runs = await open();
      let reconnects = 0;
      const school = { id: "1", name: "One", database: `${fleet.prefix}_one`, server: null };
      const recorder = await HistoryRecorder.start(runs, "migrate", [school], async () => {
        reconnects++;
        const client = await open();
        // The first new connection is cut as well, as a restart still under way cuts it.
        if (reconnects === 1) await cut(client);
        return client;
      });
      await cut(runs);
      recorder.record({
        id: "1",
        name: "One",
        database: school.database,
        result: "migrated",
        migrations: ["001_a.js"],
        ms: 5,
      });
      await recorder.flush();
      await runs.end().catch(() => {});
      assert.equal(recorder.notRecorded, 0, recorder.lastError);
      assert.equal(reconnects, 2);
      const rows = await query(
        fleet.catalog,
        "select result, migrations, finished_at is not null as finished from tenant_migrate_history where run_id = $1",
        [recorder.runId],
      );
      assert.deepEqual(rows, [{ result: "migrated", migrations: ["001_a.js"], finished: true }]);
    });
  });
});
