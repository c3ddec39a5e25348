// The user runs their own PostgreSQL: a role with a password that may create
// databases owns the catalog, the catalog URL lives in a .env file, and rows
// are inserted by hand. No superuser is involved in what the tool does.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import {
  appliedMigrations,
  byDatabase,
  databaseExists,
  databasesLike,
  Fleet,
  type FleetJson,
  parseJson,
  query,
  urlFor,
} from "./helpers.ts";

interface Role {
  name: string;
  password: string;
}

/** Connects to `database` as `role`; resolves to current_user, rejects with PostgreSQL's error. */
async function connectAs(database: string, role: Role): Promise<string> {
  const client = new pg.Client({ connectionString: urlFor(database, role) });
  client.on("error", () => {});
  await client.connect();
  try {
    const { rows } = await client.query<{ user: string }>("select current_user as user");
    return rows[0]?.user as string;
  } finally {
    await client.end();
  }
}

async function databaseOwner(database: string): Promise<string | undefined> {
  const rows = await query<{ owner: string }>(
    "postgres",
    "select pg_get_userbyid(datdba) as owner from pg_database where datname = $1",
    [database],
  );
  return rows[0]?.owner;
}

async function tableOwner(database: string, table: string): Promise<string | undefined> {
  const rows = await query<{ owner: string }>(
    database,
    "select tableowner as owner from pg_tables where schemaname = 'public' and tablename = $1",
    [table],
  );
  return rows[0]?.owner;
}

function role(fleet: Fleet, name: string): Role {
  return { name: `${fleet.prefix}_${name}`, password: `Pw-${name}-${randomBytes(6).toString("hex")}` };
}

