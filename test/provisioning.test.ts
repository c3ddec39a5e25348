// Provisioning gives what knex gives (DESIGN.md): a new school's database is
// created closed and marked as the tool's, every migration runs in it with
// knex's migrator, then it is made ready. Reserved names, operator-closed
// databases, half-made databases of the tool's, foreign databases, and pg
// left as it is. Every run passes --no-template: these tests are about the
// default path, whatever the template default of the branch.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { describe, it } from "node:test";
import pg from "pg";
import { PROVISIONING_CONNECTION_LIMIT } from "../src/core/provisioning.ts";
import {
  appliedMigrations,
  byDatabase,
  type Fleet,
  type FleetJson,
  parseJson,
  query,
  ROOT,
  SAMPLE,
  type StatusJson,
  tableExists,
  useFleet,
  waitFor,
  withFleet,
} from "./helpers.ts";

const NO_TEMPLATE = "--no-template";

/** A role of its own for a test (cluster-wide: dropped in `finally`, after the fleet that granted it). */
async function withRole<T>(fn: (role: string) => Promise<T>): Promise<T> {
  const role = `r${randomBytes(4).toString("hex")}_app`;
  await query("postgres", `create role ${role} nologin`);
  try {
    return await fn(role);
  } finally {
    await query("postgres", `drop role if exists ${role}`);
  }
}

interface DatabaseRow {
  datallowconn: boolean;
  datconnlimit: number;
  datacl: string | null;
  comment: string | null;
}

/** What pg_database (and pg_shdescription) says about a database. */
async function databaseRow(database: string): Promise<DatabaseRow | undefined> {
  const rows = await query<DatabaseRow>(
    "postgres",
    `select datallowconn, datconnlimit, datacl::text as datacl, shobj_description(oid, 'pg_database') as comment
       from pg_database where datname = $1`,
    [database],
  );
  return rows[0];
}

async function canConnect(role: string, database: string): Promise<boolean> {
  const rows = await query<{ ok: boolean }>("postgres", "select has_database_privilege($1, $2, 'CONNECT') as ok", [
    role,
    database,
  ]);
  return rows[0]?.ok === true;
}

