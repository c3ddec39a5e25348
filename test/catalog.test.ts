// The catalog: its own migrations (catalog migrate / status / rollback,
// --catalog-migrations, a killed run's lock) and its rows (tenants add / list).
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { CATALOG_LOCK_KEY } from "../src/core/lock-keys.ts";
import {
  appliedMigrations,
  BUNDLED_CATALOG,
  type CatalogStatusJson,
  databaseExists,
  type Fleet,
  leaveStaleLock,
  lockFlag,
  migrationBatches,
  parseJson,
  query,
  ROOT,
  SAMPLE,
  tableExists,
  useFleet,
  waitFor,
  withDb,
} from "./helpers.ts";

interface Column {
  column_name: string;
  data_type: string;
  is_nullable: "YES" | "NO";
  column_default: string | null;
}

async function columns(database: string, table: string): Promise<Map<string, Column>> {
  const rows = await query<Column>(
    database,
    `select column_name, data_type, is_nullable, column_default from information_schema.columns
      where table_schema = 'public' and table_name = $1 order by ordinal_position`,
    [table],
  );
  return new Map(rows.map((r) => [r.column_name, r]));
}

async function constraintColumns(database: string, table: string, type: "p" | "u"): Promise<string[][]> {
  const rows = await query<{ cols: string[] }>(
    database,
    `select array_agg(a.attname::text order by a.attnum) as cols
       from pg_constraint c join pg_attribute a on a.attrelid = c.conrelid and a.attnum = any (c.conkey)
      where c.conrelid = $1::regclass and c.contype = $2
      group by c.oid`,
    [table, type],
  );
  return rows.map((r) => r.cols);
}

async function schoolCount(fleet: Fleet): Promise<number> {
  return (await query<{ n: number }>(fleet.catalog, "select count(*)::int as n from schools"))[0]?.n ?? -1;
}

/** The `tenants list` line that names `database`, split on whitespace. */
function rowOf(stdout: string, database: string): { line: string; tokens: string[]; index: number } {
  const lines = stdout.split("\n");
  const index = lines.findIndex((l) => l.split(/\s+/).includes(database));
  assert.ok(index >= 0, `no line for ${database} in:\n${stdout}`);
  const line = (lines[index] as string).trim();
  return { line, tokens: line.split(/\s+/), index };
}

/** A catalog migration folder of the test's own, inside the fleet's ESM directory. */
function folder(fleet: Fleet, name: string, files: Record<string, string>): string {
  const dir = path.join(fleet.cwd, name);
  mkdirSync(dir, { recursive: true });
  for (const [file, source] of Object.entries(files)) writeFileSync(path.join(dir, file), source);
  return dir;
}

const DISTRICTS = `// A catalog of our own: schools with a district, no school_server.
export async function up(knex) {
  await knex.schema.createTable("districts", (t) => {
    t.increments("district_id").primary();
    t.text("district_name").notNullable();
  });
  await knex.schema.createTable("schools", (t) => {
    t.increments("school_id").primary();
    t.text("school_name").notNullable();
    t.text("school_database").notNullable().unique();
    t.integer("district_id").references("districts.district_id");
  });
}
export async function down(knex) {
  await knex.schema.dropTable("schools");
  await knex.schema.dropTable("districts");
}
`;

