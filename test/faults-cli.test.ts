// Faults a run meets from its surroundings: a reader that goes away (`| head
// -1`, quitting less), a dropped SSH session (SIGHUP), a migration that prints
// into a --json document, and secrets in what is printed and stored.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  appliedMigrations,
  blockFirstMigration,
  type Fleet,
  type FleetJson,
  type HistoryJson,
  MigrationGate,
  parseJson,
  query,
  SAMPLE,
  SERVER,
  slowMigration,
  urlFor,
  useFleet,
  waitFor,
  withFleet,
} from "./helpers.ts";

/** What a crash prints: Node's stack frames or an unhandled EPIPE. */
const CRASH = /EPIPE|\n\s+at |Unhandled|node:internal/;

/** The catalog's history rows, each with whether it was finished. */
async function historyRows(fleet: Fleet): Promise<{ database: string; result: string; finished: boolean }[]> {
  return query(
    fleet.catalog,
    "select school_database as database, result, finished_at is not null as finished from tenant_migrate_history order by id",
  );
}

/**
 * After an interrupted `all`: every history row is final, schools were either
 * finished whole (all migrations applied) or skipped, and some were skipped.
 */
async function assertInterruptedCleanly(fleet: Fleet, names: string[]): Promise<void> {
  const rows = await historyRows(fleet);
  assert.equal(rows.length, names.length, "one history row per school");
  for (const row of rows) {
    assert.ok(row.finished && row.result !== "running", `${row.database}: history row is final (${row.result})`);
    assert.ok(["provisioned", "skipped"].includes(row.result), `${row.database}: ${row.result}`);
    if (row.result === "provisioned") assert.equal((await appliedMigrations(row.database)).length, 4);
  }
  assert.ok(
    rows.some((r) => r.result === "skipped"),
    "nothing new started: some schools were skipped",
  );
  assert.ok(
    rows.some((r) => r.result === "provisioned"),
    "the schools in flight finished",
  );
}

describe("a closed stdout or stderr, and SIGHUP, end a run like SIGINT", () => {
  let fleet: Fleet;
  useFleet(
    (f) => {
      fleet = f;
      fleet.writeMigration("20240201000000_slow.js", slowMigration("slow_table", 0.3));
    },
    { each: true },
  );

  it("`all | head -1`: the schools in flight finish, the rest are skipped, history is final, exit 130, no stack trace", async () => {
    const names = fleet.numberedDbs("pipe", 20);
    await fleet.addTenants(names);
    const run = fleet.start(["all", "--concurrency", "4"]);
    // The reader takes one line and goes away, as `head -1` does.
    let seen = "";
    run.child.stdout?.on("data", (chunk) => {
      seen += chunk;
      if (seen.includes("\n")) run.child.stdout?.destroy();
    });
    const result = await run.done;
    assert.equal(result.code, 130, result.stderr);
    assert.doesNotMatch(result.stderr, CRASH);
    assert.match(result.stderr, /stdout was closed: finishing what is in flight; no new tenant will start/);
    await assertInterruptedCleanly(fleet, names);

    const next = await fleet.run(["all", "--json"]);
    assert.equal(next.code, 0, next.stderr);
    for (const database of names) assert.equal((await appliedMigrations(database)).length, 4);
  });

  it("a closed stderr under --json: the document still comes, marked interrupted, exit 130", async () => {
    const names = fleet.numberedDbs("err", 20);
    await fleet.addTenants(names);
    const run = fleet.start(["all", "--json", "--concurrency", "4"]);
    let seen = "";
    // Closed once a school has finished (the run's header comes on stderr before any school starts).
    run.child.stderr?.on("data", (chunk) => {
      seen += chunk;
      if (/ provisioned/.test(seen)) run.child.stderr?.destroy();
    });
    const result = await run.done;
    assert.equal(result.code, 130, seen);
    const json = parseJson<FleetJson>(result.stdout);
    assert.equal(json.interrupted, true);
    assert.ok(json.summary.skipped > 0);
    await assertInterruptedCleanly(fleet, names);
  });

  it("SIGHUP (a dropped SSH session): the schools in flight finish, history is final, exit 130", async () => {
    // In place of the slow migration: the four schools in flight wait at the gate while the signal comes.
    const gate = new MigrationGate(fleet);
    fleet.writeMigration("20240201000000_slow.js", gate.migration("slow_table"));
    const names = fleet.numberedDbs("hup", 20);
    await fleet.addTenants(names);
    const run = fleet.start(["all", "--no-template", "--concurrency", "4"]);
    await gate.waitForArrivals(4);
    run.child.kill("SIGHUP");
    await waitFor(() => run.output().stderr.includes("SIGHUP: finishing what is in flight"), 20_000, "SIGHUP taken");
    gate.open();
    const result = await run.done;
    assert.equal(gate.arrived(), 4, "no school started after the signal");
    assert.equal(result.code, 130, result.stderr);
    assert.equal(result.signal, null);
    assert.doesNotMatch(result.stderr, CRASH);
    assert.match(result.stderr, /SIGHUP: finishing what is in flight/);
    assert.match(result.stdout, /\(interrupted\)/);
    await assertInterruptedCleanly(fleet, names);
  });
});

