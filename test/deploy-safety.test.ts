// Deploy safety on live schools: --rehearse (run and roll back), --pg-lock-timeout
// (never queue a school's traffic behind a migration for long) and
// --max-failures (a failure budget across the fleet).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import pg from "pg";
import { DEFAULT_PG_LOCK_TIMEOUT_MS, resolveConfig } from "../src/core/config.ts";
import { createMarkedDatabaseSql } from "../src/core/provisioning.ts";
import {
  appliedMigrations,
  byDatabase,
  databaseExists,
  type Fleet,
  type FleetJson,
  leaveStaleLock,
  lockFlag,
  parseJson,
  query,
  urlFor,
  useFleet,
  waitFor,
} from "./helpers.ts";

/** Everything a rehearsal must leave as it was in one school: schema, knex's rows and lock flag, data. */
async function snapshot(database: string): Promise<string> {
  const parts = await Promise.all([
    query(
      database,
      "select table_name, column_name, data_type from information_schema.columns where table_schema = 'public' order by 1, 2",
    ),
    query(database, "select indexname, indexdef from pg_indexes where schemaname = 'public' order by 1"),
    query(
      database,
      "select conname, contype from pg_constraint where connamespace = 'public'::regnamespace order by 1",
    ),
    query(database, "select id, name, batch, migration_time from knex_migrations order by id"),
    query(database, 'select "index", is_locked from knex_migrations_lock order by 1'),
    query(database, "select lunch_day_id, lunch_week_id, day_of_week, menu_details from lunch_day order by 1"),
  ]);
  return JSON.stringify(parts);
}

/** The catalog's own state: its knex rows and the whole run history. */
async function catalogSnapshot(catalog: string): Promise<string> {
  return JSON.stringify([
    await query(catalog, "select id, name, batch from knex_migrations order by id"),
    await query(catalog, "select * from tenant_migrate_history order by id"),
  ]);
}

/** Advisory locks held in this fleet's databases (a rehearsal must leave none). */
async function advisoryLocks(prefix: string): Promise<number> {
  const rows = await query<{ n: number }>(
    "postgres",
    `select count(*)::int as n from pg_locks l join pg_database d on d.oid = l.database
      where l.locktype = 'advisory' and d.datname like $1`,
    [`${prefix}\\_%`],
  );
  return rows[0]?.n ?? 0;
}

/** A week with two days; the days' menus are `menus`. */
async function addMenus(database: string, menus: [string, string]): Promise<void> {
  await query(
    database,
    `with w as (insert into lunch_week (week_of) values ('2024-09-02') returning lunch_week_id)
     insert into lunch_day (lunch_week_id, day_of_week, menu_details)
     select lunch_week_id, d, m from w, unnest($1::text[], $2::text[]) as x(d, m)`,
    [["monday", "tuesday"], menus],
  );
}

const ADD_NOTES = "20240301000000_add_week_notes.js";
const UNIQUE_MENUS = "20240301000001_unique_menus.js";
const CONCURRENT_INDEX = "20240301000002_concurrent_index.js";

/** The two pending migrations the rehearsals run: a new column, then a unique index on the days' menus. */
function writeNotesAndUniqueMenus(fleet: Fleet): void {
  fleet.writeMigration(
    ADD_NOTES,
    `export async function up(knex) { await knex.schema.alterTable("lunch_week", (t) => { t.text("notes"); }); }
export async function down(knex) { await knex.schema.alterTable("lunch_week", (t) => { t.dropColumn("notes"); }); }
`,
  );
  fleet.writeMigration(
    UNIQUE_MENUS,
    `export async function up(knex) { await knex.schema.alterTable("lunch_day", (t) => { t.unique(["menu_details"], { indexName: "lunch_day_menu_unique" }); }); }
export async function down(knex) { await knex.schema.alterTable("lunch_day", (t) => { t.dropUnique(["menu_details"], "lunch_day_menu_unique"); }); }
`,
  );
}

