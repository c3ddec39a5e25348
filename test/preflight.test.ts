// Everything that can be checked before a change is checked before the first
// change (exit 2, nothing changed), and destructive fleet commands ask for
// intent. Issue 9, items 8, 10, 11, 12, 13 and 19.
import assert from "node:assert/strict";
import { cpSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  appliedMigrations,
  databaseExists,
  type Fleet,
  type FleetJson,
  historyCount,
  migrationBatches,
  parseJson,
  query,
  ROOT,
  SAMPLE,
  type SecondServer,
  startSecondServer,
  tableExists,
  tableMigration,
  useFleet,
} from "./helpers.ts";

/** Every school database's knex rows, and the history row count: what "nothing changed" compares. */
async function snapshot(fleet: Fleet, databases: string[]) {
  return {
    batches: await Promise.all(databases.map(async (db) => ((await databaseExists(db)) ? migrationBatches(db) : null))),
    history: await historyCount(fleet.catalog),
    databases: await fleet.databases(),
  };
}

describe("rollback asks for intent", { concurrency: 1 }, () => {
  let fleet: Fleet;
  let one: string; // everything in batch 1 (provisioned in one go)
  let two: string; // batch 1 and batch 2
  const N1 = "20250101000000_create_allergen_note.js";
  useFleet(
    async (f) => {
      fleet = f;
      [one, two] = fleet.dbs("one_batch", "two_batches");
      await fleet.addMigrated([two]);
      fleet.writeMigration(N1, tableMigration("allergen_note"));
      await fleet.addMigrated([one]);
      // two: SAMPLE in batch 1, N1 in batch 2; one: SAMPLE and N1 in batch 1.
      assert.deepEqual(
        (await migrationBatches(two)).map((m) => m.batch),
        [1, 1, 1, 2],
      );
      assert.deepEqual(
        (await migrationBatches(one)).map((m) => m.batch),
        [1, 1, 1, 1],
      );
    },
    { each: true },
  ); // a fleet per test: each test stands alone (and fails alone on old code)

  it("rollback --all-tenants without --yes exits 2 and changes nothing; --dry-run needs no --yes", async () => {
    const before = await snapshot(fleet, [one, two]);
    for (const args of [
      ["rollback", "--all-tenants"],
      ["rollback", "--all-tenants", "--all"],
      ["rollback", "--all-tenants", "--to", SAMPLE[0] as string],
    ]) {
      const result = await fleet.run(args);
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, /without --yes/);
      assert.equal(result.stdout, "");
    }
    const json = await fleet.run(["rollback", "--all-tenants", "--all", "--json"]);
    assert.equal(json.code, 2, json.stderr);
    assert.equal(parseJson<{ ok: boolean; error: string }>(json.stdout).ok, false);
    assert.deepEqual(await snapshot(fleet, [one, two]), before, "nothing rolled back, no history");

    const dry = await fleet.run(["rollback", "--all-tenants", "--all", "--dry-run", "--json"]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.deepEqual(
      parseJson<FleetJson>(dry.stdout).tenants.map((t) => [t.database, t.result, t.migrations.length]),
      [
        [two, "rolled-back", 4],
        [one, "rolled-back", 4],
      ],
    );
    assert.deepEqual(await snapshot(fleet, [one, two]), before, "a dry run changes nothing");
  });

  it("a last-batch rollback that would empty a school exits 2 naming it, and rolls back no school at all", async () => {
    const before = await snapshot(fleet, [one, two]);
    for (const args of [
      ["rollback", "--all-tenants", "--yes"],
      ["rollback", one, two],
      ["rollback", one],
      ["rollback", one, "--dry-run"],
      ["rollback", two, "--step", "2"],
      ["rollback", "--all-tenants", "--yes", "--step", "5"],
    ]) {
      const result = await fleet.run(args);
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, /would undo every migration of/, args.join(" "));
      assert.match(result.stderr, /--all/, args.join(" "));
      const emptied = args.includes("--step") ? (args.includes("5") ? [two, one] : [two]) : [one];
      for (const db of emptied) assert.ok(result.stderr.includes(db), `${args.join(" ")} names ${db}`);
      if (!args.includes("--step")) assert.ok(!result.stderr.includes(two), `${args.join(" ")} names only ${one}`);
    }
    assert.deepEqual(await snapshot(fleet, [one, two]), before, "no school rolled back (not even two), no history");
    assert.ok(await tableExists(two, "allergen_note"));
  });

  it("the same rollback of a school it does not empty goes on; --all and --to empty or keep as asked", async () => {
    const last = await fleet.run(["rollback", two, "--json"]);
    assert.equal(last.code, 0, last.stderr);
    assert.deepEqual(parseJson<FleetJson>(last.stdout).tenants[0]?.migrations, [N1]);
    assert.deepEqual(await appliedMigrations(two), SAMPLE);

    const to = await fleet.run(["rollback", "--all-tenants", "--yes", "--to", SAMPLE[0] as string, "--json"]);
    assert.equal(to.code, 0, to.stderr);
    for (const db of [one, two]) assert.deepEqual(await appliedMigrations(db), [SAMPLE[0]]);

    const all = await fleet.run(["rollback", "--all-tenants", "--yes", "--all", "--json"]);
    assert.equal(all.code, 0, all.stderr);
    assert.deepEqual(
      parseJson<FleetJson>(all.stdout).tenants.map((t) => [t.database, t.result, t.migrations]),
      [
        [two, "rolled-back", [SAMPLE[0]]],
        [one, "rolled-back", [SAMPLE[0]]],
      ],
    );
    for (const db of [one, two]) assert.deepEqual(await appliedMigrations(db), []);
  });
});