describe("--json with a migration that prints", () => {
  let fleet: Fleet;
  useFleet((f) => {
    fleet = f;
  });

  it("stdout is still exactly one JSON document; what the migration printed is on stderr", async () => {
    fleet.writeMigration(
      "20240201000000_chatty.js",
      `export async function up(knex) {
  console.log("chatty: console.log {");
  console.info("chatty: console.info");
  console.debug("chatty: console.debug");
  console.dir({ chatty: "console.dir" });
  process.stdout.write("chatty: process.stdout.write\\n");
  await knex.schema.createTable("chatty", (t) => { t.increments("id"); });
}
export async function down(knex) {
  await knex.schema.dropTable("chatty");
}
`,
    );
    const names = fleet.numberedDbs("chatty", 2);
    await fleet.addTenants(names);
    const result = await fleet.run(["all", "--json"]);
    assert.equal(result.code, 0, result.stderr);
    const json = parseJson<FleetJson>(result.stdout);
    assert.equal(json.ok, true);
    assert.deepEqual(
      json.tenants.map((t) => t.result),
      ["provisioned", "provisioned"],
    );
    for (const what of ["console.log {", "console.info", "console.debug", "console.dir", "process.stdout.write"]) {
      assert.ok(result.stderr.includes(`chatty: ${what}`) || result.stderr.includes(`'${what}'`), what);
    }
  });
});

describe("redaction", () => {
  it("a catalog password `lunch` never turns create_lunch_week.js or adv_lunch1 into something else", async () => {
    let role = "";
    try {
      await withFleet({}, async (fleet) => {
        role = `${fleet.prefix}_lunch_role`;
        await query("postgres", `create role ${role} login superuser password 'lunch'`);
        const env = { CATALOG_DATABASE_URL: urlFor(fleet.catalog, { name: role, password: "lunch" }) };
        const [ok, broken] = fleet.dbs("adv_lunch1", "lunch");
        await fleet.addTenants([ok, broken]);
        await blockFirstMigration(broken);
        // No template: its name would be made under this role, not the suite's.
        const json = await fleet.run(["all", "--json", "--no-template"], { env });
        assert.equal(json.code, 1, json.stderr);
        const doc = parseJson<FleetJson>(json.stdout);
        const [first, second] = doc.tenants;
        assert.equal(first?.database, ok);
        assert.equal(first?.name, ok);
        assert.deepEqual(first?.migrations, SAMPLE);
        assert.equal(second?.database, broken);
        assert.match(second?.error ?? "", /relation "lunch_week" already exists/);
        // The file names stand whole in the run's header and in the school's line.
        assert.match(json.stderr, new RegExp(`migration files \\(3\\): ${SAMPLE.join(", ")}`));
        assert.match(json.stderr, new RegExp(`${ok} \\(id \\d+\\) provisioned: 3 migrations, up to ${SAMPLE[2]}`));

        const text = await fleet.run(["status", "--verbose"], { env });
        assert.match(text.stdout, new RegExp(`${ok} \\(id \\d+\\) up to date`));
        const all = `${json.stdout}${json.stderr}${text.stdout}${text.stderr}`;
        // What redaction by substring did: a mask glued into a word (create_***_week.js, adv_***1).
        assert.doesNotMatch(all, /\w\*\*\*|\*\*\*\w/);
        assert.ok(all.includes(SAMPLE[0] as string) && all.includes(ok));
        const history = await fleet.run(["history", "--json"], { env });
        assert.ok(history.stdout.includes(`"${SAMPLE[0]}"`), history.stdout);
        assert.doesNotMatch(history.stdout, /\w\*\*\*|\*\*\*\w/);
      });
    } finally {
      if (role) await query("postgres", `drop role if exists ${role}`);
    }
  });

  describe("a migration that fails on a statement with a secret in it", () => {
    let fleet: Fleet;
    let school: string;
    useFleet(async (f) => {
      fleet = f;
      school = fleet.db("literal");
      await fleet.addMigrated([school]);
    });

    const leaks = async (secret: string, outputs: string[]) => {
      for (const text of outputs) assert.ok(!text.includes(secret), `printed: ${text}`);
      const rows = await query<{ error: string | null }>(fleet.catalog, "select error from tenant_migrate_history");
      for (const row of rows) assert.ok(!(row.error ?? "").includes(secret), `stored: ${row.error}`);
    };

    it("a literal written in the SQL is neither printed nor stored in history", async () => {
      const owner = decodeURIComponent(SERVER.username);
      fleet.writeMigration(
        "20240301000000_role.js",
        `export async function up(knex) {
  await knex.raw("create role ${owner} password 'S3cretLiteral'");
}
export async function down() {}
`,
      );
      const json = await fleet.run(["migrate", "--json"]);
      assert.equal(json.code, 1, json.stderr);
      const error = parseJson<FleetJson>(json.stdout).tenants[0]?.error ?? "";
      assert.match(
        error,
        /migration 20240301000000_role\.js failed: create role \S+ password '\*\*\*' - role "\S+" already exists \(SQLSTATE 42710\)/,
      );
      // The text view shows the failed statement with --verbose only.
      const text = await fleet.run(["migrate", "--verbose"]);
      assert.equal(text.code, 1, text.stderr);
      assert.match(text.stdout, /password '\*\*\*' - role "\S+" already exists/);
      const history = await fleet.run(["history", "--json"]);
      const entries = parseJson<HistoryJson>(history.stdout).history;
      assert.match(entries[0]?.error ?? "", /already exists/);
      await leaks("S3cretLiteral", [json.stdout, json.stderr, text.stdout, text.stderr, history.stdout]);
    });

    it("a binding knex writes into the failed statement is masked there and where PostgreSQL repeats it", async () => {
      fleet.writeMigration(
        "20240301000000_role.js",
        `export async function up(knex) {
  await knex.raw("select ?::int", ["S3cretBinding"]);
}
export async function down() {}
`,
      );
      const json = await fleet.run(["migrate", "--json"]);
      assert.equal(json.code, 1, json.stderr);
      const error = parseJson<FleetJson>(json.stdout).tenants[0]?.error ?? "";
      assert.match(error, /select \$1::int - invalid input syntax for type integer: "\*\*\*"/);
      await leaks("S3cretBinding", [json.stdout, json.stderr]);
    });
  });
});