/** Whether PUBLIC may connect (an entry "=c" or "=Tc" in datacl; a null datacl means the default, which allows it). */
function publicMayConnect(row: DatabaseRow | undefined): boolean {
  if (!row?.datacl) return true;
  return /[{,]=[A-Za-z]*c/.test(row.datacl);
}

describe("a new school gets what its migrations say", () => {
  it("per-school random values, database-level effects and its own migration_time; then ready for the app role", async () => {
    await withRole((role) =>
      withFleet({}, async (fleet) => {
        fleet.writeMigration(
          "20240301000000_school_token.js",
          `export async function up(knex) {
  await knex.schema.createTable("school_token", (t) => { t.uuid("id"); t.text("db"); });
  await knex.raw("insert into school_token select gen_random_uuid(), current_database()");
}
export async function down(knex) { await knex.schema.dropTable("school_token"); }
`,
        );
        fleet.writeMigration(
          "20240301000001_database_settings.js",
          `export async function up(knex) {
  const { rows } = await knex.raw("select current_database() as db");
  const db = '"' + rows[0].db + '"';
  await knex.raw("alter database " + db + " set statement_timeout = '42s'");
  await knex.raw("comment on database " + db + " is 'a school of ours'");
}
export async function down() {}
`,
        );
        const [a, b] = fleet.dbs("alpha", "beta");
        await fleet.addTenants([a, b]);
        const start = (await query<{ now: Date }>("postgres", "select now()"))[0]?.now as Date;
        const result = await fleet.run(["all", NO_TEMPLATE, "--app-role", role, "--json"]);
        assert.equal(result.code, 0, result.stderr);
        const tenants = byDatabase(parseJson<FleetJson>(result.stdout).tenants);
        for (const db of [a, b]) assert.equal(tenants.get(db)?.result, "provisioned");

        const tokens = await Promise.all(
          [a, b].map(async (db) => (await query<{ id: string; db: string }>(db, "select id, db from school_token"))[0]),
        );
        assert.notEqual(tokens[0]?.id, tokens[1]?.id, "gen_random_uuid() differs per school");
        assert.deepEqual(
          tokens.map((t) => t?.db),
          [a, b],
          "current_database() is the school's own name during its migrations",
        );

        for (const db of [a, b]) {
          const timeout = await query<{ v: string }>(db, "select current_setting('statement_timeout') as v");
          assert.equal(timeout[0]?.v, "42s", `${db}: ALTER DATABASE … SET took effect`);
          const row = await databaseRow(db);
          assert.equal(row?.comment, "a school of ours", `${db}: the migration's COMMENT ON DATABASE stays`);
          assert.equal(row?.datallowconn, true);
          assert.equal(row?.datconnlimit, -1, `${db}: the provisioning mark is cleared`);
          assert.equal(publicMayConnect(row), false, `${db}: PUBLIC has no CONNECT`);
          assert.equal(await canConnect(role, db), true, `${db}: the app role is granted`);
          const times = await query<{ t: Date }>(db, "select min(migration_time) as t from knex_migrations");
          assert.ok((times[0]?.t as Date) >= start, `${db}: migration_time is the school's own, not older`);
          assert.deepEqual(await appliedMigrations(db), [
            ...SAMPLE,
            "20240301000000_school_token.js",
            "20240301000001_database_settings.js",
          ]);
        }
      }),
    );
  });
});

describe("pg is left as it is", () => {
  let fleet: Fleet;
  useFleet((f) => {
    fleet = f;
  });

  it("a migration reads 9007199254740993::bigint and writes it back unchanged, with pg's own INT8 parser", async () => {
    // The pg module knex loads (the repository's), as a migration that imports pg gets it.
    const pgPath = JSON.stringify(path.join(ROOT, "package.json"));
    fleet.writeMigration(
      "20240301000000_bigint.js",
      `import { createRequire } from "node:module";
const pg = createRequire(${pgPath})("pg");
export async function up(knex) {
  await knex.schema.createTable("big", (t) => { t.bigint("v"); t.text("js_type"); t.text("parsed"); });
  const { rows } = await knex.raw("select 9007199254740993::bigint as v");
  await knex("big").insert({ v: rows[0].v, js_type: typeof rows[0].v, parsed: String(pg.types.getTypeParser(20)("9007199254740993")) });
}
export async function down(knex) { await knex.schema.dropTable("big"); }
`,
    );
    const [db] = fleet.dbs("big");
    await fleet.addTenants([db]);
    const result = await fleet.run(["all", NO_TEMPLATE]);
    assert.equal(result.code, 0, result.stderr);
    const rows = await query<{ v: string; js_type: string; parsed: string }>(
      db,
      "select v::text, js_type, parsed from big",
    );
    assert.deepEqual(rows, [{ v: "9007199254740993", js_type: "string", parsed: "9007199254740993" }]);
  });

  it("importing the tool (the library entry) changes no pg type parser", async () => {
    await import("../src/index.ts");
    await import("../src/core/db.ts");
    assert.equal(pg.types.getTypeParser(20)("9007199254740993"), "9007199254740993");
  });
});

describe("reserved and foreign databases", () => {
  let fleet: Fleet;
  useFleet(
    (f) => {
      fleet = f;
    },
    { each: true },
  );

  it("a row naming a tenant_migrate_* database fails alone; that database is untouched", async () => {
    const reserved = `tenant_migrate_${fleet.prefix}_x`;
    await query("postgres", `create database ${reserved}`);
    try {
      await query(reserved, "create table keep (v int); insert into keep values (1)");
      const [good] = fleet.dbs("good");
      await fleet.addSchools({ name: "Good", database: good }, { name: "Reserved", database: reserved });
      const result = await fleet.run(["all", NO_TEMPLATE, "--json"]);
      assert.equal(result.code, 1, result.stderr);
      const tenants = byDatabase(parseJson<FleetJson>(result.stdout).tenants);
      assert.equal(tenants.get(good)?.result, "provisioned");
      assert.equal(tenants.get(reserved)?.result, "failed");
      assert.match(tenants.get(reserved)?.error ?? "", /reserved/);
      assert.equal(await tableExists(reserved, "knex_migrations"), false, "no migration reached it");
      assert.deepEqual(await query(reserved, "select v from keep"), [{ v: 1 }]);
      const status = await fleet.run(["status", "--json"]);
      const state = byDatabase(parseJson<StatusJson>(status.stdout).tenants).get(reserved);
      assert.match(state?.error ?? "", /reserved/);
      await query(fleet.catalog, "delete from schools where school_database = $1", [reserved]);
    } finally {
      await query("postgres", `drop database if exists ${reserved} with (force)`);
    }
  });

  it("tenants add refuses postgres, template1, the catalog, an admin database and tenant_migrate_*: exit 2, nothing inserted", async () => {
    const env = { TENANT_SERVERS: JSON.stringify({ other: `postgres://nobody:pw@127.0.0.1:1/${fleet.db("admin")}` }) };
    const attempts = [
      ["tenants", "add", "postgres"],
      ["tenants", "add", "Template", "--database", "template1"],
      ["tenants", "add", "Catalog", "--database", fleet.catalog],
      ["tenants", "add", "Admin", "--database", fleet.db("admin")],
      ["tenants", "add", "Ours", "--database", `tenant_migrate_${fleet.prefix}`],
      ["tenants", "add", "Ours too", "--database", `tenant_migrate_${fleet.prefix}`, "--provision", NO_TEMPLATE],
    ];
    const before = await query<{ n: number }>(fleet.catalog, "select count(*)::int as n from schools");
    for (const args of attempts) {
      const result = await fleet.run(args, { env });
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, /reserved|never a tenant's/);
    }
    assert.deepEqual(await query(fleet.catalog, "select count(*)::int as n from schools"), before);
  });

  it("provision refuses an existing database it did not make that has no knex_migrations, unless --adopt", async () => {
    const [foreign, foreign2] = fleet.dbs("foreign", "foreign2");
    for (const db of [foreign, foreign2]) {
      await query("postgres", `create database ${db}`);
      await query(db, "create table legacy (v int); insert into legacy values (7)");
    }
    const [id] = await fleet.addTenants([foreign]);
    const refused = await fleet.run(["provision", id as string, NO_TEMPLATE, "--json"]);
    assert.equal(refused.code, 1, refused.stderr);
    const tenant = parseJson<FleetJson>(refused.stdout).tenants[0];
    assert.equal(tenant?.result, "failed");
    assert.match(tenant?.error ?? "", /not made by tenant-migrate.*--adopt/);
    assert.equal(await tableExists(foreign, "knex_migrations"), false);

    const adopted = await fleet.run(["provision", id as string, NO_TEMPLATE, "--adopt", "--json"]);
    assert.equal(adopted.code, 0, adopted.stderr);
    assert.deepEqual(await appliedMigrations(foreign), SAMPLE);
    assert.deepEqual(await query(foreign, "select v from legacy"), [{ v: 7 }]);

    // tenants add --provision: refused before the row is inserted.
    const count = async () =>
      (
        await query<{ n: number }>(fleet.catalog, "select count(*)::int as n from schools where school_database = $1", [
          foreign2,
        ])
      )[0]?.n;
    const add = ["tenants", "add", "Foreign Two", "--database", foreign2, "--provision", NO_TEMPLATE];
    const addRefused = await fleet.run(add);
    assert.equal(addRefused.code, 2, addRefused.stderr);
    assert.match(addRefused.stderr, /--adopt/);
    assert.equal(await count(), 0);
    assert.equal(await tableExists(foreign2, "knex_migrations"), false);
    const addAdopted = await fleet.run([...add, "--adopt"]);
    assert.equal(addAdopted.code, 0, addAdopted.stderr);
    assert.equal(await count(), 1);
    assert.deepEqual(await appliedMigrations(foreign2), SAMPLE);
  });
});

describe("closed databases", () => {
  let fleet: Fleet;
  useFleet(
    (f) => {
      fleet = f;
    },
    { each: true },
  );

  it("an operator-closed database is reported closed, fails in fleet commands, and stays closed with its grants", async () => {
    const [open, closed] = fleet.dbs("open", "closed");
    await fleet.addMigrated([open, closed], [NO_TEMPLATE]);
    await query("postgres", `alter database ${closed} allow_connections false`);
    const before = await databaseRow(closed);

    const status = await fleet.run(["status", "--json"]);
    assert.equal(status.code, 0, status.stderr);
    const states = byDatabase(parseJson<StatusJson>(status.stdout).tenants);
    assert.equal(states.get(closed)?.state, "closed");
    assert.equal(states.get(open)?.state, "up-to-date");
    const text = await fleet.run(["status"]);
    assert.match(text.stdout, new RegExp(`${closed} .*closed`));

    for (const command of [["all"], ["migrate"], ["provision", closed]]) {
      const result = await fleet.run([...command, NO_TEMPLATE, "--json"]);
      assert.equal(result.code, 1, `${command.join(" ")}: ${result.stderr}`);
      const tenant = byDatabase(parseJson<FleetJson>(result.stdout).tenants).get(closed);
      assert.equal(tenant?.result, "failed");
      assert.match(tenant?.error ?? "", /closed.*not reopened/);
    }
    assert.deepEqual(await databaseRow(closed), before, "still closed; PUBLIC and grants untouched");
  });

  it("a database left closed right after CREATE DATABASE (a kill before anything else) is finished by the next run", async () => {
    const [db] = fleet.dbs("created_only");
    // Exactly the state CREATE DATABASE leaves: closed, with the tool's mark, nothing else done.
    await query(
      "postgres",
      `create database ${db} with allow_connections false connection limit ${PROVISIONING_CONNECTION_LIMIT}`,
    );
    await fleet.addTenants([db]);
    const status = await fleet.run(["status", db, "--json"]);
    assert.equal(byDatabase(parseJson<StatusJson>(status.stdout).tenants).get(db)?.state, "not-provisioned");
    // --missing takes it (half-made is missing), not the operator-closed school of the test above (it exists).
    const result = await fleet.run(["provision", "--missing", NO_TEMPLATE, "--json"]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(byDatabase(parseJson<FleetJson>(result.stdout).tenants).get(db)?.result, "provisioned");
    assert.deepEqual(await appliedMigrations(db), SAMPLE);
    const row = await databaseRow(db);
    assert.equal(row?.datallowconn, true);
    assert.equal(row?.datconnlimit, -1);
    assert.equal(row?.comment, null);
  });
});

describe("a half-made database of the tool's", () => {
  it("killed (SIGKILL) mid-provisioning: closed to the app role meanwhile, finished by the next run", async () => {
    await withRole((role) =>
      withFleet({}, async (fleet) => {
        fleet.writeMigration(
          "20240301000000_slow.js",
          `export async function up(knex) {
  await knex.raw("select pg_sleep(?)", [Number(process.env.SLOW_SECONDS ?? 0)]);
  await knex.schema.createTable("slow_table", (t) => { t.increments("id"); });
}
export async function down(knex) { await knex.schema.dropTable("slow_table"); }
`,
        );
        const [db] = fleet.dbs("half");
        await fleet.addTenants([db]);
        const run = fleet.start(["all", NO_TEMPLATE, "--app-role", role], { SLOW_SECONDS: "120" });
        await waitFor(
          async () =>
            (
              await query(
                "postgres",
                "select 1 from pg_stat_activity where datname = $1 and query like '%pg_sleep%' and state = 'active'",
                [db],
              )
            ).length > 0,
          30_000,
          "the slow migration in flight",
        );
        const during = await databaseRow(db);
        assert.equal(await canConnect(role, db), false, "the app role cannot connect before every migration ran");
        assert.equal(publicMayConnect(during), false);
        assert.equal(during?.datconnlimit, PROVISIONING_CONNECTION_LIMIT, "marked as the tool's while it migrates");
        run.child.kill("SIGKILL");
        assert.equal((await run.done).signal, "SIGKILL");
        // The server notices a vanished client only when the sleep ends: end the killed run's sessions now,
        // as a restart or the end of pg_sleep would; its transaction rolls back.
        await query("postgres", "select pg_terminate_backend(pid) from pg_stat_activity where datname = $1", [db]);
        await waitFor(
          async () => (await query("postgres", "select 1 from pg_stat_activity where datname = $1", [db])).length === 0,
          30_000,
          "the killed run's session to end",
        );
        assert.equal(await canConnect(role, db), false);

        const status = await fleet.run(["status", "--json"]);
        assert.equal(byDatabase(parseJson<StatusJson>(status.stdout).tenants).get(db)?.state, "not-provisioned");
        const migrate = await fleet.run(["migrate", "--json"]);
        assert.equal(migrate.code, 1, "migrate does not provision: it says the provisioning was cut short");
        assert.match(parseJson<FleetJson>(migrate.stdout).tenants[0]?.error ?? "", /cut short/);

        const again = await fleet.run(["all", NO_TEMPLATE, "--app-role", role, "--json"]);
        assert.equal(again.code, 0, again.stderr);
        const tenant = byDatabase(parseJson<FleetJson>(again.stdout).tenants).get(db);
        assert.equal(tenant?.result, "provisioned");
        assert.deepEqual(await appliedMigrations(db), [...SAMPLE, "20240301000000_slow.js"]);
        const row = await databaseRow(db);
        assert.equal(row?.datconnlimit, -1);
        assert.equal(row?.comment, null);
        assert.equal(await canConnect(role, db), true, "the app role is granted once it is ready");
        assert.equal(publicMayConnect(row), false);
      }),
    );
  });
});

describe("kill -9 at any point of provisioning", () => {
  it("whenever the CLI is killed, the next run finishes every school: migrated, granted, unmarked, none closed", async () => {
    await withRole((role) =>
      withFleet({}, async (fleet) => {
        const names = fleet.numberedDbs("kill", 6);
        await fleet.addTenants(names);
        // Kill at spread-out moments: before, during and after CREATE DATABASE, the opening, the migrations, the finish.
        for (const delayMs of [150, 400, 700, 1000, 1500]) {
          const run = fleet.start(["all", NO_TEMPLATE, "--app-role", role, "--concurrency", "3"]);
          await new Promise((resolve) => setTimeout(resolve, delayMs));
          run.child.kill("SIGKILL");
          await run.done;
          for (const db of names) {
            const row = await databaseRow(db);
            if (row && row.datconnlimit !== PROVISIONING_CONNECTION_LIMIT) {
              assert.equal(await canConnect(role, db), true, `${db}: unmarked only once ready`);
            } else if (row) {
              // Killed right after CREATE DATABASE: PUBLIC still has CONNECT, but the database accepts no connection.
              const open = row.datallowconn && (await canConnect(role, db));
              assert.equal(open, false, `${db}: marked, so not yet open to the app role`);
            }
          }
        }
        const again = await fleet.run(["all", NO_TEMPLATE, "--app-role", role, "--json"]);
        assert.equal(again.code, 0, again.stderr);
        for (const db of names) {
          assert.deepEqual(await appliedMigrations(db), SAMPLE, db);
          const row = await databaseRow(db);
          assert.equal(row?.datallowconn, true, `${db}: open`);
          assert.equal(row?.datconnlimit, -1, `${db}: unmarked`);
          assert.equal(row?.comment, null, `${db}: no provisioning comment left`);
          assert.equal(await canConnect(role, db), true, `${db}: granted`);
          assert.equal(publicMayConnect(row), false, `${db}: PUBLIC has no CONNECT`);
        }
        const status = await fleet.run(["status", "--json", "--check"]);
        assert.equal(status.code, 0, status.stdout);
      }),
    );
  });
});
