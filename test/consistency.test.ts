// Fleet consistency: `diff` (each school's schema against the files' or one
// school's) and edited migrations (a file changed after it was applied).
import assert from "node:assert/strict";
import { appendFileSync } from "node:fs";
import { describe, it } from "node:test";
import { createMarkedDatabaseSql } from "../src/core/provisioning.ts";
import { scratchPrefix } from "../src/core/scratch-database.ts";
import {
  byDatabase,
  databasesLike,
  type Fleet,
  type FleetJson,
  MigrationGate,
  parseJson,
  query,
  SAMPLE,
  SERVER,
  type StatusJson,
  tableMigration,
  useFleet,
  waitFor,
  withPlainKnex,
} from "./helpers.ts";

interface ObjectJson {
  kind: string;
  name: string;
  definition: string;
}

/** `diff --json`. */
interface DiffJson {
  reference: { kind: string; database: string; id?: string; fingerprint: string; objects: number };
  groups: { fingerprint: string; identicalToReference: boolean; tenants: string[] }[];
  tenants: {
    id: string;
    database: string;
    state: string;
    added: ObjectJson[];
    missing: ObjectJson[];
    changed: { kind: string; name: string; reference: string; tenant: string }[];
    migrations?: string[];
    error?: string;
  }[];
}

const INDEX_MIGRATION = "20240101000003_index_menu_item_name.js";

const names = (objects: { kind: string; name: string }[]) => objects.map((o) => `${o.kind} ${o.name}`).sort();

