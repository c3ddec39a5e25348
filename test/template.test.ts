// Template copies (--template): built once per migration set, copied for new
// schools, keyed by the migration files' contents, safe after a crash, and
// listed and pruned by `templates`.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { PROVISION_LOCK_CLASS } from "../src/core/lock-keys.ts";
import {
  appliedMigrations,
  type CliResult,
  databaseExists,
  type Fleet,
  type FleetJson,
  parseJson,
  query,
  SAMPLE,
  type SecondServer,
  startSecondServer,
  tableExists,
  tableMigration,
  urlFor,
  useFleet,
  waitFor,
  withClient,
  withFleet,
} from "./helpers.ts";

/** The columns of `table` in `database`, in order. */
async function columns(database: string, table: string): Promise<string[]> {
  const rows = await query<{ column_name: string }>(
    database,
    "select column_name from information_schema.columns where table_name = $1 order by ordinal_position",
    [table],
  );
  return rows.map((r) => r.column_name);
}

describe("provisioning from a template database", () => {
  let fleet: Fleet;
  useFleet(
    (f) => {
      fleet = f;
    },
    { each: true },
  );

  const times = (database: string) =>
    query<{ name: string; t: string }>(
      database,
      "select name, migration_time::text as t from knex_migrations order by id",
    );

  it("copies new schools from a closed template that has every migration, built once per migration set", async () => {
    const [a, b] = fleet.dbs("tpl_a", "tpl_b");
    await fleet.addTenants([a, b]);
    const result = await fleet.run(["all", "--template", "--json"]);
    assert.equal(result.code, 0, result.stderr);
    for (const tenant of parseJson<FleetJson>(result.stdout).tenants) {
      assert.equal(tenant.result, "provisioned");
      assert.deepEqual(tenant.migrations, SAMPLE);
    }
    const [template] = await templatesOf(fleet);
    assert.deepEqual(await templatesOf(fleet), [template], "one finished template, closed to connections");
    // Copies carry the template's knex_migrations rows, times included: both schools agree to the microsecond.
    assert.deepEqual(await times(a), await times(b));
    assert.deepEqual(
      (await times(a)).map((r) => r.name),
      SAMPLE,
    );
    assert.ok(await tableExists(a, "menu_item"));
    // The template was frozen before it was closed: in a copy, knex_migrations' relfrozenxid is past the xmin of
    // its rows (a VACUUM without FREEZE would leave those rows unfrozen and relfrozenxid at or before their xmin).
    const [frozen] = await query<{ ok: boolean }>(
      a,
      `select (select age(relfrozenxid) from pg_class where relname = 'knex_migrations')
              < (select min(age(xmin)) from knex_migrations) as ok`,
    );
    assert.equal(frozen?.ok, true, "the copy's rows are frozen");

    // Without --template (the default; --no-template says so): the school runs its migrations itself (its own times).
    const [c] = fleet.dbs("tpl_c");
    await fleet.addTenants([c]);
    const plain = await fleet.run(["all", "--no-template", "--json"]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.deepEqual(
      (await times(c)).map((r) => r.name),
      SAMPLE,
    );
    assert.notDeepEqual(await times(c), await times(a));

    // A new migration set gets a new template; copies of it have the new file too.
    fleet.writeMigration("20240701000000_extra.js", tableMigration("extra"));
    const [d] = fleet.dbs("tpl_d");
    await fleet.addTenants([d]);
    const next = await fleet.run(["--template", "all", "--json"]);
    assert.equal(next.code, 0, next.stderr);
    const dResult = parseJson<FleetJson>(next.stdout).tenants.find((t) => t.database === d);
    assert.deepEqual(dResult?.migrations, [...SAMPLE, "20240701000000_extra.js"]);
    assert.ok(await tableExists(d, "extra"));
    assert.equal((await appliedMigrations(a)).length, 4, "existing schools were migrated, not copied");
    const [newer] = await templatesOf(fleet);
    assert.notEqual(newer, template);
    assert.deepEqual(await templatesOf(fleet), [newer], "the old migration set's template is dropped");
  });

  it("copies schools side by side: one whose provisioning another session holds does not hold up the others", async () => {
    // First in the catalog: with one admin connection per server, it took that connection and everyone waited.
    const [held, ...others] = fleet.numberedDbs("side", 5);
    await fleet.addTenants([held, ...others]);
    await withClient(urlFor(fleet.catalog), async (session) => {
      // The lock a run takes in the admin database (the catalog) while it creates that school.
      await session.query("select pg_advisory_lock($1, hashtext($2))", [PROVISION_LOCK_CLASS, held]);
      const run = fleet.start(["all", "--template", "--json"]);
      let result: CliResult | undefined;
      try {
        const copied = async () => (await Promise.all(others.map(databaseExists))).every(Boolean);
        await waitFor(copied, 30_000, "the other schools' copies while the first one waits");
        assert.equal(await databaseExists(held), false);
      } finally {
        await session.query("select pg_advisory_unlock($1, hashtext($2))", [PROVISION_LOCK_CLASS, held]);
        result = await run.done;
      }
      assert.equal(result.code, 0, result.stderr);
      const tenants = parseJson<FleetJson>(result.stdout).tenants;
      assert.deepEqual(
        tenants.map((t) => t.result),
        tenants.map(() => "provisioned"),
      );
      assert.equal(tenants.length, 5);
    });
  });

  it("leaves the templates of another catalog on the same server alone", async () => {
    const [keepA, keepB] = fleet.dbs("keep_a", "keep_b");
    await fleet.addTenants([keepA]);
    assert.equal((await fleet.run(["all"], { env: { TENANT_MIGRATE_TEMPLATE: "1" } })).code, 0);
    const ours = await templatesOf(fleet);
    assert.equal(ours.length, 1);
    // Another catalog with another migration set: its run drops its own old templates, never ours.
    await withFleet({}, async (other) => {
      other.writeMigration("20240801000000_other.js", tableMigration("other"));
      await other.addTenants(other.dbs("o1"));
      const result = await other.run(["all", "--template", "--json"]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal((await templatesOf(other)).length, 1);
    });
    assert.deepEqual(await templatesOf(fleet), ours);
    await fleet.addTenants([keepB]);
    assert.equal((await fleet.run(["all", "--template"])).code, 0);
    assert.deepEqual(await times(keepB), await times(keepA), "copied from the same template, not a rebuilt one");
  });
});

/** The finished (closed) templates that a fleet's runs built, by name. */
async function templatesOf(fleet: Fleet): Promise<string[]> {
  const prefix = fleet.templatePrefix();
  const rows = await query<{ datname: string }>(
    "postgres",
    "select datname from pg_database where starts_with(datname, $1) and not datallowconn order by datname",
    [prefix],
  );
  return rows.map((r) => r.datname);
}

describe("an applied migration file edited in place", () => {
  let fleet: Fleet;
  useFleet((f) => {
    fleet = f;
  });

  it("gives a school provisioned afterwards the edited schema, with --template and by default", async () => {
    const name = "20240301000000_notes.js";
    fleet.writeMigration(name, tableMigration("notes", "old_text"));
    const [first, copied, plain] = fleet.dbs("ed_first", "ed_copied", "ed_plain");
    await fleet.addMigrated([first], ["--template"]);
    assert.deepEqual(await columns(first, "notes"), ["id", "old_text"]);

    // Edited in place (a hotfix): the file name, and so knex_migrations, is the same.
    fleet.writeMigration(name, tableMigration("notes", "new_text"));
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

/** `templates --json` as the tests read it. */
interface TemplatesJson {
  ok: boolean;
  templates: {
    server: string;
    name: string;
    sizeBytes: number | null;
    finished: boolean;
    current: boolean;
    belongsTo: string;
    adminDatabase: string | null;
  }[];
}

/** `templates prune --json`. */
interface PruneJson {
  ok: boolean;
  refused: boolean;
  error?: string;
  templates: (TemplatesJson["templates"][number] & { action: string; reason?: string })[];
}

describe("templates, and templates prune", () => {
  let fleet: Fleet;
  let second: SecondServer;
  useFleet((f) => {
    fleet = f;
  });
  before(async () => {
    // A server of its own: prune looks at every template of a server, and other test files build theirs meanwhile.
    second = await startSecondServer("templates-prune-pw");
  });
  after(async () => {
    await second?.stop();
  });

  /** Runs the CLI with the catalog `catalog` of the second server. */
  const on = (catalog: string, args: string[]) =>
    fleet.run(args, { env: { CATALOG_DATABASE_URL: `${second.url}/${catalog}` } });

  /** A catalog on the second server with one school, provisioned with --template; returns the template's name. */
  async function catalogWithTemplate(catalog: string): Promise<string> {
    await second.query(`create database ${catalog}`);
    assert.equal((await on(catalog, ["catalog", "migrate"])).code, 0);
    await second.query(
      "insert into schools (school_name, school_database) values ($1, $2)",
      [catalog, `${catalog}_school`],
      catalog,
    );
    const result = await on(catalog, ["--template", "all"]);
    assert.equal(result.code, 0, result.stderr);
    const names = await second.query(
      "select datname from pg_database where datname like 'tenant\\_migrate\\_template\\_%' order by oid desc limit 1",
    );
    return names[0]?.datname as string;
  }

  const exists = async (database: string) =>
    (await second.query("select 1 from pg_database where datname = $1", [database])).length === 1;

  it("lists each template with its size and use, and prunes only what this catalog's current files do not use", async () => {
    const ours = await catalogWithTemplate("cat_ours");
    const others = await catalogWithTemplate("cat_other");
    const orphan = await catalogWithTemplate("cat_gone");
    assert.equal(new Set([ours, others, orphan]).size, 3, "one template per catalog (admin database)");
    await second.query("drop database cat_gone with (force)");

    const listed = await on("cat_ours", ["templates", "--json"]);
    assert.equal(listed.code, 0, listed.stderr);
    const list = new Map(parseJson<TemplatesJson>(listed.stdout).templates.map((t) => [t.name, t]));
    assert.deepEqual(
      [ours, others, orphan].map((name) => [list.get(name)?.belongsTo, list.get(name)?.current]),
      [
        ["this-catalog", true],
        ["another-catalog", false],
        ["orphan", false],
      ],
    );
    assert.equal(list.get(ours)?.server, "catalog");
    assert.equal(list.get(ours)?.finished, true);
    assert.ok((list.get(ours)?.sizeBytes ?? 0) > 1_000_000, "pg_database_size in bytes");
    const text = await on("cat_ours", ["templates"]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`${ours}\\s+[\\d.]+ MB\\s+yes\\s+finished\\s+this catalog`));
    assert.match(text.stdout, /^3 templates, [\d.]+ MB$/m);

    // Nothing to prune yet but the orphan; then an edited file makes ours old.
    const name = "20240101000000_create_lunch_week.js";
    fleet.writeMigration(name, `${readFileSync(path.join(fleet.appMigrations, name), "utf8")}\n// edited\n`);
    const afterEdit = parseJson<TemplatesJson>((await on("cat_ours", ["templates", "--json"])).stdout);
    assert.equal(afterEdit.templates.find((t) => t.name === ours)?.current, false, "an edited file is new content");

    // Without --yes: exit 2, the list of what would go, nothing dropped.
    const refused = await on("cat_ours", ["templates", "prune"]);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stdout, new RegExp(`${ours} .*would be dropped`));
    assert.match(refused.stdout, new RegExp(`${orphan} .*would be dropped`));
    assert.match(refused.stdout, new RegExp(`${others} .*kept: another catalog's`));
    assert.match(refused.stderr, /refusing to drop 2 templates without --yes/);
    for (const template of [ours, others, orphan]) assert.ok(await exists(template));

    // A run copying ours holds its lock shared, in its admin database: prune keeps it meanwhile.
    await withClient(`${second.url}/cat_ours`, async (copying) => {
      await copying.query("select pg_advisory_lock_shared(74657, hashtext($1))", [ours]);
      const busy = await on("cat_ours", ["templates", "prune", "--yes", "--json"]);
      assert.equal(busy.code, 0, busy.stderr);
      const actions = new Map(parseJson<PruneJson>(busy.stdout).templates.map((t) => [t.name, t]));
      assert.equal(actions.get(ours)?.action, "kept");
      assert.match(actions.get(ours)?.reason ?? "", /copying or building it right now/);
      assert.equal(actions.get(orphan)?.action, "dropped");
      assert.equal(actions.get(others)?.action, "kept");
    });
    assert.ok(await exists(ours));
    assert.equal(await exists(orphan), false);

    const pruned = await on("cat_ours", ["templates", "prune", "--yes"]);
    assert.equal(pruned.code, 0, pruned.stderr);
    assert.match(pruned.stdout, new RegExp(`${ours} .*dropped`));
    assert.match(pruned.stdout, /^dropped 1 template, [\d.]+ MB$/m);
    assert.equal(await exists(ours), false);
    assert.ok(await exists(others), "another catalog's template stays");

    // The next --template run builds ours again, for the edited files.
    await second.query(
      "insert into schools (school_name, school_database) values ('again', 'cat_ours_again')",
      [],
      "cat_ours",
    );
    assert.equal((await on("cat_ours", ["all", "--template"])).code, 0);
    const rebuilt = parseJson<TemplatesJson>((await on("cat_ours", ["templates", "--json"])).stdout);
    assert.equal(rebuilt.templates.filter((t) => t.belongsTo === "this-catalog" && t.current).length, 1);
    assert.match(
      (await on("cat_ours", ["templates", "prune"])).stdout,
      /nothing to prune/,
      "nothing of ours to prune, so no --yes is needed",
    );
  });
});