describe("--rehearse", () => {
  let fleet: Fleet;
  useFleet(
    (f) => {
      fleet = f;
    },
    { each: true },
  );

  it("all --rehearse on 20 schools: reports the 2 schools whose data breaks a new unique index as failed, rehearses the 18 others, and changes nothing", async () => {
    const names = fleet.numberedDbs("r", 20);
    await fleet.addMigrated(names, ["--concurrency", "8"]);
    const duplicated = new Set([names[4] as string, names[13] as string]);
    for (const [i, database] of names.entries()) {
      await addMenus(database, duplicated.has(database) ? ["fish", "fish"] : [`soup ${i}`, `pasta ${i}`]);
    }
    // A school whose knex flag a dead process left set: rehearsed, and the flag is still set afterwards.
    const stale = names[7] as string;
    await leaveStaleLock(stale);
    // A school in the catalog that is not provisioned yet.
    const newcomer = fleet.db("newcomer");
    await fleet.addTenants([newcomer]);

    writeNotesAndUniqueMenus(fleet);

    const before = new Map<string, string>();
    for (const database of names) before.set(database, await snapshot(database));
    const catalogBefore = await catalogSnapshot(fleet.catalog);

    const result = await fleet.run(["all", "--rehearse", "--json", "--concurrency", "6"]);
    assert.equal(result.code, 1, result.stderr);
    const json = parseJson<FleetJson & { rehearse?: boolean }>(result.stdout);
    assert.equal(json.ok, false);
    assert.equal(json.rehearse, true);
    const tenants = byDatabase(json.tenants);
    for (const database of names) {
      const tenant = tenants.get(database);
      if (duplicated.has(database)) {
        assert.equal(tenant?.result, "failed", database);
        assert.match(tenant?.error ?? "", new RegExp(`migration ${UNIQUE_MENUS} failed`));
        assert.match(tenant?.error ?? "", /could not create unique index "lunch_day_menu_unique"/);
        assert.match(tenant?.error ?? "", /SQLSTATE 23505/);
        assert.deepEqual(tenant?.migrations, []);
      } else {
        assert.equal(tenant?.result, "rehearsed", `${database}: ${tenant?.error ?? ""}`);
        assert.deepEqual(tenant?.migrations, [ADD_NOTES, UNIQUE_MENUS]);
      }
    }
    assert.equal(tenants.get(newcomer)?.result, "skipped");
    assert.equal(tenants.get(newcomer)?.reason, "not provisioned yet; nothing to rehearse");
    assert.deepEqual(
      { succeeded: json.summary.succeeded, failed: json.summary.failed, skipped: json.summary.skipped },
      { succeeded: 18, failed: 2, skipped: 1 },
    );

    // Nothing changed anywhere: schema, data, knex's rows and flag, the catalog and its history, no lock left.
    for (const database of names) {
      assert.equal(await snapshot(database), before.get(database), `${database} is as it was`);
    }
    assert.deepEqual(await lockFlag(stale), [1], "the stale flag is still there, as before");
    assert.equal(await databaseExists(newcomer), false, "no database was created");
    assert.equal(await catalogSnapshot(fleet.catalog), catalogBefore, "no history row, no catalog change");
    assert.equal(await advisoryLocks(fleet.prefix), 0);
  });

  it("a pending migration that runs outside a transaction makes the school not-rehearsable: nothing runs", async () => {
    const names = fleet.numberedDbs("r", 3);
    await fleet.addMigrated(names);
    writeNotesAndUniqueMenus(fleet);
    fleet.writeMigration(
      CONCURRENT_INDEX,
      `export const config = { transaction: false };
export async function up(knex) { await knex.raw("create index concurrently week_notes on lunch_week (notes)"); }
export async function down(knex) { await knex.raw("drop index concurrently week_notes"); }
`,
    );
    const before = await Promise.all(names.map(snapshot));
    const result = await fleet.run(["migrate", "--rehearse", "--json", ...names]);
    assert.equal(result.code, 0, result.stderr);
    const json = parseJson<FleetJson & { summary: { notRehearsable?: number } }>(result.stdout);
    for (const tenant of json.tenants) {
      assert.equal(tenant.result, "not-rehearsable", tenant.database);
      assert.deepEqual(tenant.migrations, [ADD_NOTES, UNIQUE_MENUS, CONCURRENT_INDEX]);
    }
    assert.equal(json.summary.notRehearsable, 3);
    assert.equal(json.summary.succeeded, 0);
    assert.match(result.stderr, new RegExp(`${CONCURRENT_INDEX} runs outside a transaction`));
    assert.deepEqual(await Promise.all(names.map(snapshot)), before);
  });

  it("migrate --rehearse on a half-made school fails it with migrate's words: provisioning was cut short", async () => {
    const ready = fleet.db("ready");
    await fleet.addMigrated([ready]);
    // Exactly what a provisioning run killed right after its CREATE DATABASE leaves: closed, marked as the tool's.
    const halfMade = fleet.db("half_made");
    await query("postgres", createMarkedDatabaseSql(halfMade));
    const [id] = await fleet.addTenants([halfMade]);
    writeNotesAndUniqueMenus(fleet);
    const databaseRow = () =>
      query("postgres", "select datallowconn, datconnlimit from pg_database where datname = $1", [halfMade]);
    const before = await databaseRow();

    const rehearse = await fleet.run(["migrate", "--rehearse", "--json"]);
    assert.equal(rehearse.code, 1, rehearse.stderr);
    const tenants = byDatabase(parseJson<FleetJson>(rehearse.stdout).tenants);
    assert.equal(tenants.get(ready)?.result, "rehearsed", tenants.get(ready)?.error);
    assert.equal(tenants.get(halfMade)?.result, "failed");
    assert.equal(
      tenants.get(halfMade)?.error,
      `database "${halfMade}" was created but its provisioning was cut short: run \`tenant-migrate provision ${id}\``,
    );
    // The real migrate says the same.
    const migrate = await fleet.run(["migrate", halfMade, "--json"]);
    assert.equal(migrate.code, 1, migrate.stderr);
    assert.equal(parseJson<FleetJson>(migrate.stdout).tenants[0]?.error, tenants.get(halfMade)?.error);
    assert.deepEqual(await databaseRow(), before, "still closed and marked");
  });

  it("refuses --rehearse with --dry-run (exit 2)", async () => {
    const result = await fleet.run(["migrate", "--rehearse", "--dry-run"]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /--rehearse or --dry-run, not both/);
  });
});

