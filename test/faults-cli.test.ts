// Faults a run meets from its surroundings: a reader that goes away (`| head
// -1`, quitting less), a dropped SSH session (SIGHUP), a migration that prints
// into a --json document, secrets in what is printed and stored, and
// settings written the way people write them.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import {
  appliedMigrations,
  BIN,
  blockFirstMigration,
  type Fleet,
  type FleetJson,
  type HistoryJson,
  MigrationGate,
  parseJson,
  query,
  runCli,
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

describe("settings written the way people write them", () => {
  let dir: string;
  // The servers named here refuse connections: no retries, the settings' errors are what is checked.
  const cli = (args: string[], env: Record<string, string> = {}) =>
    runCli(args, { cwd: dir, env: { TENANT_MIGRATE_RETRIES: "0", ...env } });

  it('a % in a URL names the setting (never "URI malformed") and prints no password', async () => {
    dir = mkdtempSync(path.join(tmpdir(), "tenant-migrate-settings-"));
    try {
      const result = await cli(["status"], { CATALOG_DATABASE_URL: "postgres://app:50%off@127.0.0.1:1/catalog" });
      assert.equal(result.code, 2, result.stderr);
      assert.match(
        result.stderr,
        /CATALOG_DATABASE_URL: the password has a "%" that starts no %XX escape; write a % in a URL as %25/,
      );
      assert.doesNotMatch(result.stderr, /URI malformed|50%off/);
      const servers = await cli(["status"], {
        CATALOG_DATABASE_URL: "postgres://app@127.0.0.1:1/catalog",
        TENANT_SERVERS: JSON.stringify({ east: "postgres://app:x@127.0.0.1:1/%zz" }),
      });
      assert.equal(servers.code, 2, servers.stderr);
      assert.match(servers.stderr, /TENANT_SERVERS\.east: the database name has a "%"/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a # in an unquoted .env value gets the hint to quote it; a comment after a value does not", async () => {
    dir = mkdtempSync(path.join(tmpdir(), "tenant-migrate-settings-"));
    try {
      const env = path.join(dir, ".env");
      writeFileSync(env, "CATALOG_DATABASE_URL=postgres://app:pa#ss@127.0.0.1:1/catalog\n");
      const cut = await cli(["status"]);
      assert.equal(cut.code, 2, cut.stderr);
      assert.match(
        cut.stderr,
        /CATALOG_DATABASE_URL in .*\.env is cut at "#": quote the value: # starts a comment in \.env/,
      );
      assert.doesNotMatch(cut.stderr, /pa#ss|ss@/);

      writeFileSync(env, "PGHOST=127.0.0.1\nPGPORT=1\nPGPASSWORD=abc#def\n");
      const password = await cli(["status"]);
      assert.equal(password.code, 2, password.stderr);
      assert.match(password.stderr, /PGPASSWORD in .*\.env is cut at "#": quote the value/);

      // A comment after the value is what # is for: no hint, the connection is tried (and refused here).
      writeFileSync(env, "CATALOG_DATABASE_URL=postgres://app:pass@127.0.0.1:1/catalog # the catalog\n");
      const comment = await cli(["tenants", "list"]);
      assert.doesNotMatch(comment.stderr, /cut at "#"/);
      assert.match(comment.stderr, /cannot connect to the catalog postgres:\/\/app:\*\*\*@127\.0\.0\.1:1\/catalog/);
      // Quoted, the value is read whole.
      writeFileSync(env, 'PGHOST=127.0.0.1\nPGPORT=1\nPGPASSWORD="abc#def"\n');
      const quoted = await cli(["tenants", "list"]);
      assert.doesNotMatch(quoted.stderr, /cut at "#"/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("`node -- bin/tenant-migrate.js … --env-file X` reads X (the form README gives; without --, Node 20 takes --env-file)", () => {
    dir = mkdtempSync(path.join(tmpdir(), "tenant-migrate-settings-"));
    try {
      const missing = path.join(dir, "missing.env");
      const result = spawnSync(process.execPath, ["--", BIN, "status", "--env-file", missing], {
        cwd: dir,
        encoding: "utf8",
        env: { PATH: process.env.PATH ?? "" },
      });
      assert.equal(result.status, 2, result.stderr);
      assert.match(result.stderr, /--env-file: .*missing\.env does not exist/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
