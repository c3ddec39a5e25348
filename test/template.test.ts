// Template copies (--template): keyed by the migration files' contents, safe
// after a crash, and listed and pruned by `templates`.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  type Fleet,
  type FleetJson,
  parseJson,
  query,
  type SecondServer,
  startSecondServer,
  tableMigration,
  useFleet,
} from "./helpers.ts";

/** A migration creating `table` with one text column `column`. */
function columnMigration(table: string, column: string): string {
  return `export async function up(knex) {
  await knex.schema.createTable("${table}", (t) => {
    t.increments("id");
    t.text("${column}");
  });
}

export async function down(knex) {
  await knex.schema.dropTable("${table}");
}
`;
}

/** The columns of `table` in `database`, in order. */
async function columns(database: string, table: string): Promise<string[]> {
  const rows = await query<{ column_name: string }>(
    database,
    "select column_name from information_schema.columns where table_name = $1 order by ordinal_position",
    [table],
  );
  return rows.map((r) => r.column_name);
}

describe("an applied migration file edited in place", () => {
  let fleet: Fleet;
  useFleet((f) => {
    fleet = f;
  });

  it("gives a school provisioned afterwards the edited schema, with --template and by default", async () => {
    const name = "20240301000000_notes.js";
    fleet.writeMigration(name, columnMigration("notes", "old_text"));
    const [first, copied, plain] = fleet.dbs("ed_first", "ed_copied", "ed_plain");
    await fleet.addMigrated([first], ["--template"]);
    assert.deepEqual(await columns(first, "notes"), ["id", "old_text"]);

    // Edited in place (a hotfix): the file name, and so knex_migrations, is the same.
    fleet.writeMigration(name, columnMigration("notes", "new_text"));
    await fleet.addTenants([copied]);
    const result = await fleet.run(["all", "--template", "--json"]);
    assert.equal(result.code, 0, result.stderr);
    const tenants = parseJson<FleetJson>(result.stdout).tenants;
    assert.equal(tenants.find((t) => t.database === copied)?.result, "provisioned");
    assert.equal(tenants.find((t) => t.database === first)?.result, "up-to-date", "knex sees the same names");
    assert.deepEqual(await columns(copied, "notes"), ["id", "new_text"], "a copy of a template of the edited files");

    await fleet.addTenants([plain]);
    const byDefault = await fleet.run(["all"]);
    assert.equal(byDefault.code, 0, byDefault.stderr);
    assert.deepEqual(await columns(plain, "notes"), ["id", "new_text"]);
  });
});

describe("a copy's sequences after a server crash", () => {
  let fleet: Fleet;
  let second: SecondServer;
  useFleet((f) => {
    fleet = f;
  });
  before(async () => {
    second = await startSecondServer("template-crash-pw");
  });
  after(async () => {
    await second?.stop();
  });

  it("never hand out an id again: the next migration and the next insert succeed", async () => {
    // Two rows inserted by a migration: the template's sequence has been used, as in a seeded table.
    fleet.writeMigration(
      "20240301000000_pupils.js",
      `export async function up(knex) {
  await knex.schema.createTable("pupil", (t) => {
    t.increments("id");
    t.text("name");
  });
  await knex("pupil").insert([{ name: "a" }, { name: "b" }]);
}

export async function down(knex) {
  await knex.schema.dropTable("pupil");
}
`,
    );
    const school = fleet.db("crash");
    await fleet.addSchools({ name: "Crash", database: school, server: "second" });
    const env = { TENANT_SERVERS: JSON.stringify({ second: second.url }) };
    const provisioned = await fleet.run(["all", "--template", "--json"], { env });
    assert.equal(provisioned.code, 0, provisioned.stderr);
    assert.equal(parseJson<FleetJson>(provisioned.stdout).tenants[0]?.result, "provisioned");
    const copies = await second.query(
      "select 1 from pg_database where starts_with(datname, 'tenant_migrate_template_') and not datallowconn",
    );
    assert.equal(copies.length, 1, "the school is a copy of the second server's template");

    // The copy is used: rows inserted, one more migration applied; then the server crashes.
    const inserted = await second.query("insert into pupil (name) values ('c'), ('d') returning id", [], school);
    fleet.writeMigration("20240401000000_after_copy.js", tableMigration("after_copy"));
    const migrated = await fleet.run(["migrate", "--json"], { env });
    assert.equal(migrated.code, 0, migrated.stderr);
    await second.restart({ immediate: true });

    // Without the sequences reset in the template, this fails: duplicate key ... knex_migrations_pkey.
    fleet.writeMigration("20240501000000_after_crash.js", tableMigration("after_crash"));
    const after = await fleet.run(["migrate", "--json"], { env });
    assert.equal(after.code, 0, `${after.stdout}\n${after.stderr}`);
    const next = await second.query("insert into pupil (name) values ('e') returning id", [], school);
    const before = inserted.map((r) => Number(r.id));
    assert.ok(Number(next[0]?.id) > Math.max(...before), `id ${next[0]?.id} after ${before.join(", ")}`);
    const applied = await second.query("select name from knex_migrations order by id", [], school);
    assert.deepEqual(applied.map((r) => r.name).slice(-2), [
      "20240401000000_after_copy.js",
      "20240501000000_after_crash.js",
    ]);
  });
});