describe("checked before the first change", { concurrency: 1 }, () => {
  let fleet: Fleet;
  let fresh: string[];
  let existing: string;
  const extraCatalog = "20240101000009_catalog_extra.js";
  useFleet(
    async (f) => {
      fleet = f;
      existing = fleet.db("existing");
      await fleet.addMigrated([existing]);
      fresh = fleet.dbs("new_a", "new_b");
      await fleet.addTenants(fresh);
      // A catalog migration still pending: `all` must not apply it when a check fails.
      const catalogDir = path.join(fleet.cwd, "catalog_migrations");
      mkdirSync(catalogDir);
      cpSync(path.join(ROOT, "catalog_migrations"), catalogDir, { recursive: true });
      writeFileSync(
        path.join(catalogDir, extraCatalog),
        "export const up = (k) => k.schema.createTable('catalog_extra', (t) => t.increments());\nexport const down = (k) => k.schema.dropTable('catalog_extra');\n",
      );
    },
    { each: true },
  ); // a fleet per test: each test stands alone (and fails alone on old code)

  /** Runs `all` (and `migrate`, `provision`) and checks that each exits 2 with `message` and changed nothing. */
  async function refusedBeforeAnyChange(args: string[], message: RegExp, env: Record<string, string> = {}) {
    const before = await snapshot(fleet, [existing, ...fresh]);
    for (const command of [["all"], ["migrate"], ["provision", "--missing"], ["all", "--dry-run"]]) {
      const result = await fleet.run([...command, ...args], { env });
      assert.equal(result.code, 2, `${command.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, message, command.join(" "));
    }
    assert.deepEqual(await snapshot(fleet, [existing, ...fresh]), before, "no database, no knex row, no history");
    for (const db of fresh) assert.equal(await databaseExists(db), false, `${db} was not created`);
    assert.equal(await tableExists(fleet.catalog, "catalog_extra"), false, "the catalog was not migrated");
  }

  it("a migration file with a syntax error: exit 2 naming the file", async () => {
    const broken = fleet.writeMigration("20250101000000_broken.js", "export async function up(knex) {\n  await (\n}\n");
    try {
      await refusedBeforeAnyChange([], /20250101000000_broken\.js/);
    } finally {
      rmSync(broken);
    }
  });

  it("a migration file without a down: exit 2 naming the file", async () => {
    const noDown = fleet.writeMigration("20250101000000_no_down.js", "export async function up() {}\n");
    try {
      await refusedBeforeAnyChange([], /20250101000000_no_down\.js: it must export both up and down/);
    } finally {
      rmSync(noDown);
    }
  });

  it("two files with the same name stem (.js and .ts): exit 2 naming both", async () => {
    const js = fleet.writeMigration("20250101000000_dup.js", tableMigration("dup_js"));
    const ts = fleet.writeMigration("20250101000000_dup.ts", tableMigration("dup_ts"));
    try {
      await refusedBeforeAnyChange([], /20250101000000_dup\.js and 20250101000000_dup\.ts share a name stem/);
    } finally {
      rmSync(js);
      rmSync(ts);
    }
  });

  it("an app migrations folder that does not exist: exit 2 before the catalog is migrated", async () => {
    await refusedBeforeAnyChange(["--app-migrations", "./missing"], /--app-migrations.*missing.*does not exist/);
  });

  it("an --app-role that does not exist: exit 2 before any database is created", async () => {
    const ghost = `${fleet.prefix}_ghost_role`;
    const before = await snapshot(fleet, [existing, ...fresh]);
    for (const args of [
      ["all", "--app-role", ghost],
      ["provision", "--missing", "--app-role", ghost],
      ["provision", fresh[0] as string],
    ]) {
      const env: Record<string, string> = args.includes("--app-role") ? {} : { TENANT_MIGRATE_APP_ROLE: ghost };
      const result = await fleet.run(args, { env });
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, new RegExp(`role "${ghost}" does not exist on server catalog`));
    }
    assert.deepEqual(await snapshot(fleet, [existing, ...fresh]), before);
    assert.equal(await tableExists(fleet.catalog, "catalog_extra"), false, "the catalog was not migrated");
  });

  it("when everything checks out, the same run migrates the catalog and creates the schools", async () => {
    const result = await fleet.run(["all", "--json"]);
    assert.equal(result.code, 0, result.stderr);
    const json = parseJson<FleetJson>(result.stdout);
    assert.deepEqual(json.catalog?.migrations, [extraCatalog]);
    assert.ok(await tableExists(fleet.catalog, "catalog_extra"));
    for (const db of fresh) assert.deepEqual(await appliedMigrations(db), SAMPLE);
  });
});

describe("--app-role is checked on every server the run touches", () => {
  let fleet: Fleet;
  let second: SecondServer;
  let role: string;
  useFleet((f) => {
    fleet = f;
    role = `${fleet.prefix}_app`;
  });
  before(async () => {
    second = await startSecondServer("second-server-pw");
  });
  after(async () => {
    await second?.stop();
    await query("postgres", `drop role if exists "${role}"`);
  });

  it("a role that exists on the catalog's server but not on a tenant server: exit 2 naming that server", async () => {
    await query("postgres", `create role "${role}"`);
    const [here, there] = fleet.dbs("here", "there");
    await fleet.addSchools({ name: "Here", database: here }, { name: "There", database: there, server: "second" });
    const env = { TENANT_SERVERS: JSON.stringify({ second: second.url }) };
    const result = await fleet.run(["all", "--app-role", role], { env });
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, new RegExp(`role "${role}" does not exist on server second \\(postgres://`));
    assert.doesNotMatch(result.stderr, /server catalog/);
    assert.doesNotMatch(result.stderr, /second-server-pw/);
    assert.equal(await databaseExists(here), false);
    assert.equal((await second.query("select 1 from pg_database where datname = $1", [there])).length, 0);
    assert.equal(await historyCount(fleet.catalog), 0);

    await second.query(`create role "${role}"`);
    const ok = await fleet.run(["all", "--app-role", role], { env });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal((await second.query("select 1 from pg_database where datname = $1", [there])).length, 1);
    // The provisioned databases grant the role; dropped here so that the role can go.
    await query("postgres", `drop database "${here}"`);
  });
});

describe("a school whose database vanished", () => {
  let fleet: Fleet;
  useFleet((f) => {
    fleet = f;
  });

  it("is created again by `all`, loudly: a notice and `recreated` with when runs had seen it", async () => {
    const [kept, vanished] = fleet.dbs("kept", "vanished");
    await fleet.addMigrated([kept, vanished]);
    const seen = await query<{ at: Date }>(
      fleet.catalog,
      "select max(finished_at) as at from tenant_migrate_history where school_database = $1",
      [vanished],
    );
    await query("postgres", `drop database "${vanished}"`);
    const newcomer = fleet.db("newcomer");
    await fleet.addTenants([newcomer]);

    const dry = await fleet.run(["all", "--dry-run", "--json"]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(
      dry.stderr,
      new RegExp(`${vanished} \\(id \\d+\\): this database was provisioned before .* it would be created empty again`),
    );
    assert.equal(await databaseExists(vanished), false);

    const result = await fleet.run(["all", "--json"]);
    assert.equal(result.code, 0, result.stderr);
    const json = parseJson<FleetJson>(result.stdout);
    const byDb = new Map(json.tenants.map((t) => [t.database, t]));
    assert.equal(byDb.get(vanished)?.result, "provisioned");
    const seenAt = new Date(seen[0]?.at as Date).toISOString();
    assert.deepEqual(byDb.get(vanished)?.recreated, { firstSeen: seenAt, lastSeen: seenAt });
    assert.equal(byDb.get(newcomer)?.result, "provisioned");
    assert.equal(byDb.get(newcomer)?.recreated, undefined, "a new school is not a recreated one");
    assert.equal(byDb.get(kept)?.recreated, undefined);
    assert.match(
      result.stderr,
      new RegExp(
        `notice: ${vanished} \\(id \\d+\\): this database was provisioned before \\(runs saw it from .*\\) and is gone: created it empty again`,
      ),
    );
    assert.doesNotMatch(result.stderr, new RegExp(`notice: ${newcomer}`));
    assert.deepEqual(await appliedMigrations(vanished), SAMPLE);

    // Plain text says it too (stderr), and a school recreated once is not recreated again.
    const again = await fleet.run(["all"]);
    assert.equal(again.code, 0, again.stderr);
    assert.doesNotMatch(again.stderr, /provisioned before/);
  });
});
