// Faults a run meets from its surroundings: a reader that goes away (`| head
// -1`, quitting less), a dropped SSH session (SIGHUP), a migration that prints
// into a --json document, secrets in what is printed and stored, and
// settings written the way people write them.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { appliedMigrations, type Fleet, type FleetJson, parseJson, query, useFleet, waitFor } from "./helpers.ts";

/** A migration that sleeps, so that a run has schools in flight when its reader goes. */
function slowMigration(table: string, seconds: number): string {
  return `export async function up(knex) {
  await knex.raw("select pg_sleep(${seconds})");
  await knex.schema.createTable("${table}", (t) => { t.increments("id"); });
}
export async function down(knex) {
  await knex.schema.dropTable("${table}");
}
`;
}

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
    run.child.stderr?.on("data", (chunk) => {
      seen += chunk;
      if (seen.includes("\n")) run.child.stderr?.destroy();
    });
    const result = await run.done;
    assert.equal(result.code, 130, seen);
    const json = parseJson<FleetJson>(result.stdout);
    assert.equal(json.interrupted, true);
    assert.ok(json.summary.skipped > 0);
    await assertInterruptedCleanly(fleet, names);
  });

  it("SIGHUP (a dropped SSH session): the schools in flight finish, history is final, exit 130", async () => {
    const names = fleet.numberedDbs("hup", 20);
    await fleet.addTenants(names);
    const run = fleet.start(["all", "--concurrency", "4"]);
    await waitFor(() => run.output().stdout.includes("provisioned"), 60_000, "a first school done");
    run.child.kill("SIGHUP");
    const result = await run.done;
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
