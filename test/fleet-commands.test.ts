// The fleet commands as a user runs them: all, migrate, rollback, provision,
// status, history, unlock and drop; --dry-run, --on-error abort and unknown
// tenant names. Each describe has a fleet of its own (most a fresh one per test).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  appliedMigrations,
  BUNDLED_CATALOG,
  blockFirstMigration,
  byDatabase,
  databaseExists,
  type Fleet,
  type FleetJson,
  type HistoryJson,
  historyCount,
  leaveStaleLock,
  lockFlag,
  migrationBatches,
  parseJson,
  query,
  SAMPLE,
  type StatusJson,
  type TenantResultJson,
  tableExists,
  tableMigration,
  useFleet,
  withDb,
  withFleet,
} from "./helpers.ts";

/** The summary must count exactly what the tenants array says. */
function assertSummaryMatches(json: FleetJson): void {
  const count = (pred: (t: TenantResultJson) => boolean) => json.tenants.filter(pred).length;
  assert.equal(json.summary.total, json.tenants.length);
  assert.equal(
    json.summary.failed,
    count((t) => t.result === "failed"),
  );
  assert.equal(
    json.summary.skipped,
    count((t) => t.result === "skipped"),
  );
  assert.equal(
    json.summary.succeeded,
    count((t) => t.result !== "failed" && t.result !== "skipped"),
  );
  assert.equal(json.ok, json.summary.failed === 0 && json.summary.skipped === 0);
}

async function columnExists(database: string, table: string, column: string): Promise<boolean> {
  const rows = await query(
    database,
    "select 1 from information_schema.columns where table_name = $1 and column_name = $2 and table_schema = 'public'",
    [table, column],
  );
  return rows.length > 0;
}

