// Signals with real processes: SIGKILL mid-rollback and mid-migration (what
// is left, and what the next run does), SIGINT and SIGTERM (finish what is in
// flight, start nothing new, exit 130). A signal is sent once the CLI is known
// to be at that point: a school waiting at a MigrationGate, a session seen in
// pg_stat_activity, knex's lock flag taken.
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
  MigrationGate,
  parseJson,
  query,
  ROOT,
  tableExists,
  useFleet,
  waitFor,
  withDb,
} from "./helpers.ts";

/** A migration whose up and down each sleep, so that a kill lands mid-way. */
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

describe("SIGKILL in the middle of a rollback of every tenant", () => {
  let fleet: Fleet;
  useFleet(
    (f) => {
      fleet = f;
    },
    { each: true },
  );

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

describe("SIGINT and SIGTERM", () => {
  let fleet: Fleet;
  useFleet(
    (f) => {
      fleet = f;
    },
    { each: true },
  );

  it("finishes the school in flight, starts no other, exits 130; the next run completes", async () => {
    const gate = new MigrationGate(fleet);
    fleet.writeMigration("20240201000000_gate.js", gate.migration("gate_table"));
    const names = fleet.numberedDbs("s", 5);
    await fleet.addTenants(names);
    // No template (the default, said here): the school in flight runs the gate migration itself.
    const run = fleet.start(["all", "--no-template", "--concurrency", "1", "--json"]);
    await gate.waitForArrivals(1);
    run.child.kill("SIGINT");
    await waitFor(() => run.output().stderr.includes("SIGINT: finishing what is in flight"), 20_000, "SIGINT taken");
    gate.open();
    const result = await run.done;
    assert.equal(result.code, 130, result.stderr);
    assert.match(result.stderr, /SIGINT: finishing what is in flight; no new tenant will start/);
    const json = parseJson<FleetJson>(result.stdout);
    assert.equal(json.interrupted, true);
    assert.deepEqual(
      json.tenants.map((t) => [t.database, t.result]),
      names.map((database, i) => [database, i === 0 ? "provisioned" : "skipped"]),
    );
    assert.equal(gate.arrived(), 1, "no other school started");
    assert.equal((await appliedMigrations(names[0] as string)).length, 4, "the school in flight finished whole");
    for (const database of names.slice(1)) assert.equal(await databaseExists(database), false, database);
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
    const gate = new MigrationGate(fleet);
    const dir = path.join(fleet.cwd, "slow_catalog");
    cpSync(path.join(ROOT, "catalog_migrations"), dir, { recursive: true });
    writeFileSync(path.join(dir, "20990101000000_slow.js"), gate.migration("slow_catalog_table"));
    const run = fleet.start(["catalog", "migrate", "--catalog-migrations", dir]);
    await gate.waitForArrivals(1);
    run.child.kill("SIGTERM");
    await waitFor(() => run.output().stderr.includes("SIGTERM: finishing what is in flight"), 20_000, "SIGTERM taken");
    gate.open();
    const result = await run.done;
    assert.equal(result.code, 130, result.stderr);
    assert.match(result.stdout, /catalog migrated: 20990101000000_slow\.js/);
    assert.ok(await tableExists(fleet.catalog, "slow_catalog_table"));
    assert.deepEqual(await lockFlag(fleet.catalog), [0]);
  });
});