describe("catalog migrate / status / rollback", () => {
  let fleet: Fleet;
  useFleet(
    (f) => {
      fleet = f;
    },
    { migrateCatalog: false, each: true },
  );

  it("reports a fresh catalog as all pending without changing it", async () => {
    const result = await fleet.run(["catalog", "status", "--json"]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(parseJson<CatalogStatusJson>(result.stdout), {
      applied: [],
      pending: BUNDLED_CATALOG,
      unknown: [],
      latest: BUNDLED_CATALOG[1],
    });
    const text = await fleet.run(["catalog", "status"]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`pending {2}${BUNDLED_CATALOG[0]}`));
    assert.match(text.stdout, /catalog: 0 applied, 2 pending/);
    assert.equal(await tableExists(fleet.catalog, "knex_migrations"), false, "status created no table");
    assert.equal(await tableExists(fleet.catalog, "schools"), false);
  });

  it("creates the schools table of the design, records knex's rows, then is up to date", async () => {
    const first = await fleet.run(["catalog", "migrate"]);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout.trim(), `catalog migrated: ${BUNDLED_CATALOG.join(", ")}`);

    const cols = await columns(fleet.catalog, "schools");
    assert.deepEqual([...cols.keys()], ["school_id", "school_name", "school_database", "school_server"]);
    assert.equal(cols.get("school_id")?.data_type, "integer");
    assert.match(cols.get("school_id")?.column_default ?? "", /^nextval\(/, "school_id is serial");
    assert.equal(cols.get("school_name")?.data_type, "text");
    assert.equal(cols.get("school_name")?.is_nullable, "NO");
    assert.equal(cols.get("school_database")?.data_type, "text");
    assert.equal(cols.get("school_database")?.is_nullable, "NO");
    assert.equal(cols.get("school_server")?.data_type, "text");
    assert.equal(cols.get("school_server")?.is_nullable, "YES");
    assert.deepEqual(await constraintColumns(fleet.catalog, "schools", "p"), [["school_id"]]);
    assert.deepEqual(await constraintColumns(fleet.catalog, "schools", "u"), [["school_database"]]);

    assert.deepEqual(await migrationBatches(fleet.catalog), [
      { name: BUNDLED_CATALOG[0], batch: 1 },
      { name: BUNDLED_CATALOG[1], batch: 1 },
    ]);
    assert.deepEqual(await lockFlag(fleet.catalog), [0]);

    // Rows may be inserted by hand, as the design says; the database name is unique.
    const [id] = await fleet.addSchools({ name: "By Hand", database: fleet.db("by_hand") });
    assert.match(id as string, /^\d+$/);
    await assert.rejects(fleet.addSchools({ name: "Again", database: fleet.db("by_hand") }), /duplicate key/);

    const again = await fleet.run(["catalog", "migrate"]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout.trim(), "catalog up to date");
    const json = await fleet.run(["catalog", "migrate", "--json"]);
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(parseJson(json.stdout), { migrations: [] });
    assert.equal((await migrationBatches(fleet.catalog)).length, 2);

    const status = await fleet.run(["catalog", "status"]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, new RegExp(`applied {2}${BUNDLED_CATALOG[0]}\\napplied {2}${BUNDLED_CATALOG[1]}\\n`));
    assert.match(status.stdout, /catalog: 2 applied, 0 pending/);
    const statusJson = parseJson<CatalogStatusJson>((await fleet.run(["catalog", "status", "--json"])).stdout);
    assert.deepEqual(statusJson, { applied: BUNDLED_CATALOG, pending: [], unknown: [], latest: BUNDLED_CATALOG[1] });
    assert.equal(await schoolCount(fleet), 1, "migrating again left the rows alone");
  });

  it("status is a read: it answers while another run holds the catalog's migration lock", async () => {
    assert.equal((await fleet.run(["catalog", "migrate"])).code, 0);
    await withDb(fleet.catalog, async (client) => {
      await client.query("select pg_advisory_lock($1::bigint)", [CATALOG_LOCK_KEY]);
      const status = await fleet.run(["catalog", "status", "--json", "--lock-timeout", "1"]);
      assert.equal(status.code, 0, status.stderr);
      assert.deepEqual(parseJson<CatalogStatusJson>(status.stdout).applied, BUNDLED_CATALOG);
      // A change does wait for the lock, and gives up naming the other run, changing nothing.
      const rollback = await fleet.run(["catalog", "rollback", "--lock-timeout", "1"]);
      assert.equal(rollback.code, 2, rollback.stdout);
      assert.match(rollback.stderr, /another tenant-migrate run is migrating the catalog/);
      assert.equal(await tableExists(fleet.catalog, "schools"), true);
    });
  });

  it("SIGTERM while waiting for another run's catalog lock exits 130 and changes nothing", async () => {
    assert.equal((await fleet.run(["catalog", "migrate"])).code, 0);
    await withDb(fleet.catalog, async (client) => {
      await client.query("select pg_advisory_lock($1::bigint)", [CATALOG_LOCK_KEY]);
      const run = fleet.start(["catalog", "rollback", "--lock-timeout", "60"]);
      await waitFor(() => run.output().stderr.includes("catalog: another run is migrating it; waiting (up to 60 s)"));
      run.child.kill("SIGTERM");
      const result = await run.done;
      assert.equal(result.code, 130, result.stderr);
      assert.match(
        result.stderr,
        /interrupted while waiting for another run's catalog migration lock; nothing changed/,
      );
    });
    assert.deepEqual(await appliedMigrations(fleet.catalog), BUNDLED_CATALOG);
  });

  it("clears a knex lock flag that a killed run left on the catalog, saying so, and migrates", async () => {
    assert.equal((await fleet.run(["catalog", "migrate"])).code, 0);
    assert.equal((await fleet.run(["catalog", "rollback"])).code, 0);
    await leaveStaleLock(fleet.catalog);
    const result = await fleet.run(["catalog", "migrate"]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /catalog: cleared a knex migration lock left by a process that is gone/);
    assert.deepEqual(await appliedMigrations(fleet.catalog), BUNDLED_CATALOG);
    assert.deepEqual(await lockFlag(fleet.catalog), [0]);
  });

  it("rolls back the last batch, then --all batches", async () => {
    // Batch 1: only the first bundled migration (a folder holding a copy of it); batch 2: the rest.
    const firstOnly = folder(fleet, "first_only", {
      [BUNDLED_CATALOG[0] as string]: readFileSync(
        path.join(ROOT, "catalog_migrations", BUNDLED_CATALOG[0] as string),
        "utf8",
      ),
    });
    assert.equal((await fleet.run(["catalog", "migrate", "--catalog-migrations", firstOnly])).code, 0);
    const second = await fleet.run(["catalog", "migrate"]);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout.trim(), `catalog migrated: ${BUNDLED_CATALOG[1]}`);
    assert.deepEqual(await migrationBatches(fleet.catalog), [
      { name: BUNDLED_CATALOG[0], batch: 1 },
      { name: BUNDLED_CATALOG[1], batch: 2 },
    ]);
    await fleet.addSchools({ name: "Kept", database: fleet.db("kept") });

    const last = await fleet.run(["catalog", "rollback"]);
    assert.equal(last.code, 0, last.stderr);
    assert.equal(last.stdout.trim(), `catalog rolled back: ${BUNDLED_CATALOG[1]}`);
    assert.deepEqual(
      [...(await columns(fleet.catalog, "schools")).keys()],
      ["school_id", "school_name", "school_database"],
    );
    assert.equal(await schoolCount(fleet), 1, "the rows of batch 1's table stay");
    assert.deepEqual(await migrationBatches(fleet.catalog), [{ name: BUNDLED_CATALOG[0], batch: 1 }]);
    const status = parseJson<CatalogStatusJson>((await fleet.run(["catalog", "status", "--json"])).stdout);
    assert.deepEqual(status.pending, [BUNDLED_CATALOG[1]]);

    // Two batches again, then --all undoes both.
    assert.equal((await fleet.run(["catalog", "migrate"])).code, 0);
    assert.deepEqual(
      (await migrationBatches(fleet.catalog)).map((m) => m.batch),
      [1, 2],
    );
    const all = await fleet.run(["catalog", "rollback", "--all", "--json"]);
    assert.equal(all.code, 0, all.stderr);
    assert.deepEqual(parseJson<{ migrations: string[] }>(all.stdout).migrations.sort(), [...BUNDLED_CATALOG].sort());
    assert.equal(await tableExists(fleet.catalog, "schools"), false);
    assert.deepEqual(await migrationBatches(fleet.catalog), []);

    const nothing = await fleet.run(["catalog", "rollback"]);
    assert.equal(nothing.code, 0, nothing.stderr);
    assert.equal(nothing.stdout.trim(), "catalog: nothing to roll back");
  });

  it("--catalog-migrations DIR replaces the bundled folder", async () => {
    const mine = folder(fleet, "my_catalog", { "20250101000000_create_schools_and_districts.js": DISTRICTS });
    const migrate = await fleet.run(["catalog", "migrate", "--catalog-migrations", mine]);
    assert.equal(migrate.code, 0, migrate.stderr);
    assert.equal(migrate.stdout.trim(), "catalog migrated: 20250101000000_create_schools_and_districts.js");
    assert.deepEqual(await migrationBatches(fleet.catalog), [
      { name: "20250101000000_create_schools_and_districts.js", batch: 1 },
    ]);
    assert.ok(await tableExists(fleet.catalog, "districts"));
    assert.deepEqual(
      [...(await columns(fleet.catalog, "schools")).keys()],
      ["school_id", "school_name", "school_database", "district_id"],
    );

    // The same folder through the environment; status agrees.
    const status = await fleet.run(["catalog", "status", "--json"], { env: { CATALOG_MIGRATIONS_DIR: mine } });
    assert.equal(status.code, 0, status.stderr);
    assert.deepEqual(parseJson<CatalogStatusJson>(status.stdout), {
      applied: ["20250101000000_create_schools_and_districts.js"],
      pending: [],
      unknown: [],
      latest: "20250101000000_create_schools_and_districts.js",
    });
    // Against the bundled folder, the applied file is unknown and the bundled ones pending.
    const bundled = parseJson<CatalogStatusJson>((await fleet.run(["catalog", "status", "--json"])).stdout);
    assert.deepEqual(bundled.unknown, ["20250101000000_create_schools_and_districts.js"]);
    assert.deepEqual(bundled.pending, BUNDLED_CATALOG);

    // A schools table without school_server still works for tenants.
    const database = fleet.db("district_school");
    const add = await fleet.run(["tenants", "add", "District School", "--database", database, "--provision"], {
      env: { CATALOG_MIGRATIONS_DIR: mine },
    });
    assert.equal(add.code, 0, add.stderr);
    assert.deepEqual((await appliedMigrations(database)).length, 3);
    const all = await fleet.run(["all", "--catalog-migrations", mine]);
    assert.equal(all.code, 0, all.stderr);
    assert.match(all.stdout, new RegExp(`${database} \\(id \\d+\\) up to date`));

    const rollback = await fleet.run(["catalog", "rollback", "--catalog-migrations", mine]);
    assert.equal(rollback.code, 0, rollback.stderr);
    assert.equal(await tableExists(fleet.catalog, "districts"), false);
  });

  it("uses ./catalog_migrations in the working directory when it exists", async () => {
    folder(fleet, "catalog_migrations", { "20250101000000_create_schools_and_districts.js": DISTRICTS });
    const migrate = await fleet.run(["catalog", "migrate"]);
    assert.equal(migrate.code, 0, migrate.stderr);
    assert.ok(await tableExists(fleet.catalog, "districts"));
    assert.deepEqual(
      (await migrationBatches(fleet.catalog)).map((m) => m.name),
      ["20250101000000_create_schools_and_districts.js"],
    );
  });

  it("a --catalog-migrations folder that does not exist exits 2 and changes nothing", async () => {
    const result = await fleet.run(["catalog", "migrate", "--catalog-migrations", "no_such_dir"]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /--catalog-migrations \/ CATALOG_MIGRATIONS_DIR: .*no_such_dir is not a directory/);
    assert.equal(await tableExists(fleet.catalog, "knex_migrations"), false);
  });

  it("a catalog whose applied migrations no file matches is a catalog error (exit 2), changing nothing", async () => {
    assert.equal((await fleet.run(["catalog", "migrate"])).code, 0);
    const mine = folder(fleet, "my_catalog", {
      "20250101000000_create_districts.js":
        'export const up = (k) => k.schema.createTable("districts", (t) => t.increments());\nexport const down = (k) => k.schema.dropTable("districts");\n',
    });
    const result = await fleet.run(["catalog", "migrate", "--catalog-migrations", mine]);
    assert.match(result.stderr, new RegExp(BUNDLED_CATALOG[0] as string), "names the migrations no file matches");
    assert.equal(await tableExists(fleet.catalog, "districts"), false);
    assert.equal((await migrationBatches(fleet.catalog)).length, 2);
    assert.equal(result.code, 2, `exit ${result.code}: ${result.stderr}`);
  });
});