// Each describe below has a fleet of its own: they run side by side, their tests in order.
describe("fleet commands", { concurrency: 4 }, () => {
  describe("all", { concurrency: 1 }, () => {
    let fleet: Fleet;
    useFleet(
      (f) => {
        fleet = f;
      },
      { each: true },
    );

    it("creates and migrates every school database, then finds them up to date", async () => {
      const names = fleet.dbs("lincoln", "roosevelt", "washington");
      await fleet.addTenants(names);

      const first = await fleet.run(["all"]);
      assert.equal(first.code, 0, first.stderr);
      for (const database of names) {
        assert.ok(await databaseExists(database), `${database} exists`);
        assert.ok(await tableExists(database, "lunch_week"));
        assert.ok(await tableExists(database, "menu_item"));
        assert.deepEqual(await appliedMigrations(database), SAMPLE);
        assert.match(first.stdout, new RegExp(`${database} \\(id \\d+\\) provisioned`));
      }
      assert.match(first.stdout, /3 tenants: 3 provisioned \(/);

      const second = await fleet.run(["all", "--json"]);
      assert.equal(second.code, 0, second.stderr);
      const json = parseJson<FleetJson>(second.stdout);
      assert.equal(json.ok, true);
      assert.deepEqual(json.catalog, { migrations: [] });
      assert.deepEqual(
        json.tenants.map((t) => [t.database, t.result, t.migrations.length]),
        names.map((n) => [n, "up-to-date", 0]),
      );
      assert.deepEqual(json.summary, { ...json.summary, total: 3, succeeded: 3, failed: 0, skipped: 0 });
    });

    it("fails a hostile or over-long row alone, naming it, and migrates the others", async () => {
      const good = fleet.db("good_school");
      const hostile = `${fleet.prefix}"; drop database postgres; --`;
      const tooLong = `${fleet.prefix}_${"x".repeat(64 - fleet.prefix.length - 1)}`; // 64 bytes
      assert.equal(Buffer.byteLength(tooLong), 64);
      const [, hostileId, longId] = await fleet.addSchools(
        { name: "Good", database: good },
        { name: "Hostile", database: hostile },
        { name: "Too long", database: tooLong },
      );

      const result = await fleet.run(["all", "--json"]);
      assert.equal(result.code, 1, result.stderr);
      const json = parseJson<FleetJson>(result.stdout);
      const byId = new Map(json.tenants.map((t) => [t.id, t]));
      assert.equal(json.tenants.find((t) => t.database === good)?.result, "provisioned");
      assert.equal(byId.get(hostileId as string)?.result, "failed");
      assert.match(
        byId.get(hostileId as string)?.error ?? "",
        /school \d+: database name .* is not a lower-case PostgreSQL name/,
      );
      assert.equal(byId.get(longId as string)?.result, "failed");
      assert.match(byId.get(longId as string)?.error ?? "", /64 bytes long; PostgreSQL allows at most 63/);
      assert.equal(json.summary.failed, 2);
      assert.ok(await databaseExists("postgres"));
      assert.equal(await databaseExists(tooLong.slice(0, 63)), false, "no truncated database was created");
      const rows = await query(good, "select count(*)::int as n from knex_migrations");
      assert.deepEqual(rows, [{ n: 3 }]);
    });
  });

  describe("all --json with a tenant whose data breaks a migration", { concurrency: 1 }, () => {
    let fleet: Fleet;
    useFleet((f) => {
      fleet = f;
    });

    it("fails that tenant alone, lists every tenant's result, and the summary matches", async () => {
      const [a, b, c] = fleet.dbs("north", "south", "east");
      await fleet.addMigrated([a, b, c]);

      // South already publishes a week: a NOT NULL column without a default cannot be added there.
      await query(b, "insert into lunch_week (week_of) values ('2024-09-02')");
      const region = "20250101000000_require_week_region.js";
      fleet.writeMigration(
        region,
        `export async function up(knex) {
  await knex.schema.alterTable("lunch_week", (t) => { t.text("region").notNullable(); });
}
export async function down(knex) {
  await knex.schema.alterTable("lunch_week", (t) => { t.dropColumn("region"); });
}
`,
      );
      const hostile = `${fleet.prefix}_Bad; drop table x`;
      await fleet.addSchools({ name: "Hostile", database: hostile });

      const result = await fleet.run(["all", "--json"]);
      assert.equal(result.code, 1, result.stderr);
      const json = parseJson<FleetJson>(result.stdout);
      assert.equal(json.ok, false);
      assert.deepEqual(json.catalog, { migrations: [] });
      assert.deepEqual(
        json.tenants.map((t) => t.database),
        [a, b, c, hostile],
      );
      const tenants = byDatabase(json.tenants);
      for (const db of [a, c]) {
        assert.equal(tenants.get(db)?.result, "migrated");
        assert.deepEqual(tenants.get(db)?.migrations, [region]);
        assert.ok(await columnExists(db, "lunch_week", "region"));
        assert.deepEqual(await appliedMigrations(db), [...SAMPLE, region]);
      }
      const south = tenants.get(b);
      assert.equal(south?.result, "failed");
      assert.deepEqual(south?.migrations, [], "the failed migration ran in a transaction: nothing stayed applied");
      assert.match(south?.error ?? "", new RegExp(`${region}.*contains null values`));
      assert.deepEqual(await appliedMigrations(b), SAMPLE);
      assert.equal(await columnExists(b, "lunch_week", "region"), false);

      assert.equal(tenants.get(hostile)?.result, "failed");
      assert.match(tenants.get(hostile)?.error ?? "", /not a lower-case PostgreSQL name/);
      for (const t of json.tenants) {
        assert.equal(typeof t.id, "string");
        assert.equal(typeof t.ms, "number");
        assert.equal(t.name, t.database === hostile ? "Hostile" : t.database);
      }
      assertSummaryMatches(json);
      assert.deepEqual(
        [json.summary.total, json.summary.succeeded, json.summary.failed, json.summary.skipped],
        [4, 2, 2, 0],
      );
    });
  });

  describe("migrate with a tenant whose data breaks a migration", { concurrency: 1 }, () => {
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
  });

  describe("migrate, rollback one school, status", { concurrency: 1 }, () => {
    let fleet: Fleet;
    let dbs: [string, string, string];
    let ids: string[];
    const N1 = "20250101000000_create_allergen_note.js";
    const N2 = "20250102000000_create_recipe.js";
    useFleet(
      async (f) => {
        fleet = f;
        dbs = fleet.dbs("lincoln", "roosevelt", "adams");
        ids = await fleet.addMigrated(dbs);
      },
      { each: true },
    );

    /** Writes these migration files and migrates every school to them (one batch). */
    async function migrateTo(...files: [string, string][]): Promise<void> {
      for (const [name, table] of files) fleet.writeMigration(name, tableMigration(table));
      const result = await fleet.run(["migrate"]);
      assert.equal(result.code, 0, result.stderr);
    }

    it("migrate with no names runs a new file on every tenant, and only that file", async () => {
      fleet.writeMigration(N1, tableMigration("allergen_note"));
      const result = await fleet.run(["migrate", "--json"]);
      assert.equal(result.code, 0, result.stderr);
      const json = parseJson<FleetJson>(result.stdout);
      assert.equal(json.ok, true);
      assert.deepEqual(
        json.tenants.map((t) => [t.database, t.result, t.migrations]),
        dbs.map((db) => [db, "migrated", [N1]]),
      );
      assertSummaryMatches(json);
      for (const db of dbs) {
        assert.ok(await tableExists(db, "allergen_note"));
        assert.deepEqual(await migrationBatches(db), [
          ...SAMPLE.map((name) => ({ name, batch: 1 })),
          { name: N1, batch: 2 },
        ]);
      }
    });

    it("rollback <school_database> rolls back that school only", async () => {
      const [lincoln, roosevelt, adams] = dbs;
      await migrateTo([N1, "allergen_note"]);
      const result = await fleet.run(["rollback", roosevelt, "--json"]);
      assert.equal(result.code, 0, result.stderr);
      const json = parseJson<FleetJson>(result.stdout);
      assert.deepEqual(
        json.tenants.map((t) => [t.database, t.result, t.migrations]),
        [[roosevelt, "rolled-back", [N1]]],
      );
      assert.deepEqual(await appliedMigrations(roosevelt), SAMPLE);
      assert.equal(await tableExists(roosevelt, "allergen_note"), false);
      assert.ok(await tableExists(roosevelt, "menu_item"), "the earlier batch stays");
      for (const db of [lincoln, adams]) {
        assert.deepEqual(await appliedMigrations(db), [...SAMPLE, N1]);
        assert.ok(await tableExists(db, "allergen_note"));
      }
    });

    it("status --check exits 1 and status --json shows that school pending", async () => {
      const [lincoln, roosevelt, adams] = dbs;
      await migrateTo([N1, "allergen_note"]);
      const back = await fleet.run(["rollback", roosevelt]);
      assert.equal(back.code, 0, back.stderr);
      const check = await fleet.run(["status", "--check"]);
      assert.equal(check.code, 1, check.stderr);
      assert.match(check.stdout, new RegExp(`${roosevelt} \\(id ${ids[1]}\\) pending .*${N1}`));

      const result = await fleet.run(["status", "--json"]);
      assert.equal(result.code, 0, result.stderr);
      const json = parseJson<StatusJson>(result.stdout);
      assert.equal(json.latest, N1);
      const states = byDatabase(json.tenants);
      assert.equal(states.get(roosevelt)?.state, "pending");
      assert.deepEqual(states.get(roosevelt)?.pending, [N1]);
      assert.deepEqual(states.get(roosevelt)?.applied, SAMPLE);
      for (const db of [lincoln, adams]) {
        assert.equal(states.get(db)?.state, "up-to-date");
        assert.deepEqual(states.get(db)?.applied, [...SAMPLE, N1]);
        assert.deepEqual(states.get(db)?.pending, []);
      }
    });

    it("rollback <school_id> works too", async () => {
      const [lincoln, roosevelt, adams] = dbs;
      await migrateTo([N1, "allergen_note"]);
      const result = await fleet.run(["rollback", ids[2] as string, "--json"]);
      assert.equal(result.code, 0, result.stderr);
      const json = parseJson<FleetJson>(result.stdout);
      assert.deepEqual(
        json.tenants.map((t) => [t.id, t.database, t.result, t.migrations]),
        [[ids[2], adams, "rolled-back", [N1]]],
      );
      assert.equal(await tableExists(adams, "allergen_note"), false);
      assert.deepEqual(await appliedMigrations(adams), SAMPLE);
      for (const db of [lincoln, roosevelt]) assert.deepEqual(await appliedMigrations(db), [...SAMPLE, N1]);
    });

    it("rollback with no tenant and no --all-tenants exits 2 and changes nothing", async () => {
      await migrateTo([N1, "allergen_note"]);
      const before = await Promise.all(dbs.map(migrationBatches));
      const historyBefore = await historyCount(fleet.catalog);
      const result = await fleet.run(["rollback"]);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, /--all-tenants/);
      assert.deepEqual(await Promise.all(dbs.map(migrationBatches)), before);
      assert.equal(await historyCount(fleet.catalog), historyBefore);
      for (const db of dbs) assert.ok(await tableExists(db, "allergen_note"));
    });

    it("rollback --all-tenants --step 2 undoes the last two batches everywhere", async () => {
      await migrateTo([N1, "allergen_note"]);
      fleet.writeMigration(N2, tableMigration("recipe"));
      const migrate = await fleet.run(["migrate"]);
      assert.equal(migrate.code, 0, migrate.stderr);
      for (const db of dbs) assert.deepEqual((await migrationBatches(db)).at(-1), { name: N2, batch: 3 });

      const result = await fleet.run(["rollback", "--all-tenants", "--yes", "--step", "2", "--json"]);
      assert.equal(result.code, 0, result.stderr);
      const json = parseJson<FleetJson>(result.stdout);
      assert.deepEqual(
        json.tenants.map((t) => [t.database, t.result, t.migrations]),
        dbs.map((db) => [db, "rolled-back", [N2, N1]]),
      );
      for (const db of dbs) {
        assert.deepEqual(await appliedMigrations(db), SAMPLE);
        assert.equal(await tableExists(db, "recipe"), false);
        assert.equal(await tableExists(db, "allergen_note"), false);
        assert.ok(await tableExists(db, "menu_item"));
      }
    });

    it("rollback --all-tenants --to MIGRATION stops when it is the newest applied", async () => {
      await migrateTo([N1, "allergen_note"], [N2, "recipe"]);
      const result = await fleet.run(["rollback", "--all-tenants", "--yes", "--to", SAMPLE[1] as string, "--json"]);
      assert.equal(result.code, 0, result.stderr);
      const json = parseJson<FleetJson>(result.stdout);
      assert.deepEqual(
        json.tenants.map((t) => [t.database, t.result, t.migrations]),
        dbs.map((db) => [db, "rolled-back", [N2, N1, SAMPLE[2]]]),
      );
      for (const db of dbs) {
        assert.deepEqual(await appliedMigrations(db), SAMPLE.slice(0, 2));
        assert.equal(await tableExists(db, "menu_item"), false);
        assert.ok(await tableExists(db, "lunch_day"));
      }
      const unknownTarget = await fleet.run(["rollback", "--all-tenants", "--yes", "--to", "20990101000000_nope.js"]);
      assert.equal(unknownTarget.code, 2, unknownTarget.stderr);
      const twoModes = await fleet.run(["rollback", "--all-tenants", "--yes", "--step", "1", "--all"]);
      assert.equal(twoModes.code, 2, twoModes.stderr);
      for (const db of dbs) assert.deepEqual(await appliedMigrations(db), SAMPLE.slice(0, 2));
    });

    it("rollback <school> --all undoes every batch of that school; again, nothing to roll back", async () => {
      const [lincoln, roosevelt, adams] = dbs;
      await migrateTo([N1, "allergen_note"]);
      const result = await fleet.run(["rollback", lincoln, "--all", "--json"]);
      assert.equal(result.code, 0, result.stderr);
      const json = parseJson<FleetJson>(result.stdout);
      assert.deepEqual(
        json.tenants.map((t) => [t.database, t.result, t.migrations]),
        [[lincoln, "rolled-back", [N1, ...[...SAMPLE].reverse()]]],
      );
      assert.deepEqual(await appliedMigrations(lincoln), []);
      assert.equal(await tableExists(lincoln, "lunch_week"), false);
      for (const db of [roosevelt, adams]) assert.deepEqual(await appliedMigrations(db), [...SAMPLE, N1]);

      const again = await fleet.run(["rollback", lincoln, "--json"]);
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(
        parseJson<FleetJson>(again.stdout).tenants.map((t) => [t.result, t.migrations]),
        [["nothing-to-roll-back", []]],
      );
    });
  });

  describe("--dry-run changes nothing", { concurrency: 1 }, () => {
    let fleet: Fleet;
    let a: string;
    let b: string;
    let fresh: string;
    const N1 = "20250101000000_create_allergen_note.js";
    useFleet(async (f) => {
      fleet = f;
      [a, b, fresh] = fleet.dbs("dry_a", "dry_b", "dry_new");
      await fleet.addMigrated([a, b]);
      await fleet.addTenants([fresh]);
      fleet.writeMigration(N1, tableMigration("allergen_note"));
    });

    async function snapshot() {
      return {
        databases: await fleet.databases(),
        a: await migrationBatches(a),
        b: await migrationBatches(b),
        locks: [
          await query(a, "select * from knex_migrations_lock"),
          await query(b, "select * from knex_migrations_lock"),
        ],
        history: await historyCount(fleet.catalog),
        catalog: await appliedMigrations(fleet.catalog),
      };
    }

    it("migrate, all, provision and rollback say what would run, in the usual shape", async () => {
      const before = await snapshot();
      assert.ok(before.history > 0, "the real run wrote history");

      const migrate = await fleet.run(["migrate", a, b, "--dry-run", "--json"]);
      assert.equal(migrate.code, 0, migrate.stderr);
      const mj = parseJson<FleetJson>(migrate.stdout);
      assert.equal(mj.dryRun, true);
      assert.deepEqual(
        mj.tenants.map((t) => [t.database, t.result, t.migrations]),
        [
          [a, "migrated", [N1]],
          [b, "migrated", [N1]],
        ],
      );
      assertSummaryMatches(mj);

      const all = await fleet.run(["all", "--dry-run", "--json"]);
      assert.equal(all.code, 0, all.stderr);
      const aj = parseJson<FleetJson>(all.stdout);
      assert.deepEqual(aj.catalog, { migrations: [] });
      assert.deepEqual(
        aj.tenants.map((t) => [t.database, t.result, t.migrations]),
        [
          [a, "migrated", [N1]],
          [b, "migrated", [N1]],
          [fresh, "provisioned", [...SAMPLE, N1]],
        ],
      );
      assertSummaryMatches(aj);
      const allText = await fleet.run(["all", "--dry-run"]);
      assert.equal(allText.code, 0, allText.stderr);
      assert.match(allText.stdout, new RegExp(`${fresh} \\(id \\d+\\) would be provisioned`));
      assert.match(allText.stdout, new RegExp(`${a} \\(id \\d+\\) would be migrated: ${N1}`));

      const provision = await fleet.run(["provision", fresh, "--dry-run", "--json"]);
      assert.equal(provision.code, 0, provision.stderr);
      assert.deepEqual(
        parseJson<FleetJson>(provision.stdout).tenants.map((t) => [t.database, t.result, t.migrations]),
        [[fresh, "provisioned", [...SAMPLE, N1]]],
      );
      const missing = await fleet.run(["provision", "--missing", "--dry-run", "--json"]);
      assert.equal(missing.code, 0, missing.stderr);
      assert.deepEqual(
        parseJson<FleetJson>(missing.stdout).tenants.map((t) => [t.database, t.result]),
        [[fresh, "provisioned"]],
      );

      const rollback = await fleet.run(["rollback", a, b, "--all", "--dry-run", "--json"]);
      assert.equal(rollback.code, 0, rollback.stderr);
      const rj = parseJson<FleetJson>(rollback.stdout);
      assert.equal(rj.dryRun, true);
      assert.deepEqual(
        rj.tenants.map((t) => [t.database, t.result, t.migrations]),
        [
          [a, "rolled-back", [...SAMPLE].reverse()],
          [b, "rolled-back", [...SAMPLE].reverse()],
        ],
      );
      const rollbackAll = await fleet.run(["rollback", a, "--all", "--dry-run", "--json"]);
      assert.equal(rollbackAll.code, 0, rollbackAll.stderr);
      assert.deepEqual(parseJson<FleetJson>(rollbackAll.stdout).tenants[0]?.migrations, [...SAMPLE].reverse());

      assert.deepEqual(await snapshot(), before, "no database created, no migration applied or undone, no history");
      assert.equal(await databaseExists(fresh), false);
      assert.equal(await tableExists(a, "allergen_note"), false);
    });

    it("all --dry-run on a catalog that is not migrated yet lists the catalog migrations and creates nothing", async () => {
      await withFleet({ migrateCatalog: false }, async (bare) => {
        const result = await bare.run(["all", "--dry-run", "--json"]);
        assert.equal(result.code, 0, `expected exit 0, got ${result.code}: ${result.stderr}`);
        const json = parseJson<FleetJson>(result.stdout);
        assert.deepEqual(json.catalog, { migrations: BUNDLED_CATALOG });
        assert.deepEqual(json.tenants, []);
        assert.equal(await tableExists(bare.catalog, "schools"), false, "the dry run created no schools table");
      });
    });
  });

  describe("--on-error abort", { concurrency: 1 }, () => {
    let fleet: Fleet;
    useFleet((f) => {
      fleet = f;
    });

    it("with --concurrency 1, skips every tenant after the first failure and exits 1", async () => {
      const dbs = fleet.dbs("one", "two", "three", "four");
      await fleet.addTenants(dbs);
      // The second school's database exists already, with a table in the first migration's way.
      await blockFirstMigration(dbs[1]);

      const result = await fleet.run(["all", "--on-error", "abort", "--concurrency", "1", "--json"]);
      assert.equal(result.code, 1, result.stderr);
      const json = parseJson<FleetJson>(result.stdout);
      assert.deepEqual(
        json.tenants.map((t) => [t.database, t.result]),
        [
          [dbs[0], "provisioned"],
          [dbs[1], "failed"],
          [dbs[2], "skipped"],
          [dbs[3], "skipped"],
        ],
      );
      assert.match(json.tenants[1]?.error ?? "", /lunch_week.*already exists/);
      assert.deepEqual(json.tenants[2]?.migrations, []);
      assertSummaryMatches(json);
      assert.equal(json.summary.skipped, 2);
      assert.ok(await databaseExists(dbs[0]));
      assert.equal(await databaseExists(dbs[2]), false, "a skipped tenant is not provisioned");
      assert.equal(await databaseExists(dbs[3]), false);

      // The default (continue) tries every tenant.
      const cont = await fleet.run(["all", "--concurrency", "1", "--json"]);
      assert.equal(cont.code, 1, cont.stderr);
      assert.deepEqual(
        parseJson<FleetJson>(cont.stdout).tenants.map((t) => t.result),
        ["up-to-date", "failed", "provisioned", "provisioned"],
      );
    });
  });

  describe("provision", { concurrency: 1 }, () => {
    let fleet: Fleet;
    let dbs: string[];
    let ids: string[];
    useFleet(
      async (f) => {
        fleet = f;
        dbs = fleet.dbs("p_one", "p_two", "p_three");
        ids = await fleet.addTenants(dbs);
      },
      { each: true },
    );

    it("migrate on a tenant that is not provisioned fails it, saying to provision", async () => {
      const result = await fleet.run(["migrate", dbs[0] as string, "--json"]);
      assert.equal(result.code, 1, result.stderr);
      const json = parseJson<FleetJson>(result.stdout);
      assert.equal(json.tenants[0]?.result, "failed");
      assert.match(json.tenants[0]?.error ?? "", /does not exist.*tenant-migrate provision/);
      assert.equal(await databaseExists(dbs[0] as string), false);
    });

    it("provision <name> creates and migrates that tenant only", async () => {
      const result = await fleet.run(["provision", dbs[0] as string, "--json"]);
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(
        parseJson<FleetJson>(result.stdout).tenants.map((t) => [t.database, t.result, t.migrations]),
        [[dbs[0], "provisioned", SAMPLE]],
      );
      assert.deepEqual(await appliedMigrations(dbs[0] as string), SAMPLE);
      assert.equal(await databaseExists(dbs[1] as string), false);
      assert.equal(await databaseExists(dbs[2] as string), false);

      const again = await fleet.run(["provision", ids[0] as string, "--json"]);
      assert.equal(again.code, 0, again.stderr);
      assert.equal(parseJson<FleetJson>(again.stdout).tenants[0]?.result, "up-to-date");
    });

    it("provision --missing takes only the tenants without a database; with none left it does nothing", async () => {
      const first = await fleet.run(["provision", dbs[0] as string]);
      assert.equal(first.code, 0, first.stderr);
      const result = await fleet.run(["provision", "--missing", "--json"]);
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(
        parseJson<FleetJson>(result.stdout).tenants.map((t) => [t.database, t.result, t.migrations]),
        [
          [dbs[1], "provisioned", SAMPLE],
          [dbs[2], "provisioned", SAMPLE],
        ],
      );
      for (const db of dbs) assert.deepEqual(await appliedMigrations(db), SAMPLE);

      const none = await fleet.run(["provision", "--missing", "--json"]);
      assert.equal(none.code, 0, none.stderr);
      assert.deepEqual(parseJson<FleetJson>(none.stdout).tenants, []);

      const neither = await fleet.run(["provision"]);
      assert.equal(neither.code, 2, neither.stderr);
      assert.match(neither.stderr, /--missing/);
    });
  });

  describe("status states", { concurrency: 1 }, () => {
    let fleet: Fleet;
    const names = ["s_none", "s_pending", "s_current", "s_ghost", "s_locked"];
    let dbs: Record<string, string>;
    const ghost = "20991231000000_from_another_branch.js";
    const servers = JSON.stringify({ down: "postgres://ops:hunter2-secret@127.0.0.1:1" });
    useFleet(async (f) => {
      fleet = f;
      dbs = Object.fromEntries(names.map((n) => [n, fleet.db(n)]));
      await fleet.addSchools(...names.map((n) => ({ name: n, database: dbs[n] as string })));
      const provision = await fleet.run([
        "provision",
        dbs.s_pending,
        dbs.s_current,
        dbs.s_ghost,
        dbs.s_locked,
      ] as string[]);
      assert.equal(provision.code, 0, provision.stderr);
      const back = await fleet.run(["rollback", dbs.s_pending as string, "--to", SAMPLE[1] as string]);
      assert.equal(back.code, 0, back.stderr);
      await query(
        dbs.s_ghost as string,
        "insert into knex_migrations (name, batch, migration_time) values ($1, 2, now())",
        [ghost],
      );
      await leaveStaleLock(dbs.s_locked as string);
      await fleet.addSchools(
        { name: "Elsewhere", database: fleet.db("s_elsewhere"), server: "nowhere" },
        { name: "Down", database: fleet.db("s_down"), server: "down" },
      );
    });

    it("reports every state in --json without crashing", async () => {
      const result = await fleet.run(["status", "--json"], { env: { TENANT_SERVERS: servers } });
      assert.equal(result.code, 0, result.stderr);
      assert.doesNotMatch(result.stdout + result.stderr, /hunter2-secret/);
      const json = parseJson<StatusJson>(result.stdout);
      assert.equal(json.latest, SAMPLE[2]);
      const state = byDatabase(json.tenants);
      assert.equal(json.tenants.length, 7);

      const none = state.get(dbs.s_none as string);
      assert.equal(none?.state, "not-provisioned");
      assert.deepEqual(none?.applied, []);

      const pending = state.get(dbs.s_pending as string);
      assert.equal(pending?.state, "pending");
      assert.deepEqual(pending?.applied, SAMPLE.slice(0, 2));
      assert.deepEqual(pending?.pending, [SAMPLE[2]]);

      assert.equal(state.get(dbs.s_current as string)?.state, "up-to-date");

      const unknown = state.get(dbs.s_ghost as string);
      assert.equal(unknown?.state, "unknown-migrations");
      assert.deepEqual(unknown?.unknown, [ghost]);
      assert.deepEqual(unknown?.applied, [...SAMPLE, ghost]);

      assert.equal(state.get(dbs.s_locked as string)?.state, "locked");

      const elsewhere = state.get(fleet.db("s_elsewhere"));
      assert.equal(elsewhere?.state, "unreachable");
      assert.match(elsewhere?.error ?? "", /nowhere/);
      const down = state.get(fleet.db("s_down"));
      assert.equal(down?.state, "unreachable");
      assert.equal(down?.server, "down");
      assert.match(down?.error ?? "", /ECONNREFUSED|connect/);
    });

    it("prints one line per state and --check exits 1", async () => {
      const result = await fleet.run(["status", "--check", "--verbose"], { env: { TENANT_SERVERS: servers } });
      assert.equal(result.code, 1, result.stderr);
      assert.match(result.stdout, new RegExp(`${dbs.s_none} \\(id \\d+\\) not provisioned`));
      assert.match(result.stdout, new RegExp(`${dbs.s_pending} \\(id \\d+\\) pending .*${SAMPLE[2]}`));
      assert.match(result.stdout, new RegExp(`${dbs.s_current} \\(id \\d+\\) up to date`));
      assert.match(result.stdout, new RegExp(`${dbs.s_ghost} \\(id \\d+\\) unknown migrations: ${ghost}`));
      assert.match(result.stdout, new RegExp(`${dbs.s_locked} \\(id \\d+\\) locked`));
      assert.match(result.stdout, new RegExp(`${fleet.db("s_elsewhere")} \\(id \\d+, server nowhere\\) unreachable`));
      assert.doesNotMatch(result.stdout + result.stderr, /hunter2-secret/);

      const current = await fleet.run(["status", "--check", dbs.s_current as string]);
      assert.equal(current.code, 0, current.stdout + current.stderr);
    });

    it("migrate refuses a tenant with unknown migrations, naming them, and leaves it as it was", async () => {
      const result = await fleet.run(["migrate", dbs.s_ghost as string, "--json"]);
      assert.equal(result.code, 1, result.stderr);
      const json = parseJson<FleetJson>(result.stdout);
      assert.equal(json.tenants[0]?.result, "failed");
      assert.match(json.tenants[0]?.error ?? "", new RegExp(ghost));
      assert.deepEqual(await appliedMigrations(dbs.s_ghost as string), [...SAMPLE, ghost]);
    });

    it("a tenant a live run holds shows locked, and unlock refuses to clear it", async () => {
      const db = dbs.s_current as string;
      await withDb(db, async (client) => {
        await client.query("select pg_advisory_lock(7465767000)");
        const status = await fleet.run(["status", db, "--json"]);
        assert.equal(parseJson<StatusJson>(status.stdout).tenants[0]?.state, "locked");
        const unlock = await fleet.run(["unlock", db]);
        assert.equal(unlock.code, 1, unlock.stdout);
        assert.match(unlock.stdout, /working on .* right now/);
      });
      const after = await fleet.run(["status", db, "--json"]);
      assert.equal(parseJson<StatusJson>(after.stdout).tenants[0]?.state, "up-to-date");
    });
  });

  describe("history, unlock, drop", { concurrency: 1 }, () => {
    let fleet: Fleet;
    let school: string;
    useFleet(
      async (f) => {
        fleet = f;
        school = fleet.db("lincoln_high");
        await fleet.addTenants([school]);
      },
      { each: true },
    );

    it("history shows runs newest first with command, result and migrations", async () => {
      const provision = await fleet.run(["provision", school]);
      assert.equal(provision.code, 0, provision.stderr);
      const rollback = await fleet.run(["rollback", school, "--all"]);
      assert.equal(rollback.code, 0, rollback.stderr);
      const migrate = await fleet.run(["migrate", school]);
      assert.equal(migrate.code, 0, migrate.stderr);
      const status = await fleet.run(["migrate"]);
      assert.equal(status.code, 0, status.stderr);

      const result = await fleet.run(["history", school, "--json"]);
      assert.equal(result.code, 0, result.stderr);
      const entries = parseJson<HistoryJson>(result.stdout).history;
      assert.deepEqual(
        entries.map((e) => [e.command, e.result, e.migrations]),
        [
          ["migrate", "up-to-date", []],
          ["migrate", "migrated", SAMPLE],
          ["rollback", "rolled-back", [...SAMPLE].reverse()],
          ["provision", "provisioned", SAMPLE],
        ],
      );
      for (const e of entries) assert.equal(e.database, school);
      const times = entries.map((e) => Date.parse(e.startedAt));
      assert.deepEqual(
        times,
        [...times].sort((x, y) => y - x),
        "newest first",
      );

      const text = await fleet.run(["history", school]);
      assert.equal(text.code, 0, text.stderr);
      const lines = text.stdout.trim().split("\n");
      assert.equal(lines.length, 4);
      assert.match(lines[0] as string, new RegExp(`${school} \\(id \\d+\\)\\s+migrate\\s+up-to-date`));
      assert.match(lines[3] as string, new RegExp(`provision\\s+provisioned ${SAMPLE[0]}`));
    });

    it("unlock clears a stale knex lock flag", async () => {
      const provision = await fleet.run(["provision", school]);
      assert.equal(provision.code, 0, provision.stderr);
      await leaveStaleLock(school);
      const locked = await fleet.run(["status", school, "--json"]);
      assert.equal(parseJson<StatusJson>(locked.stdout).tenants[0]?.state, "locked");
      const result = await fleet.run(["unlock", school]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, new RegExp(`${school} \\(id \\d+\\) unlocked`));
      assert.deepEqual(await lockFlag(school), [0]);
      const status = await fleet.run(["status", school, "--json"]);
      assert.equal(parseJson<StatusJson>(status.stdout).tenants[0]?.state, "up-to-date");
      const again = await fleet.run(["unlock", school]);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /not locked/);
    });

    it("drop refuses without --yes, and with --yes the database is gone and status says not-provisioned", async () => {
      const provision = await fleet.run(["provision", school]);
      assert.equal(provision.code, 0, provision.stderr);
      const refused = await fleet.run(["drop", school]);
      assert.equal(refused.code, 2, refused.stderr);
      assert.match(refused.stderr, /--yes/);
      assert.ok(await databaseExists(school));

      const dropped = await fleet.run(["drop", school, "--yes"]);
      assert.equal(dropped.code, 0, dropped.stderr);
      assert.match(dropped.stdout, /dropped/);
      assert.equal(await databaseExists(school), false);
      const status = await fleet.run(["status", school, "--json"]);
      assert.equal(status.code, 0, status.stderr);
      assert.equal(parseJson<StatusJson>(status.stdout).tenants[0]?.state, "not-provisioned");
      assert.equal((await query(fleet.catalog, "select 1 from schools")).length, 1, "the catalog row stays");
    });
  });

  describe("an unknown tenant name", { concurrency: 1 }, () => {
    let fleet: Fleet;
    let a: string;
    let b: string;
    let aId: string;
    useFleet(async (f) => {
      fleet = f;
      [a, b] = fleet.dbs("known_a", "known_b");
      [aId] = (await fleet.addTenants([a, b])) as [string, string];
      const result = await fleet.run(["provision", a]);
      assert.equal(result.code, 0, result.stderr);
      fleet.writeMigration("20250101000000_create_allergen_note.js", tableMigration("allergen_note"));
    });

    it("exits 2, names it, and changes nothing, whatever the command", async () => {
      const ghost = `${fleet.prefix}_no_such_school`;
      const before = { applied: await migrationBatches(a), history: await historyCount(fleet.catalog) };
      const runs = [
        ["migrate", a, ghost, "--json"],
        ["migrate", aId, "999999"],
        ["rollback", a, ghost],
        ["provision", b, ghost],
        ["drop", a, ghost, "--yes"],
        ["unlock", a, ghost],
        ["status", ghost],
      ];
      for (const args of runs) {
        const result = await fleet.run(args);
        const unknown = args.includes(ghost) ? ghost : "999999";
        assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
        assert.match(result.stderr, new RegExp(`unknown tenant.*${unknown}`), args.join(" "));
      }
      // Several unknown names are reported at once.
      const two = await fleet.run(["migrate", "ghost_one", "ghost_two"]);
      assert.equal(two.code, 2, two.stderr);
      assert.match(two.stderr, /unknown tenants: ghost_one, ghost_two/);
      assert.deepEqual(await migrationBatches(a), before.applied);
      assert.equal(await tableExists(a, "allergen_note"), false);
      assert.equal(await databaseExists(b), false);
      assert.ok(await databaseExists(a));
      assert.equal(await historyCount(fleet.catalog), before.history);
    });
  });
});