describe("consistency", { concurrency: 2 }, () => {
  describe("diff", { concurrency: 1 }, () => {
    let fleet: Fleet;
    let schools: string[];
    let ids: string[];
    let altered: string;
    let behind: string;
    /** This fleet's scratch databases (its catalog is their admin database): none may outlive a run. */
    const scratchDatabases = () =>
      databasesLike(`${scratchPrefix({ database: fleet.catalog, user: decodeURIComponent(SERVER.username) })}%`);

    useFleet(async (f) => {
      fleet = f;
      fleet.writeMigration(
        INDEX_MIGRATION,
        `export const up = (knex) => knex.schema.alterTable("menu_item", (t) => t.index(["name"], "menu_item_name_index"));
export const down = (knex) => knex.schema.alterTable("menu_item", (t) => t.dropIndex(["name"], "menu_item_name_index"));
`,
      );
      schools = fleet.numberedDbs("school", 6);
      behind = fleet.db("behind");
      ids = await fleet.addMigrated([...schools, behind]);
      altered = schools[2] as string;
      // By hand, on one school: a column added, an index dropped.
      await query(altered, "alter table lunch_day add column hand_note text");
      await query(altered, "drop index menu_item_name_index");
      // One school a migration behind.
      const rollback = await fleet.run(["rollback", behind, "--to", SAMPLE[2] as string]);
      assert.equal(rollback.code, 0, rollback.stderr);
    });

    it("diff --check names the altered school and exactly its two objects; the others are identical; pending is not compared", async () => {
      const result = await fleet.run(["diff", "--check", "--json"]);
      assert.equal(result.code, 1, result.stderr);
      const json = parseJson<DiffJson>(result.stdout);
      assert.equal(json.reference.kind, "scratch");
      assert.match(json.reference.database, /^tenant_migrate_diff_/);
      const tenants = byDatabase(json.tenants);
      const school = tenants.get(altered);
      assert.equal(school?.state, "different");
      assert.deepEqual(names(school.added), ["column public.lunch_day.hand_note"]);
      assert.equal(school.added[0]?.definition, "text");
      assert.deepEqual(names(school.missing), ["index public.menu_item_name_index"]);
      assert.match(school.missing[0]?.definition ?? "", /INDEX ON public\.menu_item USING btree \(name\)/);
      assert.deepEqual(school.changed, []);
      for (const other of schools.filter((s) => s !== altered)) {
        assert.equal(tenants.get(other)?.state, "identical", other);
        assert.deepEqual([tenants.get(other)?.added, tenants.get(other)?.missing], [[], []]);
      }
      assert.equal(tenants.get(behind)?.state, "pending");
      assert.deepEqual(tenants.get(behind)?.migrations, [INDEX_MIGRATION]);
      assert.deepEqual(
        json.groups.map((g) => [g.identicalToReference, [...g.tenants].sort()]),
        [
          [true, schools.filter((s) => s !== altered).sort()],
          [false, [altered]],
        ],
      );
      assert.deepEqual(await scratchDatabases(), [], "the scratch database was dropped");

      const text = await fleet.run(["diff"]);
      assert.equal(text.code, 0, "without --check a difference is reported, not a failure");
      assert.match(text.stdout, /^✔ 5 schools identical to the reference$/m);
      assert.match(
        text.stdout,
        new RegExp(`^✖ 1 school differs from the reference \\(fingerprint [0-9a-f]{12}\\): ${altered}$`, "m"),
      );
      assert.match(text.stdout, /^ {4}\+ column public\.lunch_day\.hand_note: text$/m);
      assert.match(text.stdout, /^ {4}- index public\.menu_item_name_index: /m);
      assert.match(
        text.stdout,
        new RegExp(`^• ${behind} \\(id ${ids[6]}\\) pending, not compared: ${INDEX_MIGRATION}$`, "m"),
      );
      assert.match(text.stdout, /^7 schools: 5 identical, 1 different, 1 pending$/m);
      assert.deepEqual(await scratchDatabases(), []);
    });

    it("--against a school compares with that school; the schools named alone are compared", async () => {
      const against = await fleet.run(["diff", "--against", schools[0] as string, "--json", "--check", ...schools]);
      assert.equal(against.code, 1, against.stderr);
      const json = parseJson<DiffJson>(against.stdout);
      assert.equal(json.reference.kind, "tenant");
      assert.equal(json.reference.database, schools[0]);
      assert.equal(json.tenants.length, schools.length);
      const school = byDatabase(json.tenants).get(altered);
      assert.deepEqual(names(school?.added ?? []), ["column public.lunch_day.hand_note"]);
      assert.deepEqual(names(school?.missing ?? []), ["index public.menu_item_name_index"]);
      assert.equal(byDatabase(json.tenants).get(schools[1] as string)?.state, "identical");

      // Seen from the altered school, the others have the index and lack the column.
      const reverse = parseJson<DiffJson>(
        (await fleet.run(["diff", "--against", altered, "--json", schools[0] as string])).stdout,
      );
      assert.deepEqual(names(reverse.tenants[0]?.added ?? []), ["index public.menu_item_name_index"]);
      assert.deepEqual(names(reverse.tenants[0]?.missing ?? []), ["column public.lunch_day.hand_note"]);

      const identical = await fleet.run(["diff", "--check", schools[0] as string, schools[1] as string]);
      assert.equal(identical.code, 0, identical.stdout + identical.stderr);

      const pendingReference = await fleet.run(["diff", "--against", behind]);
      assert.equal(pendingReference.code, 2, "a reference that is not up to date is a usage error");
      assert.match(pendingReference.stderr, /cannot be compared \(pending\)/);
      assert.deepEqual(await scratchDatabases(), [], "--against makes no scratch database");
    });

    it("views, functions, triggers, sequences, types and changed columns are described and compared", async () => {
      const school = schools[3] as string;
      await query(
        school,
        `create type meal as enum ('breakfast', 'lunch');
         create domain allergen_code as text check (value ~ '^[A-Z]+$');
         create view published_week as select * from lunch_week where is_published;
         create materialized view day_count as select count(*) as n from lunch_day;
         create sequence ticket_seq start 100;
         create function touch() returns trigger language plpgsql as $$ begin return new; end $$;
         create trigger lunch_day_touch before update on lunch_day for each row execute function touch();
         create aggregate text_concat(text) (sfunc = textcat, stype = text);
         alter table menu_item alter column allergens type varchar(200);`,
      );
      const result = await fleet.run(["diff", "--json", school]);
      assert.equal(result.code, 0, result.stderr);
      const json = parseJson<DiffJson>(result.stdout);
      const tenant = json.tenants[0];
      assert.equal(tenant?.state, "different");
      assert.deepEqual(names(tenant.added), [
        "aggregate public.text_concat(text)",
        "function public.touch()",
        "materialized view public.day_count",
        "sequence public.ticket_seq",
        "trigger public.lunch_day.lunch_day_touch",
        "type public.allergen_code",
        "type public.meal",
        "view public.published_week",
      ]);
      assert.deepEqual(tenant.missing, []);
      assert.deepEqual(tenant.changed, [
        { kind: "column", name: "public.menu_item.allergens", reference: "text", tenant: "character varying(200)" },
      ]);
      const def = (kind: string) => tenant.added.find((o) => o.kind === kind)?.definition ?? "";
      assert.equal(
        def("trigger"),
        "CREATE TRIGGER BEFORE UPDATE ON public.lunch_day FOR EACH ROW EXECUTE FUNCTION touch()",
      );
      assert.match(def("function"), /^returns trigger, definition md5 [0-9a-f]{32}$/);
      assert.match(def("sequence"), /^bigint start 100 increment 1 /);
    });
  });

  describe("diff on a database closed to connections", { concurrency: 1 }, () => {
    let fleet: Fleet;
    useFleet((f) => {
      fleet = f;
    });

    it("says what status says: half-made is not provisioned, its provisioning cut short; operator-closed is closed; --check exits 1", async () => {
      const [open, halfMade, closed] = fleet.dbs("open", "half_made", "closed");
      await fleet.addMigrated([open, closed]);
      await query("postgres", `alter database ${closed} with allow_connections false`);
      // Exactly what a provisioning run killed right after its CREATE DATABASE leaves: closed, marked as the tool's.
      await query("postgres", createMarkedDatabaseSql(halfMade));
      const [halfMadeId] = await fleet.addTenants([halfMade]);

      const result = await fleet.run(["diff", "--check", "--json"]);
      assert.equal(result.code, 1, result.stderr);
      const tenants = byDatabase(parseJson<DiffJson>(result.stdout).tenants);
      assert.equal(tenants.get(open)?.state, "identical");
      assert.equal(tenants.get(halfMade)?.state, "not-provisioned");
      assert.equal(
        tenants.get(halfMade)?.error,
        `database "${halfMade}" was created but its provisioning was cut short: run \`tenant-migrate provision ${halfMadeId}\``,
      );
      assert.equal(tenants.get(closed)?.state, "closed");
      assert.match(
        tenants.get(closed)?.error ?? "",
        /closed to connections \(ALLOW_CONNECTIONS false\) by an operator/,
      );

      const status = await fleet.run(["status", "--json"]);
      const states = byDatabase(parseJson<StatusJson>(status.stdout).tenants);
      for (const database of [open, halfMade, closed]) {
        const expected = states.get(database)?.state === "up-to-date" ? "identical" : states.get(database)?.state;
        assert.equal(tenants.get(database)?.state, expected, `${database}: diff and status agree`);
      }

      const text = await fleet.run(["diff", "--check"]);
      assert.equal(text.code, 1, text.stderr);
      assert.match(
        text.stdout,
        new RegExp(`^○ ${halfMade} \\(id ${halfMadeId}\\) not provisioned: .*provisioning was cut short`, "m"),
      );
      assert.match(text.stdout, new RegExp(`^✖ ${closed} \\(id \\d+\\) closed: connections not allowed`, "m"));
      assert.match(text.stdout, /^3 schools: 1 identical, 1 closed, 1 not provisioned$/m);
    });
  });

  describe("diff's scratch database", { concurrency: 1 }, () => {
    let fleet: Fleet;
    const scratchDatabases = () =>
      databasesLike(`${scratchPrefix({ database: fleet.catalog, user: decodeURIComponent(SERVER.username) })}%`);
    useFleet(
      async (f) => {
        fleet = f;
        await fleet.addMigrated([fleet.db("one")]);
      },
      { each: true },
    );

    it("is dropped when a migration fails in it (exit 2, nothing read), and a dead run's leftover is dropped", async () => {
      // A dead run's scratch database (no live session holds its lock).
      const leftover = `${scratchPrefix({ database: fleet.catalog, user: decodeURIComponent(SERVER.username) })}deadbeef0000`;
      await query("postgres", `create database ${leftover}`);
      fleet.writeMigration(
        "20250301000000_breaks.js",
        `export async function up(knex) { await knex.raw("select * from no_such_table"); }
export async function down() {}
`,
      );
      const result = await fleet.run(["diff", "--json"]);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, /cannot build the reference database from the migration files: .*no_such_table/);
      assert.match(parseJson<{ error: string }>(result.stdout).error, /no_such_table/);
      assert.deepEqual(await scratchDatabases(), [], "this run's and the dead run's scratch databases are gone");
    });

    it("is dropped when the run is interrupted while it is being built (exit 130)", async () => {
      // The scratch database's build waits at the gate while the signal comes.
      const gate = new MigrationGate(fleet);
      fleet.writeMigration("20250301000000_slow.js", gate.migration("slow_table"));
      const run = fleet.start(["diff"]);
      await gate.waitForArrivals(1);
      assert.equal((await scratchDatabases()).length, 1, "the scratch database is being built");
      run.child.kill("SIGINT");
      await waitFor(() => run.output().stderr.includes("SIGINT: finishing what is in flight"), 20_000, "SIGINT taken");
      gate.open();
      const result = await run.done;
      assert.equal(result.code, 130, result.stderr);
      assert.deepEqual(await scratchDatabases(), []);
    });
  });

  describe("edited migrations", { concurrency: 1 }, () => {
    let fleet: Fleet;
    useFleet(
      (f) => {
        fleet = f;
      },
      { each: true },
    );

    it("status shows a file edited after it ran as edited on the schools that ran the old version only", async () => {
      const [a, b, c, legacy] = fleet.dbs("a", "b", "c", "legacy");
      await fleet.addMigrated([a, b]);
      const name = "20250101000000_create_allergen.js";
      const file = fleet.writeMigration(name, tableMigration("allergen"));
      const migrate = await fleet.run(["migrate"]);
      assert.equal(migrate.code, 0, migrate.stderr);
      // Migrated by plain knex before the tool knew it: no checksums.
      await query("postgres", `create database ${legacy}`);
      await withPlainKnex(legacy, (db) => db.migrate.latest({ directory: fleet.appMigrations }));
      await fleet.addTenants([legacy]);

      appendFileSync(file, "// edited after it ran on a and b\n");
      await fleet.addTenants([c]);
      const all = await fleet.run(["all", "--json"]);
      assert.equal(all.code, 0, "an edited file is a warning, not a failure");
      const results = byDatabase(parseJson<FleetJson>(all.stdout).tenants);
      assert.equal(results.get(c)?.result, "provisioned");
      assert.equal(results.get(a)?.result, "up-to-date");
      // The first of a and b to be read gets the notice in full; the other is folded into "1 more like" it.
      assert.match(all.stderr, new RegExp(`(${a}|${b}): changed since applied here \\(edited\\): ${name}`));
      assert.match(all.stderr, /1 more like "<school>: changed since applied here \(edited\)/);
      assert.doesNotMatch(all.stderr, new RegExp(`${c}: changed since applied`));

      const status = await fleet.run(["status", "--json"]);
      assert.equal(status.code, 0, status.stderr);
      const tenants = byDatabase(parseJson<StatusJson>(status.stdout).tenants);
      assert.equal(tenants.get(a)?.state, "edited");
      assert.deepEqual(tenants.get(a)?.edited, [name]);
      assert.equal(tenants.get(b)?.state, "edited");
      assert.deepEqual(tenants.get(b)?.edited, [name]);
      assert.equal(tenants.get(c)?.state, "up-to-date", "c ran the new version");
      assert.deepEqual(tenants.get(c)?.edited, []);
      assert.equal(tenants.get(legacy)?.state, "up-to-date", "no checksum: not reported as edited");
      assert.deepEqual(tenants.get(legacy)?.edited, []);

      const check = await fleet.run(["status", "--check"]);
      assert.equal(check.code, 1);
      // The text view names the school, the state and the file on one line.
      assert.match(check.stdout, new RegExp(`^.*${a} .*edited.*${name}.*$`, "m"));
      assert.doesNotMatch(check.stdout, new RegExp(`^.*${c} .*edited.*$`, "m"));

      // A rollback forgets the checksum; applying the file again records the new one.
      const rollback = await fleet.run(["rollback", a]);
      assert.equal(rollback.code, 0, rollback.stderr);
      assert.deepEqual(
        await query(a, "select name from tenant_migrate_checksums order by name"),
        SAMPLE.map((n) => ({ name: n })),
      );
      assert.equal((await fleet.run(["migrate", a])).code, 0);
      const after = byDatabase(parseJson<StatusJson>((await fleet.run(["status", "--json", a])).stdout).tenants);
      assert.equal(after.get(a)?.state, "up-to-date");
    });

    it("a migration that fails leaves no checksum (it commits with the migration)", async () => {
      const [school] = fleet.dbs("failing");
      await fleet.addMigrated([school]);
      const name = "20250201000000_fails.js";
      fleet.writeMigration(
        name,
        `export async function up(knex) { await knex.schema.createTable("half", (t) => t.increments("id")); throw new Error("boom"); }
export async function down() {}
`,
      );
      const migrate = await fleet.run(["migrate", school]);
      assert.equal(migrate.code, 1);
      const rows = await query(school, "select name from tenant_migrate_checksums where name = $1", [name]);
      assert.deepEqual(rows, []);
    });
  });
});
