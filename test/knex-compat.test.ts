import assert from "node:assert/strict";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import {
  ANSI,
  appliedMigrations,
  type CliResult,
  type Fleet,
  type FleetJson,
  parseJson,
  query,
  ROOT,
  runCli,
  SAMPLE,
  type StatusJson,
  tableExists,
  tableMigration,
  urlFor,
  useFleet,
  withPlainKnex,
} from "./helpers.ts";

const KNEX_CLI = path.join(ROOT, "node_modules", "knex", "bin", "cli.js");

/** knex's own CLI, as a developer runs it against one tenant. */
function runKnexCli(args: string[], cwd: string): Promise<CliResult> {
  // The knexfile lives outside the project: tell knex's CLI where knex is installed.
  return runCli(args, {
    cwd,
    bin: KNEX_CLI,
    env: { KNEX_PATH: path.join(ROOT, "node_modules", "knex"), NO_COLOR: "1" },
  });
}

/** Parses `knex migrate:list`: the completed names and the pending files. */
function parseKnexList(text: string): { completed: string[]; pending: string[] } {
  const completed: string[] = [];
  const pending: string[] = [];
  let section: string[] | undefined;
  for (const raw of text.replace(new RegExp(ANSI.source, "g"), "").split("\n")) {
    const line = raw.trim();
    if (/^Found \d+ Completed Migration/.test(line)) section = completed;
    else if (/^Found \d+ Pending Migration/.test(line)) section = pending;
    else if (/^No (Completed|Pending) Migration/.test(line)) section = undefined;
    else if (section && /^\d{14}_/.test(line)) section.push(line);
  }
  return { completed, pending };
}