describe("a password role on the user's own PostgreSQL", () => {
  let fleet: Fleet;
  let owner: Role;
  let stranger: Role;
  let app: Role;
  const schools = ["lincoln", "roosevelt", "washington"];

  before(async () => {
    fleet = await Fleet.create({ migrateCatalog: false });
    owner = role(fleet, "owner");
    stranger = role(fleet, "stranger");
    app = role(fleet, "app");
    await query("postgres", `create role "${owner.name}" login createdb password '${owner.password}'`);
    await query("postgres", `create role "${stranger.name}" login password '${stranger.password}'`);
    await query("postgres", `create role "${app.name}" login password '${app.password}'`);
    // The catalog database, owned by the role.
    await query("postgres", `drop database "${fleet.catalog}"`);
    await query("postgres", `create database "${fleet.catalog}" owner "${owner.name}"`);
    // The URL comes from .env only, never through the environment.
    delete fleet.env.CATALOG_DATABASE_URL;
    writeFileSync(path.join(fleet.cwd, ".env"), `CATALOG_DATABASE_URL=${urlFor(fleet.catalog, owner)}\n`);
  });

  after(async () => {
    await fleet.cleanup();
    for (const r of [owner, stranger, app]) {
      if (!r) continue;
      // The role owns the template database its provisioning built.
      const owned = await query<{ datname: string }>(
        "postgres",
        "select datname from pg_database where datdba = (select oid from pg_roles where rolname = $1)",
        [r.name],
      );
      for (const { datname } of owned) await query("postgres", `drop database "${datname}" with (force)`);
      await query("postgres", `drop role if exists "${r.name}"`);
    }
  });

  /**
   * What the first test does, for the tests after it not to rely on it:
   * the catalog migrated and the three schools provisioned, as the role
   * (each step a no-op when already done).
   */
  async function schoolsMigrated(): Promise<void> {
    assert.equal((await fleet.run(["catalog", "migrate"])).code, 0);
    for (const school of schools) {
      await query(
        fleet.catalog,
        "insert into schools (school_name, school_database) values ($1, $2) on conflict do nothing",
        [`${school} school`, fleet.db(school)],
        owner,
      );
    }
    const all = await fleet.run(["all"]);
    assert.equal(all.code, 0, all.stderr);
  }

  it("migrates the catalog and every hand-inserted school as that role, which owns them all", async () => {
    const catalog = await fleet.run(["catalog", "migrate"]);
    assert.equal(catalog.code, 0, catalog.stderr);
    assert.equal(await tableOwner(fleet.catalog, "schools"), owner.name);
    assert.equal(await tableOwner(fleet.catalog, "knex_migrations"), owner.name);

    // Plain SQL as the role, the way a user adds schools by hand.
    for (const school of schools) {
      await query(
        fleet.catalog,
        "insert into schools (school_name, school_database) values ($1, $2)",
        [`${school} school`, fleet.db(school)],
        owner,
      );
    }

    const all = await fleet.run(["all", "--json"]);
    assert.equal(all.code, 0, all.stderr);
    const json = parseJson<FleetJson>(all.stdout);
    assert.deepEqual(
      json.tenants.map((t) => [t.database, t.result, t.migrations.length]),
      schools.map((s) => [fleet.db(s), "provisioned", 3]),
    );
    for (const school of schools) {
      const database = fleet.db(school);
      assert.ok(await databaseExists(database));
      assert.equal(await databaseOwner(database), owner.name, `${database} is owned by the role`);
      assert.equal((await appliedMigrations(database)).length, 3);
      assert.equal(await tableOwner(database, "lunch_week"), owner.name);
      assert.equal(await tableOwner(database, "knex_migrations"), owner.name);
    }
    for (const result of [catalog, all]) {
      assert.ok(!`${result.stdout}${result.stderr}`.includes(owner.password), "the password is never printed");
    }

    const status = await fleet.run(["status", "--check"]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /3 tenants: 3 up to date$/m);
  });

  it("fails a hostile row alone (exit 1) while the others succeed", async () => {
    await schoolsMigrated();
    const newcomer = fleet.db("newcomer");
    const hostileName = `${fleet.prefix}"; drop database "${fleet.catalog}"; --`;
    const [hostile] = await query<{ id: string }>(
      fleet.catalog,
      "insert into schools (school_name, school_database) values ('Hostile', $1) returning school_id::text as id",
      [hostileName],
      owner,
    );
    await query(
      fleet.catalog,
      "insert into schools (school_name, school_database) values ('New', $1)",
      [newcomer],
      owner,
    );
    // Any name under the prefix, the hostile one too: not only this fleet's own `${prefix}_` databases.
    const databasesBefore = await databasesLike(`${fleet.prefix}%`);

    const result = await fleet.run(["all", "--json"]);
    assert.equal(result.code, 1, result.stderr);
    const json = parseJson<FleetJson>(result.stdout);
    const byDb = byDatabase(json.tenants);
    assert.equal(byDb.get(hostileName)?.result, "failed");
    assert.equal(byDb.get(hostileName)?.id, hostile?.id);
    assert.match(
      byDb.get(hostileName)?.error ?? "",
      new RegExp(`school ${hostile?.id}: database name .* is not a lower-case`),
    );
    assert.equal(byDb.get(newcomer)?.result, "provisioned");
    for (const school of schools) assert.equal(byDb.get(fleet.db(school))?.result, "up-to-date");
    assert.deepEqual(json.summary, { ...json.summary, total: 5, succeeded: 4, failed: 1, skipped: 0 });

    assert.ok(await databaseExists(fleet.catalog), "the catalog is still there");
    assert.equal(await databaseOwner(newcomer), owner.name);
    const databasesAfter = await databasesLike(`${fleet.prefix}%`);
    assert.equal(databasesAfter.length, databasesBefore.length + 1, "only the newcomer's database was created");
    await query(fleet.catalog, "delete from schools where school_id = $1", [hostile?.id], owner);
  });

  it("a wrong password exits 2 without printing it", async () => {
    const wrong = { name: owner.name, password: `Wrong-${randomBytes(8).toString("hex")}` };
    writeFileSync(path.join(fleet.cwd, "wrong.env"), `CATALOG_DATABASE_URL=${urlFor(fleet.catalog, wrong)}\n`);
    for (const args of [["all"], ["status"], ["catalog", "migrate"], ["migrate", "--json"]]) {
      const result = await fleet.run([...args, "--env-file", "wrong.env"]);
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, new RegExp(`password authentication failed for user "${owner.name}"`));
      assert.ok(result.stderr.includes(`postgres://${owner.name}:***@`), result.stderr);
      for (const secret of [wrong.password, owner.password]) {
        assert.ok(!result.stdout.includes(secret), `${args.join(" ")}: stdout shows a password`);
        assert.ok(!result.stderr.includes(secret), `${args.join(" ")}: stderr shows a password`);
      }
    }
  });

  it("a tenant database is closed to roles without grants, open to its owner", async () => {
    await schoolsMigrated();
    const database = fleet.db("lincoln");
    await assert.rejects(connectAs(database, stranger), (error: Error & { code?: string }) => {
      assert.equal(error.code, "42501");
      assert.match(error.message, /permission denied for database/);
      return true;
    });
    assert.equal(await connectAs(database, owner), owner.name);
    // PUBLIC has no privilege on it at all.
    const acl = await query<{ acl: string }>(
      "postgres",
      "select coalesce(datacl::text, '') as acl from pg_database where datname = $1",
      [database],
    );
    assert.doesNotMatch(acl[0]?.acl ?? "", /(^|[{,])=/, "no grant to PUBLIC");
  });

  it("TENANT_MIGRATE_APP_ROLE (or --app-role) lets the app role connect to databases provisioned with it", async () => {
    await schoolsMigrated();
    const withEnv = fleet.db("app_env");
    const withFlag = fleet.db("app_flag");
    await query(
      fleet.catalog,
      "insert into schools (school_name, school_database) values ('App env', $1), ('App flag', $2)",
      [withEnv, withFlag],
      owner,
    );

    const provision = await fleet.run(["provision", withEnv], { env: { TENANT_MIGRATE_APP_ROLE: app.name } });
    assert.equal(provision.code, 0, provision.stderr);
    assert.equal(await connectAs(withEnv, app), app.name);

    const flag = await fleet.run(["all", "--app-role", app.name]);
    assert.equal(flag.code, 0, flag.stderr);
    assert.match(flag.stdout, new RegExp(`${withFlag} \\(id \\d+\\) provisioned`));
    assert.equal(await connectAs(withFlag, app), app.name);

    // The grant is only on the databases provisioned with it, and only for that role.
    await assert.rejects(connectAs(fleet.db("lincoln"), app), /permission denied for database/);
    await assert.rejects(connectAs(withEnv, stranger), /permission denied for database/);
    assert.equal(await databaseOwner(withEnv), owner.name);
  });

  it("a role that may not connect to the catalog is a catalog error (exit 2) for every command", async () => {
    await schoolsMigrated();
    await query("postgres", `revoke all on database "${fleet.catalog}" from public`);
    writeFileSync(path.join(fleet.cwd, "stranger.env"), `CATALOG_DATABASE_URL=${urlFor(fleet.catalog, stranger)}\n`);
    const masked = `postgres://${stranger.name}:***@`;
    const seen: Record<string, string> = {};
    const expected: Record<string, string> = {};
    for (const args of [
      ["status"],
      ["tenants", "list"],
      ["catalog", "status"],
      ["catalog", "migrate"],
      ["all"],
      ["catalog", "rollback"],
    ]) {
      const result = await fleet.run([...args, "--env-file", "stranger.env"]);
      assert.match(result.stderr, /permission denied for database/);
      assert.ok(!`${result.stdout}${result.stderr}`.includes(stranger.password));
      // Every command, checked before asserting, so that a failure lists them all.
      seen[args.join(" ")] =
        `exit ${result.code}, ${result.stderr.includes(masked) ? "names" : "does not name"} the catalog`;
      expected[args.join(" ")] = "exit 2, names the catalog";
    }
    assert.deepEqual(seen, expected);
    assert.equal(await tableOwner(fleet.catalog, "schools"), owner.name, "the catalog is as it was");
  });
});