describe("tenants add / list", () => {
  let fleet: Fleet;
  useFleet(
    (f) => {
      fleet = f;
    },
    { migrateCatalog: false, each: true },
  );

  it("needs a migrated catalog", async () => {
    const result = await fleet.run(["tenants", "add", "Lincoln High"]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /tenant-migrate catalog migrate/);
    assert.equal(await tableExists(fleet.catalog, "schools"), false);
  });

  it("derives the database name from the school name, and --database overrides it", async () => {
    assert.equal((await fleet.run(["catalog", "migrate"])).code, 0);
    const lincoln = await fleet.run(["tenants", "add", "Lincoln High"]);
    assert.equal(lincoln.code, 0, lincoln.stderr);
    assert.match(lincoln.stdout, /^added school (\d+): Lincoln High \(database lincoln_high\)$/m);

    for (const [name, database] of [
      ["École Saint-Denis", "ecole_saint_denis"],
      ["  Roosevelt   Elementary!! ", "roosevelt_elementary"],
      ["42 Academy", "_42_academy"],
    ] as const) {
      const result = await fleet.run(["tenants", "add", name, "--json"]);
      assert.equal(result.code, 0, result.stderr);
      const json = parseJson<{ tenant: { id: string; name: string; database: string; server: string | null } }>(
        result.stdout,
      );
      assert.equal(json.tenant.database, database, name);
      assert.equal(json.tenant.name, name.trim());
      assert.equal(json.tenant.server, null);
    }

    const custom = fleet.db("washington");
    const override = await fleet.run(["tenants", "add", "Washington Middle", "--database", custom]);
    assert.equal(override.code, 0, override.stderr);
    assert.match(override.stdout, new RegExp(`Washington Middle \\(database ${custom}\\)`));
    assert.equal(await databaseExists(custom), false, "without --provision no database is created");

    const rows = await query<{ school_id: number; school_name: string; school_database: string; school_server: null }>(
      fleet.catalog,
      "select school_id, school_name, school_database, school_server from schools order by school_id",
    );
    assert.deepEqual(
      rows.map((r) => [r.school_name, r.school_database, r.school_server]),
      [
        ["Lincoln High", "lincoln_high", null],
        ["École Saint-Denis", "ecole_saint_denis", null],
        ["Roosevelt   Elementary!!", "roosevelt_elementary", null],
        ["42 Academy", "_42_academy", null],
        ["Washington Middle", custom, null],
      ],
    );
  });

  it("--provision creates the row and the database, migrated", async () => {
    assert.equal((await fleet.run(["catalog", "migrate"])).code, 0);
    const school = `${fleet.prefix}_lincoln_high`;
    const result = await fleet.run(["tenants", "add", `${fleet.prefix} Lincoln High`, "--provision"]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`added school \\d+: .*database ${school}`));
    assert.match(result.stdout, new RegExp(`${school} \\(id \\d+\\) provisioned`));
    const rows = await query(fleet.catalog, "select school_name, school_database from schools");
    assert.deepEqual(rows, [{ school_name: `${fleet.prefix} Lincoln High`, school_database: school }]);
    assert.deepEqual(await appliedMigrations(school), SAMPLE);
    assert.ok(await tableExists(school, "menu_item"));
  });

  it("refuses a bad --database, a duplicate and an unknown --server with exit 2, adding no row", async () => {
    assert.equal((await fleet.run(["catalog", "migrate"])).code, 0);
    assert.equal((await fleet.run(["tenants", "add", "Lincoln High"])).code, 0);
    const refused: [string[], RegExp][] = [
      [["tenants", "add", "Bad", "--database", "Bad-Name"], /--database: database name "Bad-Name" is not a lower-case/],
      [["tenants", "add", "Bad", "--database", 'x"; drop database postgres; --'], /--database: .*not a lower-case/],
      [["tenants", "add", "Long", "--database", "a".repeat(64)], /--database: .*64 bytes long/],
      [["tenants", "add", "Lincoln High"], /database "lincoln_high" is already named by another school/],
      [["tenants", "add", "Other Name", "--database", "lincoln_high"], /already named by another school/],
      [["tenants", "add", "   "], /a school needs a name/],
      [
        ["tenants", "add", "Far Away", "--server", "nowhere"],
        /--server: "nowhere" is not a server named in TENANT_SERVERS/,
      ],
    ];
    for (const [args, message] of refused) {
      const result = await fleet.run(args);
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, message);
      assert.equal(result.stdout, "");
    }
    assert.equal(await schoolCount(fleet), 1);
    assert.ok(await databaseExists("postgres"));
  });

  it("tenants list shows every row and whether its database exists", async () => {
    assert.equal((await fleet.run(["catalog", "migrate"])).code, 0);
    const made = fleet.db("made");
    const missing = fleet.db("missing");
    const [madeId, missingId, farId] = await fleet.addSchools(
      { name: "Made", database: made },
      { name: "Missing", database: missing },
      { name: "Far", database: fleet.db("far"), server: "elsewhere" },
    );
    assert.equal((await fleet.run(["provision", made])).code, 0);

    const text = await fleet.run(["tenants", "list"]);
    assert.equal(text.code, 0, text.stderr);
    // One line per row, in school_id order, with its id, database, name and whether it exists.
    const rows = [rowOf(text.stdout, made), rowOf(text.stdout, missing), rowOf(text.stdout, fleet.db("far"))];
    assert.ok(rows[0].index < rows[1].index && rows[1].index < rows[2].index, text.stdout);
    assert.deepEqual(rows[0].tokens.slice(0, 3), [madeId, made, "Made"]);
    assert.match(rows[0].line, /\b(yes|exists)$/);
    assert.deepEqual(rows[1].tokens.slice(0, 3), [missingId, missing, "Missing"]);
    assert.match(rows[1].line, /\b(no|missing)$/);
    assert.deepEqual(rows[2].tokens.slice(0, 3), [farId, fleet.db("far"), "Far"]);
    assert.match(rows[2].line, /elsewhere.*unknown.*elsewhere/);
    assert.match(text.stdout, /^3 tenants$/m);

    const json = await fleet.run(["tenants", "list", "--json"]);
    assert.equal(json.code, 0, json.stderr);
    const list = parseJson<{ tenants: { id: string; database: string; exists: boolean | null }[] }>(json.stdout);
    assert.deepEqual(
      list.tenants.map((t) => [t.id, t.database, t.exists]),
      [
        [madeId, made, true],
        [missingId, missing, false],
        [farId, fleet.db("far"), null],
      ],
    );
    assert.equal(await databaseExists(missing), false, "listing created nothing");
  });
});