// Each describe below has a fleet of its own: they run side by side.
describe("knex compatibility", { concurrency: 3 }, () => {
  describe("knex's own CLI agrees with tenant-migrate status", { concurrency: 1 }, () => {
    let fleet: Fleet;
    let school: string;
    useFleet(async (f) => {
      fleet = f;
      school = fleet.db("knex_cli");
      await fleet.addMigrated([school, fleet.db("other")]);
    });

    it("knex migrate:list with a knexfile.cjs lists the same completed and pending migrations", async () => {
      const applied = "20250101000000_create_allergen_note.js";
      fleet.writeMigration(applied, tableMigration("allergen_note"));
      const migrate = await fleet.run(["migrate", school]);
      assert.equal(migrate.code, 0, migrate.stderr);
      // Two new files the tenant has not run yet, one of them CommonJS.
      fleet.writeMigration("20250102000000_create_recipe.js", tableMigration("recipe"));
      fleet.writeMigration(
        "20250103000000_create_supplier.cjs",
        `exports.up = (knex) => knex.schema.createTable("supplier", (t) => { t.increments("id"); });
exports.down = (knex) => knex.schema.dropTable("supplier");
`,
      );

      // The project is ESM ("type": "module"), so a CommonJS knexfile says so with .cjs.
      const dir = path.join(fleet.cwd, "knex-cli");
      mkdirSync(dir);
      const knexfile = path.join(dir, "knexfile.cjs");
      writeFileSync(
        knexfile,
        `module.exports = {
  client: "pg",
  connection: ${JSON.stringify(urlFor(school))},
  migrations: { directory: ${JSON.stringify(fleet.appMigrations)} },
};
`,
      );
      const list = await runKnexCli(["migrate:list", "--knexfile", knexfile], dir);
      assert.equal(list.code, 0, list.stdout + list.stderr);
      const fromKnex = parseKnexList(list.stdout + list.stderr);

      const status = await fleet.run(["status", school, "--json"]);
      assert.equal(status.code, 0, status.stderr);
      const tenant = parseJson<StatusJson>(status.stdout).tenants[0];
      assert.equal(tenant?.state, "pending");
      assert.deepEqual(fromKnex.completed, tenant?.applied);
      assert.deepEqual(fromKnex.pending, tenant?.pending);
      assert.deepEqual(fromKnex.completed, [...SAMPLE, applied]);
      assert.deepEqual(fromKnex.pending, ["20250102000000_create_recipe.js", "20250103000000_create_supplier.cjs"]);

      // ... and after tenant-migrate runs them, knex finds nothing pending.
      const again = await fleet.run(["migrate", school]);
      assert.equal(again.code, 0, again.stderr);
      const after = parseKnexList((await runKnexCli(["migrate:list", "--knexfile", knexfile], dir)).stdout);
      assert.deepEqual(after.completed, await appliedMigrations(school));
      assert.deepEqual(after.pending, []);
    });
  });

  describe("a database migrated by a plain knex script", { concurrency: 1 }, () => {
    let fleet: Fleet;
    useFleet((f) => {
      fleet = f;
    });

    it("is up-to-date in status, all leaves it so, and knex keeps working on what tenant-migrate adds", async () => {
      const legacy = fleet.db("legacy");
      await query("postgres", `create database ${legacy}`);
      // What the original migrate.js did for each school.
      await withPlainKnex(legacy, (db) => db.migrate.latest({ directory: fleet.appMigrations }));
      const knexRowsOf = () => query(legacy, "select id, name, batch, migration_time from knex_migrations order by id");
      const knexRows = await knexRowsOf();
      assert.equal(knexRows.length, 3);
      const [id] = await fleet.addSchools({ name: "Legacy", database: legacy });

      const status = await fleet.run(["status", "--json"]);
      assert.equal(status.code, 0, status.stderr);
      const tenant = parseJson<StatusJson>(status.stdout).tenants[0];
      assert.deepEqual([tenant?.id, tenant?.state, tenant?.applied, tenant?.pending], [id, "up-to-date", SAMPLE, []]);

      const all = await fleet.run(["all", "--json"]);
      assert.equal(all.code, 0, all.stderr);
      assert.deepEqual(
        parseJson<FleetJson>(all.stdout).tenants.map((t) => [t.database, t.result, t.migrations]),
        [[legacy, "up-to-date", []]],
      );
      assert.deepEqual(await knexRowsOf(), knexRows, "knex's rows are untouched");

      // tenant-migrate's batch goes into knex's own table, which knex reads and rolls back.
      const N1 = "20250101000000_create_allergen_note.js";
      fleet.writeMigration(N1, tableMigration("allergen_note"));
      const next = await fleet.run(["all", "--json"]);
      assert.equal(next.code, 0, next.stderr);
      assert.deepEqual(parseJson<FleetJson>(next.stdout).tenants[0]?.migrations, [N1]);
      await withPlainKnex(legacy, async (again) => {
        const [completed, pending] = await again.migrate.list({ directory: fleet.appMigrations });
        assert.deepEqual(
          (completed as { name: string }[]).map((m) => m.name),
          [...SAMPLE, N1],
        );
        assert.deepEqual(pending, []);
        const [, log] = await again.migrate.rollback({ directory: fleet.appMigrations });
        assert.deepEqual(log, [N1]);
      });
      assert.equal(await tableExists(legacy, "allergen_note"), false);
      const after = await fleet.run(["status", legacy, "--json"]);
      const state = parseJson<StatusJson>(after.stdout).tenants[0];
      assert.deepEqual([state?.state, state?.pending], ["pending", [N1]]);
    });
  });

  describe("migration file types", { concurrency: 1 }, () => {
    let fleet: Fleet;
    let school: string;
    useFleet(async (f) => {
      fleet = f;
      school = fleet.db("types");
      await fleet.addSchools({ name: "Types", database: school });
      const result = await fleet.run(["provision", school]);
      assert.equal(result.code, 0, result.stderr);
    });

    it("runs .ts (with types, no compile step), .cjs and .mjs migrations, up and down", async () => {
      const ts = "20250101000000_create_from_ts.ts";
      const cjs = "20250101000001_create_from_cjs.cjs";
      const mjs = "20250101000002_create_from_mjs.mjs";
      fleet.writeMigration(
        ts,
        `import type { Knex } from "knex";

interface Column {
  name: string;
  nullable: boolean;
}

const columns: Column[] = [{ name: "label", nullable: false }];

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable("from_ts", (t: Knex.CreateTableBuilder) => {
    t.increments("id");
    for (const column of columns) {
      const c = t.text(column.name);
      if (!column.nullable) c.notNullable();
    }
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable("from_ts");
}
`,
      );
      fleet.writeMigration(
        cjs,
        `exports.up = async function (knex) {
  await knex.schema.createTable("from_cjs", (t) => { t.increments("id"); });
};
exports.down = async function (knex) {
  await knex.schema.dropTable("from_cjs");
};
`,
      );
      fleet.writeMigration(
        mjs,
        `export async function up(knex) {
  await knex.schema.createTable("from_mjs", (t) => { t.increments("id"); });
}
export async function down(knex) {
  await knex.schema.dropTable("from_mjs");
}
`,
      );
      const filesBefore = readdirSync(fleet.appMigrations).sort();

      const result = await fleet.run(["migrate", "--json"]);
      assert.equal(result.code, 0, result.stderr);
      const json = parseJson<FleetJson>(result.stdout);
      assert.deepEqual(
        json.tenants.map((t) => [t.result, t.migrations, t.error]),
        [["migrated", [ts, cjs, mjs], undefined]],
      );
      assert.deepEqual(await appliedMigrations(school), [...SAMPLE, ts, cjs, mjs]);
      for (const table of ["from_ts", "from_cjs", "from_mjs"]) assert.ok(await tableExists(school, table), table);
      const label = await query(
        school,
        "select is_nullable from information_schema.columns where table_name = 'from_ts' and column_name = 'label'",
      );
      assert.deepEqual(label, [{ is_nullable: "NO" }]);
      assert.deepEqual(readdirSync(fleet.appMigrations).sort(), filesBefore, "nothing was compiled next to them");

      const rollback = await fleet.run(["rollback", school, "--json"]);
      assert.equal(rollback.code, 0, rollback.stderr);
      assert.deepEqual(parseJson<FleetJson>(rollback.stdout).tenants[0]?.migrations, [mjs, cjs, ts]);
      for (const table of ["from_ts", "from_cjs", "from_mjs"]) assert.equal(await tableExists(school, table), false);
      assert.deepEqual(await appliedMigrations(school), SAMPLE);
    });
  });
});
