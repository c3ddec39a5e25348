// The operator's view: on a terminal a header, a live bar and a recap by
// cause with the rerun command; run ids; schools named by school_name;
// status counts; help; catalog text escaped; an empty catalog; and a
// 120-school run that stays within one screen.
import assert from "node:assert/strict";
import { cpSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { after, describe, it } from "node:test";
import {
  ANSI,
  appliedMigrations,
  BIN,
  blockFirstMigration,
  type Fleet,
  type FleetJson,
  HAS_SCRIPT,
  parseJson,
  query,
  runCli,
  runInTty,
  useFleet,
  withFleet,
} from "./helpers.ts";
import { screenOf } from "./screen.ts";

/** Spinner frames (braille) and the bar's cells: none may reach a log. */
const SPINNER_BITS = /[\u2800-\u28ff█░]/;
const ESC = String.fromCharCode(27);

/** Rows a terminal `columns` wide shows for these lines (long lines wrap). */
function terminalRows(lines: string[], columns: number): number {
  return lines.reduce((n, line) => n + Math.max(1, Math.ceil([...line].length / columns)), 0);
}

/** Twelve schools, the first two broken (a table in the first migration's way): their ids and broken databases. */
async function twelveSchools(fleet: Fleet): Promise<{ ids: string[]; broken: string[] }> {
  // The broken schools come first: with --concurrency 2 they fail before the others start.
  const dbs = fleet.numberedDbs("ov", 12);
  const broken = dbs.slice(0, 2);
  for (const db of broken) await blockFirstMigration(db);
  return { ids: await fleet.addTenants(dbs), broken };
}

describe("ops view: a new fleet of twelve, two failing, on a terminal", { skip: !HAS_SCRIPT }, () => {
  let fleet: Fleet;
  let ids: string[];
  let broken: string[];
  useFleet(async (f) => {
    fleet = f;
    ({ ids, broken } = await twelveSchools(fleet));
  });

  it("header, a live bar, failures as they happen, then the recap by cause and the rerun command", async () => {
    const run = await runInTty(fleet, ["all", "--concurrency", "2"], {
      env: { CI: undefined, NO_COLOR: "1" },
      columns: 100,
      timeoutMs: 120_000,
    });
    assert.equal(run.code, 1, run.tty);
    const raw = run.tty;
    // A bar with done/total, %, failed and ETA while schools were still left.
    const frames = [...raw.matchAll(/ (\d+)\/12 (\d+)% · (\d+) failed · \d+:\d\d elapsed · ETA/g)];
    assert.ok(frames.length > 0, `no progress bar drawn:\n${raw.slice(0, 2000)}`);
    const firstFailure = raw.indexOf(`${broken[0]} (id ${ids[0]}) failed: 20240101000000_create_lunch_week.js`);
    assert.ok(firstFailure >= 0, raw);
    const recap = raw.indexOf("failed, by cause:");
    assert.ok(firstFailure < recap, "the failure is printed before the end");
    const later = frames.filter((f) => (f.index ?? 0) > firstFailure && Number(f[1]) < 12);
    assert.ok(later.length > 0, "the live area went on below the failure while schools were left");
    assert.match(raw, /o?v\d+ {2}(?:20240101000000_create_lunch_week\.js|[\w.]+) · \d:\d\d|starting · \d:\d\d/);

    const screen = screenOf(raw);
    const text = screen.join("\n");
    assert.match(text, /tenant-migrate all: 12 tenants · concurrency 2 · run [0-9a-f]{8}/);
    assert.match(text, /catalog postgres:\/\/[^:]+:\*\*\*@/);
    assert.match(text, /12 tenants: 10 provisioned · 2 failed/);
    assert.match(
      text,
      /2 × 20240101000000_create_lunch_week\.js · SQLSTATE 42P07 · relation "lunch_week" already exists/,
    );
    assert.ok(screen.includes(`rerun the failed: tenant-migrate provision ${ids[0]} ${ids[1]} --concurrency 2`), text);
    // Successes are counted, not listed; the live area is gone at the end.
    assert.doesNotMatch(text, /provisioned: /);
    assert.doesNotMatch(text, SPINNER_BITS);
    const details = /details: tenant-migrate history --run ([0-9a-f]{8})/.exec(text);
    assert.ok(details, text);

    // The run id leads to the run's details.
    const runs = await fleet.run(["history", "--runs"]);
    assert.match(runs.stdout, new RegExp(`run ${details[1]}  all  12 tenants: .*10 provisioned.*2 failed`));
    const failed = await fleet.run(["history", "--run", details[1] as string, "--failed"]);
    assert.equal(failed.code, 0, failed.stderr);
    const lines = failed.stdout.trim().split("\n");
    assert.equal(lines.filter((l) => / failed error: /.test(l)).length, 2, failed.stdout);
    const whole = parseJson<{ run: { runId: string }; history: unknown[] }>(
      (await fleet.run(["history", "--run", details[1] as string, "--json"])).stdout,
    );
    assert.equal(whole.history.length, 12);
    assert.ok(whole.run.runId.startsWith(details[1] as string));
  });
});

describe("ops view: a fleet of twelve, two failing, provisioned", () => {
  let fleet: Fleet;
  let ids: string[];
  let broken: string[];
  // Provisioned here: the tests below only read, and leave the fleet as they found it.
  useFleet(async (f) => {
    fleet = f;
    ({ ids, broken } = await twelveSchools(fleet));
    const all = await fleet.run(["all"]);
    assert.equal(all.code, 1, all.stderr);
  });

  it("--json adds the run id and the summary by result", async () => {
    const json = parseJson<FleetJson & { run: string; summary: { byResult: Record<string, number> } }>(
      (await fleet.run(["migrate", "--json"])).stdout,
    );
    assert.match(json.run, /^[0-9a-f-]{36}$/);
    assert.deepEqual(json.summary.byResult, { failed: 2, "up-to-date": 10 });
    const history = await fleet.run(["history", "--run", json.run.slice(0, 8), "--json"]);
    assert.equal(parseJson<{ history: unknown[] }>(history.stdout).history.length, 12);
  });

  it("names schools by school_name too, and a typo gets a suggestion (exit 2)", async () => {
    await withFleet({}, async (own) => {
      const [, lincoln] = await own.addSchools(
        { name: "Roosevelt Middle", database: own.db("roosevelt") },
        { name: "Lincoln High", database: own.db("lincoln") },
      );
      assert.equal((await own.run(["all"])).code, 0);
      const byName = await own.run(["migrate", "lincoln high", "--json"]);
      assert.equal(byName.code, 0, byName.stderr);
      assert.deepEqual(
        parseJson<FleetJson>(byName.stdout).tenants.map((t) => t.id),
        [lincoln],
      );
      const typo = await own.run(["migrate", "Lincon High"]);
      assert.equal(typo.code, 2);
      assert.match(typo.stderr, /unknown tenant: Lincon High \(did you mean Lincoln High\?\)/);
    });
  });

  it("status: counts per state, only the schools that are not up to date, all with --verbose", async () => {
    const status = await fleet.run(["status"]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /12 tenants: 10 up to date · 2 pending/);
    const listed = status.stdout.split("\n").filter((l) => / \(id \d+\) /.test(l));
    assert.deepEqual(
      listed.map((l) => l.split(" ")[1]),
      broken,
    );
    const verbose = await fleet.run(["status", "--verbose"]);
    assert.equal(verbose.stdout.split("\n").filter((l) => / \(id \d+\) /.test(l)).length, 12);
    const one = await fleet.run(["status", ids[4] as string]);
    assert.match(one.stdout, /^1 tenant: 1 up to date$/m);
    // --json is unchanged: every selected school.
    assert.equal(parseJson<{ tenants: unknown[] }>((await fleet.run(["status", "--json"])).stdout).tenants.length, 12);
  });

  it("help: examples for every command, global flags under subcommands, environment and exit codes at the top", async () => {
    const top = await fleet.run(["--help"]);
    assert.match(top.stdout, /Environment[^\n]*:\n(?:.*\n)*\s+CATALOG_DATABASE_URL/);
    assert.match(top.stdout, /Exit codes:\n\s+0 .*\n\s+1 .*\n\s+2 .*\n\s+130 /);
    for (const command of [
      ["all"],
      ["provision"],
      ["migrate"],
      ["rollback"],
      ["status"],
      ["make"],
      ["unlock"],
      ["drop"],
      ["history"],
      ["tenants", "add"],
      ["tenants", "list"],
      ["catalog", "migrate"],
      ["catalog", "status"],
    ]) {
      const help = await fleet.run([...command, "--help"]);
      assert.equal(help.code, 0, command.join(" "));
      assert.match(help.stdout, /\nExamples:\n {2}tenant-migrate /, command.join(" "));
      assert.match(help.stdout, /Global Options:[\s\S]*--catalog-url/, command.join(" "));
    }
  });
});

describe("ops view: the rerun command repeats the settings the run was given", () => {
  it("migrate --app-migrations DIR --concurrency 2: the printed line, run by a shell once the school is fixed, migrates it from DIR", async () => {
    await withFleet({}, async (fleet) => {
      // The migrations are in a folder only the flag names (with a space: the line must quote it); the default
      // ./app_migrations holds only the sample ones, and APP_MIGRATIONS_DIR is unset.
      const dir = "db/tenant app";
      cpSync(fleet.appMigrations, path.join(fleet.cwd, dir), { recursive: true });
      const env = { APP_MIGRATIONS_DIR: undefined };
      const flags = ["--app-migrations", dir, "--concurrency", "2"];
      const [good, bad] = fleet.dbs("good", "bad");
      const [, badId] = await fleet.addTenants([good, bad]);
      const all = await fleet.run(["all", ...flags], { env });
      assert.equal(all.code, 0, all.stderr);
      const note = "20240201000000_add_note.js";
      writeFileSync(
        path.join(fleet.cwd, dir, note),
        'export const up = (knex) => knex.raw("create table note (id int)");\nexport const down = (knex) => knex.raw("drop table note");\n',
      );
      await query(bad, "create table note (id int)");

      const run = await fleet.run(["migrate", ...flags], { env });
      assert.equal(run.code, 1, run.stderr);
      const line = run.stdout.split("\n").find((l) => l.startsWith("rerun the failed: "));
      const rerun = line?.slice("rerun the failed: ".length);
      assert.equal(
        rerun,
        `tenant-migrate migrate ${badId} --app-migrations 'db/tenant app' --concurrency 2`,
        run.stdout,
      );

      // Fixed by hand, then the line as printed, through a shell that finds tenant-migrate on its PATH.
      await query(bad, "drop table note");
      const binDir = path.join(fleet.cwd, "bin");
      mkdirSync(binDir);
      symlinkSync(BIN, path.join(binDir, "tenant-migrate"));
      const again = await runCli(["-c", rerun as string], {
        bin: "/bin/sh",
        cwd: fleet.cwd,
        env: {
          ...fleet.env,
          ...env,
          PATH: [binDir, path.dirname(process.execPath), process.env.PATH].filter(Boolean).join(path.delimiter),
        },
      });
      assert.equal(again.code, 0, again.stdout + again.stderr);
      assert.match(again.stdout, new RegExp(`\\(id ${badId}\\) migrated: ${note}`));
      assert.ok((await appliedMigrations(bad)).includes(note));
    });
  });
});

describe("ops view: control characters from the catalog never reach the terminal raw", () => {
  let fleet: Fleet;
  const evil = `evil\r${ESC}[2K✔ other (id 9) up to date`;
  useFleet(async (f) => {
    fleet = f;
    await fleet.addSchools({ name: evil, database: evil }, { name: evil, database: fleet.db("fine") });
  });

  it("piped and on a terminal, every command escapes them", async () => {
    const raw = new RegExp(`[\\r${ESC}]`);
    for (const args of [["all"], ["status"], ["tenants", "list"], ["history"], ["migrate", "nope"]]) {
      const result = await fleet.run(args);
      assert.doesNotMatch(result.stdout + result.stderr, raw, args.join(" "));
    }
    const all = await fleet.run(["migrate"]);
    assert.match(all.stdout, /evil\\r\\x1b\[2K✔ other \(id 9\) up to date \(id \d+\) failed: /);
    if (!HAS_SCRIPT) return;
    const tty = await runInTty(fleet, ["migrate"], { env: { CI: undefined, NO_COLOR: "1" }, columns: 100 });
    const screen = screenOf(tty.tty).join("\n");
    assert.match(screen, /✖ evil\\r\\x1b\[2K✔ other \(id 9\) up to date \(id \d+\) failed: /);
    // No bare carriage return (one that could overwrite a line) around the school's text.
    assert.doesNotMatch(
      tty.tty.replace(new RegExp(`${ESC}\\[[?0-9;]*[A-Za-z]`, "g"), ""),
      /\r(?!\n)[^\n]*up to date \(id/,
    );
  });
});

describe("ops view: an empty catalog", () => {
  let fleet: Fleet;
  useFleet(async (f) => {
    fleet = f;
  });

  it("warns instead of going green silently", async () => {
    for (const args of [["all"], ["status"], ["tenants", "list"]]) {
      const result = await fleet.run(args);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stderr, /the catalog has no schools/, args.join(" "));
    }
  });
});

// 120 schools, not the 300: the test server is shared by the whole suite on a small machine, where 300
// CREATE DATABASE and their drops took about 8 minutes. What is bounded does not grow with the fleet (the failures,
// the recap and a live area of fixed height), so the same 25-row bound holds at 300 (see README for a 300 run).
const SCHOOLS = 120;

describe(`ops view: ${SCHOOLS} schools, 5 failing`, { skip: !HAS_SCRIPT }, () => {
  let fleet: Fleet;
  let ids: string[];
  let failing: string[];
  // Registered before useFleet's, so it runs first: drops the schools a few at a time, not one by one.
  after(async () => {
    const dbs = (await fleet?.databases())?.filter((db) => db !== fleet.catalog) ?? [];
    for (let i = 0; i < dbs.length; i += 4) {
      await Promise.all(
        dbs.slice(i, i + 4).map((db) => query("postgres", `drop database if exists "${db}" with (force)`)),
      );
    }
  });
  useFleet(async (f) => {
    fleet = f;
    // A trivial migration: the cost of the fleet is its CREATE DATABASE.
    rmSync(fleet.appMigrations, { recursive: true });
    mkdirSync(fleet.appMigrations);
    fleet.writeMigration(
      "20240101000000_t.js",
      'export const up = (knex) => knex.raw("create table t (id int)");\nexport const down = (knex) => knex.raw("drop table t");\n',
    );
    const dbs = fleet.numberedDbs("h", SCHOOLS);
    const rows = await query<{ id: string }>(
      fleet.catalog,
      "insert into schools (school_name, school_database) select d, d from unnest($1::text[]) with ordinality as t(d, n) order by n returning school_id::text as id",
      [dbs],
    );
    ids = rows.map((r) => r.id);
    failing = [dbs[10], dbs[30], dbs[60], dbs[90], dbs[110]] as string[];
    for (const db of failing) {
      await query("postgres", `create database ${db}`);
      await query(db, "create table t (id int)");
    }
  });

  /** The schools the first test's run provisions, for a test run without it (a no-op after it). */
  async function provisionMissing(): Promise<void> {
    const result = await fleet.run(["provision", "--missing"], { timeoutMs: 400_000 });
    assert.equal(result.code, 0, result.stderr);
  }

  // This test comes first: it measures the run that provisions the fleet (120 more databases per test is too slow).
  it("on a terminal the whole run takes no more than 25 rows, and ends with the 5 failures grouped", async () => {
    const run = await runInTty(fleet, ["all"], {
      env: { CI: undefined, NO_COLOR: "1" },
      columns: 100,
      timeoutMs: 400_000,
    });
    assert.equal(run.code, 1, run.tty.slice(-3000));
    const screen = screenOf(run.tty);
    const rows = terminalRows(screen, 100);
    assert.ok(rows <= 25, `${rows} rows:\n${screen.join("\n")}`);
    const text = screen.join("\n");
    assert.match(text, new RegExp(`${SCHOOLS} tenants: ${SCHOOLS - 5} provisioned · 5 failed`));
    assert.match(text, /5 × 20240101000000_t\.js · SQLSTATE 42P07 · relation "t" already exists/);
    const failedIds = failing.map((db) => ids[Number(db.replace(/^.*_h/, ""))]);
    assert.ok(screen.includes(`rerun the failed: tenant-migrate provision ${failedIds.join(" ")}`), text);
  });

  it("off a terminal: one plain line per school and no ANSI; --quiet prints only the failures", async () => {
    await provisionMissing();
    const plain = await fleet.run(["migrate"], { env: { CI: undefined } });
    assert.equal(plain.code, 1);
    assert.doesNotMatch(plain.stdout + plain.stderr, ANSI);
    const lines = plain.stdout.split("\n");
    for (const id of ids) {
      assert.equal(lines.filter((l) => l.includes(` (id ${id}) `)).length, 1, `one line for school ${id}`);
    }
    assert.match(plain.stdout, new RegExp(`${SCHOOLS} tenants: ${SCHOOLS - 5} up to date · 5 failed`));
    assert.match(plain.stdout, /failed, by cause:\n {2}5 × 20240101000000_t\.js · SQLSTATE 42P07/);

    const quiet = await fleet.run(["migrate", "--quiet"], { env: { CI: undefined } });
    const schoolLines = quiet.stdout.split("\n").filter((l) => /^\S+ \S+ \(id \d+\) /.test(l));
    assert.equal(schoolLines.length, 5, quiet.stdout);
    assert.ok(schoolLines.every((l) => l.includes(" failed: ")));
  });

  it("`| tee` gets no spinner fragments, and `> file` leaves the terminal with the summary", async () => {
    await provisionMissing();
    const log = path.join(fleet.cwd, "deploy.log");
    const shell = { env: { CI: undefined }, columns: 100, timeoutMs: 120_000 };
    const tee = await runInTty(fleet, { shell: `'${BIN}' migrate | tee '${log}'` }, shell);
    const file = await readFile(log, "utf8");
    assert.doesNotMatch(file, ANSI);
    assert.doesNotMatch(file, SPINNER_BITS);
    assert.doesNotMatch(tee.tty, SPINNER_BITS, "the terminal under tee shows no spinner either");
    assert.equal(file.split("\n").filter((l) => / \(id \d+\) /.test(l)).length, SCHOOLS);

    const redirected = await runInTty(fleet, { shell: `'${BIN}' migrate > '${log}'` }, shell);
    const screen = screenOf(redirected.tty);
    assert.match(screen.at(-1) ?? "", new RegExp(`^${SCHOOLS} tenants: ${SCHOOLS - 5} up to date · 5 failed`));
    // The cursor the spinner hid is shown again.
    assert.ok(redirected.tty.lastIndexOf(`${ESC}[?25h`) > redirected.tty.lastIndexOf(`${ESC}[?25l`));
    const written = await readFile(log, "utf8");
    assert.doesNotMatch(written, ANSI);
    assert.doesNotMatch(written, SPINNER_BITS);
  });
});
