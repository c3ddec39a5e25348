// Fault injection with real processes: concurrent runs, SIGKILL, SIGINT,
// failing data, held locks and unreachable servers.
import assert from "node:assert/strict";
import { cpSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import {
  appliedMigrations,
  databaseExists,
  type Fleet,
  type FleetJson,
  type HistoryJson,
  lockFlag,
  parseJson,
  query,
  ROOT,
  tableExists,
  tableMigration,
  useFleet,
  waitFor,
  withDb,
} from "./helpers.ts";

const TENANT_LOCK_KEY = "7465767000";

/** A migration whose up and down each sleep, so that a signal lands mid-way. */
function slowMigration(table: string, seconds: number, transaction = true): string {
  return `export const config = { transaction: ${transaction} };
export async function up(knex) {
  await knex.raw("select pg_sleep(${seconds})");
  await knex.schema.createTable("${table}", (t) => { t.increments("id"); });
}
export async function down(knex) {
  await knex.raw("select pg_sleep(${seconds})");
  await knex.schema.dropTable("${table}");
}
`;
}

/** How many sessions on the test server match `condition` (SQL over pg_stat_activity). */
async function sessionsRunning(condition: string, params: unknown[]): Promise<number> {
  const rows = await query<{ n: number }>(
    "postgres",
    `select count(*)::int as n from pg_stat_activity where ${condition}`,
    params,
  );
  return rows[0]?.n ?? 0;
}

describe("five `all` runs at once", () => {
  let fleet: Fleet;
  useFleet((f) => {
    fleet = f;
  });

  it("apply each migration to each tenant exactly once, and all exit 0", async () => {
    const names = fleet.numberedDbs("school_", 12);
    await fleet.addTenants(names);
    const runs = Array.from({ length: 5 }, () => fleet.start(["all", "--json", "--concurrency", "4"]));
    const results = await Promise.all(runs.map((r) => r.done));
    for (const result of results) assert.equal(result.code, 0, result.stderr);

    const reported = new Map<string, string[]>();
    for (const result of results) {
      for (const tenant of parseJson<FleetJson>(result.stdout).tenants) {
        reported.set(tenant.database, [...(reported.get(tenant.database) ?? []), ...tenant.migrations]);
      }
    }
    const files = (await appliedMigrations(names[0] as string)).length;
    assert.equal(files, 3);
    for (const database of names) {
      const applied = await appliedMigrations(database);
      assert.equal(applied.length, 3, `${database} has each migration once`);
      assert.equal(new Set(applied).size, 3);
      assert.deepEqual((reported.get(database) ?? []).sort(), [...applied].sort(), `${database}: reported once in all`);
      assert.deepEqual(await lockFlag(database), [0], `${database}: one lock row, unlocked`);
    }
    const provisioned = results
      .flatMap((r) => parseJson<FleetJson>(r.stdout).tenants)
      .filter((t) => t.result === "provisioned");
    assert.equal(provisioned.length, names.length, "each database was created by exactly one run");
  });
});

describe("SIGKILL in the middle of a rollback of every tenant", () => {
  let fleet: Fleet;
  useFleet((f) => {
    fleet = f;
  });

  it("leaves every tenant as it was or rolled back; a second rollback finishes alone", async () => {
    fleet.writeMigration("20240201000000_slow.js", slowMigration("slow_table", 0.3));
    const names = fleet.numberedDbs("k", 6);
    await fleet.addMigrated(names, ["--concurrency", "6"]);

    const run = fleet.start(["rollback", "--all-tenants", "--yes", "--all", "--concurrency", "2", "--json"]);
    // Kill once the first tenants are inside their rollback transaction.
    await waitFor(
      async () =>
        (await sessionsRunning("datname like $1 and query like '%pg_sleep%'", [`${fleet.prefix}\\_k%`])) === 2,
      20_000,
      "rollbacks in flight",
    );
    run.child.kill("SIGKILL");
    const killed = await run.done;
    assert.equal(killed.signal, "SIGKILL");

    for (const database of names) {
      const applied = await appliedMigrations(database);
      assert.ok(
        applied.length === 4 || applied.length === 0,
        `${database}: whole batch or nothing (${applied.length})`,
      );
      assert.equal(await tableExists(database, "slow_table"), applied.length === 4, `${database}: schema agrees`);
    }

    const again = await fleet.run(["rollback", "--all-tenants", "--yes", "--all", "--json", "--concurrency", "6"]);
    assert.equal(again.code, 0, again.stderr);
    const json = parseJson<FleetJson>(again.stdout);
    assert.ok(json.tenants.every((t) => t.result === "rolled-back" || t.result === "nothing-to-roll-back"));
    for (const database of names) {
      assert.deepEqual(await appliedMigrations(database), []);
      assert.equal(await tableExists(database, "slow_table"), false);
      assert.equal(await tableExists(database, "lunch_week"), false);
      assert.deepEqual(await lockFlag(database), [0]);
    }
    const history = await fleet.run(["history", "--json"]);
    const entries = parseJson<HistoryJson>(history.stdout).history;
    assert.ok(
      entries.some((e) => e.command === "rollback" && e.result === "unfinished"),
      "the killed run's history rows say it never finished",
    );
  });

  it("a non-transactional migration killed mid-way leaves a knex lock that the next run clears, saying so", async () => {
    const database = fleet.db("notx");
    await fleet.addMigrated([database]);
    fleet.writeMigration("20240301000000_notx.js", slowMigration("notx_table", 2, false));
    const run = fleet.start(["migrate", database]);
    // knex commits its lock flag before a non-transactional migration starts.
    await waitFor(async () => (await lockFlag(database))[0] === 1, 20_000, "knex lock taken");
    run.child.kill("SIGKILL");
    await run.done;
    assert.deepEqual(await lockFlag(database), [1], "knex's flag survived the kill");

    const next = await fleet.run(["migrate", database]);
    assert.equal(next.code, 0, next.stderr);
    assert.match(next.stderr, new RegExp(`${database}: cleared a knex migration lock left by a process that is gone`));
    assert.deepEqual(await lockFlag(database), [0]);
    assert.ok(await tableExists(database, "notx_table"));
  });
});

describe("SIGINT during `all`", () => {
  let fleet: Fleet;
  useFleet((f) => {
    fleet = f;
  });

  it("finishes the tenant in flight, skips the rest, exits 130; the next run completes", async () => {
    fleet.writeMigration("20240201000000_slow.js", slowMigration("slow_table", 0.4));
    const names = fleet.numberedDbs("s", 5);
    await fleet.addTenants(names);
    const run = fleet.start(["all", "--concurrency", "1", "--json"]);
    await waitFor(() => run.output().stderr.includes("provisioned"), 20_000, "a first tenant done");
    run.child.kill("SIGINT");
    const result = await run.done;
    assert.equal(result.code, 130, result.stderr);
    assert.match(result.stderr, /SIGINT: finishing what is in flight; no new tenant will start/);
    const json = parseJson<FleetJson>(result.stdout);
    assert.equal(json.interrupted, true);
    assert.ok(json.summary.skipped > 0, "some tenants were skipped");
    for (const tenant of json.tenants) {
      assert.ok(["provisioned", "skipped"].includes(tenant.result), `${tenant.database}: ${tenant.result}`);
      if (tenant.result === "provisioned") assert.equal((await appliedMigrations(tenant.database)).length, 4);
    }
    assert.equal(await sessionsRunning("datname like $1", [`${fleet.prefix}\\_s%`]), 0, "no connection left behind");

    const next = await fleet.run(["all", "--json"]);
    assert.equal(next.code, 0, next.stderr);
    for (const database of names) assert.equal((await appliedMigrations(database)).length, 4);
  });

  it("SIGTERM during drop: the school in hand is finished, the rest are skipped and kept, exit 130", async () => {
    const [busy, kept] = fleet.dbs("drop_busy", "drop_kept");
    await fleet.addMigrated([busy, kept]);
    // A session on the first school: DROP DATABASE waits ~5 s for it to leave, then fails.
    await withDb(busy, async () => {
      const run = fleet.start(["drop", busy, kept, "--yes", "--json"]);
      await waitFor(
        async () => (await sessionsRunning("query like 'drop database%' and strpos(query, $1) > 0", [busy])) > 0,
        20_000,
        "drop waiting for the busy school",
      );
      run.child.kill("SIGTERM");
      const result = await run.done;
      assert.equal(result.code, 130, result.stderr);
      const json = parseJson<{ tenants: { database: string; result: string }[] }>(result.stdout);
      assert.deepEqual(
        json.tenants.map((t) => [t.database, t.result]),
        [
          [busy, "failed"],
          [kept, "skipped"],
        ],
      );
    });
    assert.ok(await databaseExists(kept), "a skipped school is not dropped");
  });

  it("SIGTERM during a command with no fleet (catalog migrate) lets its migration finish, then exits 130", async () => {
    const dir = path.join(fleet.cwd, "slow_catalog");
    cpSync(path.join(ROOT, "catalog_migrations"), dir, { recursive: true });
    writeFileSync(path.join(dir, "20990101000000_slow.js"), slowMigration("slow_catalog_table", 1));
    const run = fleet.start(["catalog", "migrate", "--catalog-migrations", dir]);
    await waitFor(
      async () => (await sessionsRunning("datname = $1 and query like 'select pg_sleep%'", [fleet.catalog])) > 0,
      20_000,
      "the slow catalog migration running",
    );
    run.child.kill("SIGTERM");
    const result = await run.done;
    assert.equal(result.code, 130, result.stderr);
    assert.match(result.stderr, /SIGTERM: finishing what is in flight/);
    assert.match(result.stdout, /catalog migrated: 20990101000000_slow\.js/);
    assert.ok(await tableExists(fleet.catalog, "slow_catalog_table"));
    assert.deepEqual(await lockFlag(fleet.catalog), [0]);
  });
});

describe("failure isolation", () => {
  let fleet: Fleet;
  useFleet((f) => {
    fleet = f;
  });

  it("a tenant whose data breaks a migration fails alone, with nothing half-made", async () => {
    const [good, bad] = fleet.dbs("good", "bad");
    await fleet.addMigrated([good, bad]);
    await query(bad, "insert into lunch_week (week_of) values ('2024-01-01'), ('2024-01-08')");
    await query(bad, "update lunch_week set is_published = true");
    fleet.writeMigration("20240401000000_add_notes.js", tableMigration("notes"));
    fleet.writeMigration(
      "20240401000001_one_published_week.js",
      `export async function up(knex) {
  await knex.raw("create unique index one_published_week on lunch_week (is_published) where is_published");
}
export async function down(knex) { await knex.raw("drop index one_published_week"); }`,
    );
    const result = await fleet.run(["migrate", "--json"]);
    assert.equal(result.code, 1, result.stderr);
    const json = parseJson<FleetJson>(result.stdout);
    const goodResult = json.tenants.find((t) => t.database === good);
    const badResult = json.tenants.find((t) => t.database === bad);
    assert.equal(goodResult?.result, "migrated");
    assert.deepEqual(goodResult?.migrations, ["20240401000000_add_notes.js", "20240401000001_one_published_week.js"]);
    assert.equal(badResult?.result, "failed");
    assert.deepEqual(badResult?.migrations, []);
    assert.match(badResult?.error ?? "", /migration 20240401000001_one_published_week\.js failed/);
    assert.match(badResult?.error ?? "", /could not create unique index/);
    assert.match(badResult?.error ?? "", /SQLSTATE 23505/);
    assert.match(badResult?.error ?? "", /detail: Key \(is_published\)=\(t\) is duplicated/);
    assert.equal(await tableExists(bad, "notes"), false, "the batch was rolled back whole");
    assert.equal((await appliedMigrations(bad)).length, 3);
    assert.deepEqual(await lockFlag(bad), [0]);
    assert.ok(await tableExists(good, "notes"));
  });

  it("with --on-error abort, nothing starts after a failure", async () => {
    const result = await fleet.run(["migrate", "--json", "--on-error", "abort", "--concurrency", "1"]);
    assert.equal(result.code, 1);
    const json = parseJson<FleetJson>(result.stdout);
    // Good is up to date (first), bad fails (second); nothing after it.
    assert.deepEqual(
      json.tenants.map((t) => t.result),
      ["up-to-date", "failed"],
    );
  });
});

describe("locks held by another run, and transient faults", () => {
  let fleet: Fleet;
  useFleet((f) => {
    fleet = f;
  });

  it("waits for another run's tenant lock, bounded by --lock-timeout", async () => {
    const database = fleet.db("held");
    await fleet.addMigrated([database]);
    fleet.writeMigration("20240501000000_more.js", tableMigration("more"));
    await withDb(database, async (holder) => {
      await holder.query("select pg_advisory_lock($1::bigint)", [TENANT_LOCK_KEY]);
      const gaveUp = await fleet.run(["migrate", "--lock-timeout", "1s", "--json"]);
      assert.equal(gaveUp.code, 1);
      const error = parseJson<FleetJson>(gaveUp.stdout).tenants[0]?.error ?? "";
      assert.match(
        error,
        new RegExp(`another tenant-migrate run is working on ${database}; gave up after waiting 1 s`),
      );
      assert.equal(await tableExists(database, "more"), false);

      // SIGTERM ends a wait at once: the tenant had not started, so it is skipped.
      const interrupted = fleet.start(["migrate", "--lock-timeout", "60s", "--json"]);
      await waitFor(() => interrupted.output().stderr.includes("waiting (up to 60 s)"), 20_000, "wait");
      const sent = Date.now();
      interrupted.child.kill("SIGTERM");
      const stopped = await interrupted.done;
      assert.equal(stopped.code, 130, stopped.stderr);
      assert.ok(Date.now() - sent < 10_000, "it did not wait out the lock timeout");
      assert.equal(parseJson<FleetJson>(stopped.stdout).tenants[0]?.result, "skipped");
      assert.equal(await tableExists(database, "more"), false);

      const waiting = fleet.start(["migrate", "--lock-timeout", "30s"]);
      await waitFor(() => waiting.output().stderr.includes("another run is working on it; waiting"), 20_000, "wait");
      await holder.query("select pg_advisory_unlock($1::bigint)", [TENANT_LOCK_KEY]);
      const result = await waiting.done;
      assert.equal(result.code, 0, result.stderr);
      assert.ok(await tableExists(database, "more"));
    });
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