describe("--pg-lock-timeout", () => {
  let fleet: Fleet;
  useFleet((f) => {
    fleet = f;
  });

  it("a migration waiting behind a school's open transaction gives up, is retried, then fails naming the lock and its holder; the others migrate; the school's traffic is not stuck behind it", async () => {
    const names = fleet.numberedDbs("l", 3);
    await fleet.addMigrated(names);
    const busy = names[1] as string;
    const alter = "20240301000000_week_notes.js";
    fleet.writeMigration(
      alter,
      `export async function up(knex) { await knex.raw("alter table lunch_week add column notes text"); }
export async function down(knex) { await knex.raw("alter table lunch_week drop column notes"); }
`,
    );

    // The school's live traffic: one long transaction that read lunch_week, and a reader that comes later.
    const holder = new pg.Client({ connectionString: urlFor(busy), application_name: "deploy-safety-holder" });
    const reader = new pg.Client({ connectionString: urlFor(busy), application_name: "deploy-safety-reader" });
    await holder.connect();
    await reader.connect();
    try {
      await holder.query("begin");
      await holder.query("lock table lunch_week in access share mode");

      const run = fleet.start(["migrate", "--pg-lock-timeout", "1s", "--retries", "3", "--json"]);
      // The ALTER TABLE is queued for its ACCESS EXCLUSIVE lock: from now on every new query on
      // lunch_week queues behind it, the outage --pg-lock-timeout bounds.
      await waitFor(
        async () =>
          (
            await query<{ n: number }>(
              "postgres",
              "select count(*)::int as n from pg_stat_activity where datname = $1 and application_name = 'tenant-migrate' and wait_event_type = 'Lock'",
              [busy],
            )
          )[0]?.n === 1,
        30_000,
        "the migration waiting for its lock",
      );
      // A query of the school's traffic issued now queues behind the waiting ALTER; it must finish
      // when lock_timeout cancels the ALTER, while the holder still holds its lock and the run is
      // still retrying (three retries, 1 s + 2 s + 4 s of backoff), not when the holder lets go.
      const read = reader.query("select count(*) from lunch_week").then(() => "reader" as const);
      const first = await Promise.race([
        read,
        run.done.then(() => "run" as const),
        new Promise<"stuck">((resolve) => setTimeout(() => resolve("stuck"), 60_000).unref()),
      ]);
      assert.equal(first, "reader", "the school's query finished while the migration was still retrying");

      const result = await run.done;
      assert.equal(result.code, 1, result.stderr);
      const tenants = byDatabase(parseJson<FleetJson>(result.stdout).tenants);
      const failed = tenants.get(busy);
      assert.equal(failed?.result, "failed");
      const error = failed?.error ?? "";
      assert.match(error, new RegExp(`migration ${alter} failed`));
      assert.match(error, /waited longer than --pg-lock-timeout \(1 s\) for a lock/);
      assert.match(error, /held by pid \d+ \(application "deploy-safety-holder", idle in transaction/);
      assert.match(error, /holding lunch_week/);
      assert.match(error, /last query "lock table lunch_week in access share mode"/);
      assert.match(error, /gave up after 4 tries/);
      // The retry notices: the first in full, the ones like it folded into one line.
      assert.match(result.stderr, /retry 1 of 3/);
      assert.match(result.stderr, /2 more like/);
      for (const database of names.filter((n) => n !== busy)) {
        assert.equal(tenants.get(database)?.result, "migrated", database);
      }
    } finally {
      await holder.query("rollback").catch(() => {});
      await holder.end();
      await reader.end();
    }
    assert.equal((await appliedMigrations(busy)).includes(alter), false, "rolled back");
    const column = await query(
      busy,
      "select 1 from information_schema.columns where table_name = 'lunch_week' and column_name = 'notes'",
    );
    assert.equal(column.length, 0);
  });

  it("defaults to 10 s; flag > TENANT_MIGRATE_PG_LOCK_TIMEOUT; 0 turns it off", () => {
    const url = "postgres://u@127.0.0.1:5432/catalog";
    const ms = (flag: string | undefined, env: Record<string, string> = {}) =>
      resolveConfig({ catalogUrl: url, pgLockTimeout: flag }, env, "/").pgLockTimeoutMs;
    assert.equal(ms(undefined), DEFAULT_PG_LOCK_TIMEOUT_MS);
    assert.equal(DEFAULT_PG_LOCK_TIMEOUT_MS, 10_000);
    assert.equal(ms(undefined, { TENANT_MIGRATE_PG_LOCK_TIMEOUT: "2s" }), 2000);
    assert.equal(ms("500ms", { TENANT_MIGRATE_PG_LOCK_TIMEOUT: "2s" }), 500);
    assert.equal(ms("0"), 0);
  });

  it("is validated like --lock-timeout (exit 2)", async () => {
    const result = await fleet.run(["migrate", "--pg-lock-timeout", "soon"]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /--pg-lock-timeout \/ TENANT_MIGRATE_PG_LOCK_TIMEOUT must be a duration/);
  });
});

describe("--max-failures", () => {
  let fleet: Fleet;
  useFleet((f) => {
    fleet = f;
  });

  it("with 5 failing schools and --max-failures 2: 3 fail, the schools not started are skipped, exit 1", async () => {
    const names = fleet.numberedDbs("m", 8);
    await fleet.addMigrated(names);
    const failing = [1, 2, 4, 5, 7].map((i) => names[i] as string);
    for (const database of failing) await query(database, "create table blocker (id int)");
    const file = "20240301000000_blocker.js";
    fleet.writeMigration(
      file,
      `export async function up(knex) { await knex.raw("create table blocker (id int)"); }
export async function down(knex) { await knex.raw("drop table blocker"); }
`,
    );
    const result = await fleet.run(["migrate", "--max-failures", "2", "--concurrency", "1", "--json"]);
    assert.equal(result.code, 1, result.stderr);
    const json = parseJson<FleetJson>(result.stdout);
    // Catalog order at concurrency 1: 0 ok, 1 ✖, 2 ✖, 3 ok, 4 ✖ (the third: budget spent), 5, 6, 7 skipped.
    assert.deepEqual(
      json.tenants.map((t) => t.result),
      ["migrated", "failed", "failed", "migrated", "failed", "skipped", "skipped", "skipped"],
    );
    assert.deepEqual(
      { failed: json.summary.failed, skipped: json.summary.skipped, succeeded: json.summary.succeeded },
      { failed: 3, skipped: 3, succeeded: 2 },
    );
    assert.match(result.stderr, /3 tenants failed, more than --max-failures 2: no new tenant starts/);
    // Each skipped school says why, and the recap folds them into one line with that reason.
    for (const tenant of json.tenants.filter((t) => t.result === "skipped")) {
      assert.equal(tenant.reason, "more than --max-failures 2 failed");
    }
    assert.match(result.stderr, /3 skipped: more than --max-failures 2 failed/);
    assert.equal((await appliedMigrations(names[6] as string)).includes(file), false, "a skipped school never started");
  });
});
