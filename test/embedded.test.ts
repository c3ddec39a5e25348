// `--embedded`: the tool starts its own PostgreSQL (data under .tenant-migrate/
// in the working directory) for the length of one command, and only when asked.
import assert from "node:assert/strict";
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import {
  assertUpAndDown,
  BUNDLED_CATALOG,
  type CliResult,
  type FleetJson,
  parseJson,
  ROOT,
  runCli,
  SAMPLE,
  type StatusJson,
  startCli,
  waitFor,
} from "./helpers.ts";

/** A project directory as a user has it: app_migrations and an ESM package.json, nothing else. */
function projectDir(): string {
  // As root the embedded server runs as the postgres OS user: the directory must be traversable.
  const dir = mkdtempSync(path.join(tmpdir(), "tenant-migrate-embedded-"));
  chmodSync(dir, 0o755);
  cpSync(path.join(ROOT, "app_migrations"), path.join(dir, "app_migrations"), { recursive: true });
  writeFileSync(path.join(dir, "package.json"), '{ "type": "module" }\n');
  return dir;
}

/** Pids of running processes whose command line names `needle`. */
function processesMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8").replace(/\0/g, " ");
      if (cmdline.includes(needle)) pids.push(Number(entry));
    } catch {
      // the process ended meanwhile
    }
  }
  return pids;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The embedded server of `dir` is not running: no live postmaster.pid, no process on its data directory. */
function assertServerStopped(dir: string, after: string): void {
  const dataDir = path.join(dir, ".tenant-migrate", "pgdata");
  const pidFile = path.join(dataDir, "postmaster.pid");
  if (existsSync(pidFile)) {
    const pid = Number(readFileSync(pidFile, "utf8").split("\n")[0]);
    assert.ok(!isAlive(pid), `after ${after}: postgres ${pid} is still running for ${dataDir}`);
  }
  if (existsSync("/proc/self")) {
    assert.deepEqual(processesMentioning(dataDir), [], `after ${after}: a process still runs on ${dataDir}`);
  }
}

describe("--embedded", { timeout: 300_000 }, () => {
  let dir: string;
  const run = (args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> =>
    runCli(args, { cwd: dir, env, timeoutMs: 120_000 });
  const outputs: string[] = [];
  async function ok(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
    const result = await run(args, env);
    outputs.push(result.stdout, result.stderr);
    assert.equal(result.code, 0, `${args.join(" ")}: ${result.stderr}`);
    assertServerStopped(dir, args.join(" "));
    return result;
  }

  const projects: string[] = [];
  /** A new project directory, which the run and ok helpers then use. */
  function newProject(): string {
    dir = projectDir();
    projects.push(dir);
    return dir;
  }
  let provisionedProject: string | undefined;
  /**
   * Uses a project whose catalog is migrated and whose one school, Lincoln
   * High, is provisioned: built by the first test that asks, shared by the
   * others (each leaves it up to date), so that no test relies on another.
   */
  async function provisioned(): Promise<void> {
    if (provisionedProject) {
      dir = provisionedProject;
      return;
    }
    provisionedProject = newProject();
    await ok(["--embedded", "catalog", "migrate"]);
    await ok(["--embedded", "tenants", "add", "Lincoln High"]);
    await ok(["--embedded", "all"]);
  }

  after(() => {
    for (const project of projects) {
      // A server a failed test left behind would hold the directory: stop it by its pid.
      const pidFile = path.join(project, ".tenant-migrate", "pgdata", "postmaster.pid");
      if (existsSync(pidFile)) {
        const pid = Number(readFileSync(pidFile, "utf8").split("\n")[0]);
        if (pid > 0 && isAlive(pid)) process.kill(pid, "SIGQUIT");
      }
      rmSync(project, { recursive: true, force: true });
    }
  });

  it("runs catalog migrate, tenants add and all on its own server, then finds everything up to date", async () => {
    newProject();
    const catalog = await ok(["--embedded", "catalog", "migrate"]);
    assert.equal(catalog.stdout.trim(), `catalog migrated: ${BUNDLED_CATALOG.join(", ")}`);
    // The data lives under .tenant-migrate/ in the working directory.
    assert.ok(existsSync(path.join(dir, ".tenant-migrate", "pgdata", "PG_VERSION")));
    const passwordFile = path.join(dir, ".tenant-migrate", "password");
    assert.ok(existsSync(passwordFile));
    assert.equal(statSync(passwordFile).mode & 0o077, 0, "the password file is private");
    const password = readFileSync(passwordFile, "utf8").trim();
    assert.ok(password.length >= 16);

    const add = await ok(["--embedded", "tenants", "add", "Lincoln High"]);
    assert.match(add.stdout, /^added school 1: Lincoln High \(database lincoln_high\)$/m);

    const first = await ok(["--embedded", "all"]);
    assert.match(first.stdout, new RegExp(`lincoln_high \\(id 1\\) provisioned: 3 migrations, up to ${SAMPLE[2]}`));
    assert.match(first.stdout, /catalog: up to date/);
    assert.match(first.stdout, /1 tenant: 1 provisioned \(/);

    const second = await ok(["--embedded", "all", "--json"]);
    const json = parseJson<FleetJson>(second.stdout);
    assert.equal(json.ok, true);
    assert.deepEqual(json.catalog, { migrations: [] });
    assert.deepEqual(
      json.tenants.map((t) => [t.id, t.name, t.database, t.result]),
      [["1", "Lincoln High", "lincoln_high", "up-to-date"]],
    );

    // TENANT_MIGRATE_EMBEDDED=1 is the same switch.
    const status = await ok(["status", "--json", "--check"], { TENANT_MIGRATE_EMBEDDED: "1" });
    const tenants = parseJson<StatusJson>(status.stdout).tenants;
    assert.deepEqual(
      tenants.map((t) => [t.database, t.state, t.applied]),
      [["lincoln_high", "up-to-date", SAMPLE]],
    );
    const list = await ok(["--embedded", "tenants", "list"]);
    assert.match(list.stdout, /^1\s+lincoln_high\s+Lincoln High\s.*\b(yes|exists)$/m);

    for (const text of outputs) assert.ok(!text.includes(password), "the embedded server's password is never printed");
  });

  it("make add_allergens writes a new migration that --embedded all then applies", async () => {
    await provisioned();
    const make = await ok(["make", "add_allergens"]);
    const made = readdirSync(path.join(dir, "app_migrations")).filter((f) => f.endsWith("_add_allergens.js"));
    assert.equal(made.length, 1);
    const file = made[0] as string;
    assert.match(file, /^\d{14}_add_allergens\.js$/);
    assert.match(make.stdout, new RegExp(`created .*app_migrations/${file}`));
    assertUpAndDown(path.join(dir, "app_migrations", file));

    const pending = await run(["--embedded", "status", "--check"]);
    assert.equal(pending.code, 1, pending.stderr);
    assert.match(pending.stdout, new RegExp(`lincoln_high \\(id 1\\) pending \\(3 applied, 1 pending\\): ${file}`));
    assertServerStopped(dir, "status --check");

    const all = await ok(["--embedded", "all", "--json"]);
    const json = parseJson<FleetJson>(all.stdout);
    assert.deepEqual(
      json.tenants.map((t) => [t.database, t.result, t.migrations]),
      [["lincoln_high", "migrated", [file]]],
    );
    await ok(["--embedded", "status", "--check"]);
  });

  it("a run killed while its server runs leaves it behind; the next run stops it and leaves none", async () => {
    await provisioned();
    const pidFile = path.join(dir, ".tenant-migrate", "pgdata", "postmaster.pid");
    const killed = startCli(["--embedded", "status"], { cwd: dir, env: {} });
    // Killed once the server is up: a SIGKILL gives the CLI no chance to stop it.
    await waitFor(() => existsSync(pidFile) && /\bready\b/.test(readFileSync(pidFile, "utf8")), 60_000, "the server");
    killed.child.kill("SIGKILL");
    await killed.done;
    const orphan = Number(readFileSync(pidFile, "utf8").split("\n")[0]);
    assert.ok(isAlive(orphan), "the killed run's server is still running");

    const next = await ok(["--embedded", "status", "--json"]);
    assert.equal(parseJson<StatusJson>(next.stdout).tenants[0]?.state, "up-to-date");
    assert.ok(!isAlive(orphan), "the leftover server was stopped");
  });

  it("is never used unless asked for", async () => {
    await provisioned();
    // Even with embedded data in this directory, no setting means exit 2.
    const here = await run(["all"]);
    assert.equal(here.code, 2, here.stderr);
    assert.match(here.stderr, /no catalog connection/);
    assert.match(here.stderr, /--embedded/);
    assertServerStopped(dir, "all without --embedded");

    const off = await run(["all"], { TENANT_MIGRATE_EMBEDDED: "0" });
    assert.equal(off.code, 2, off.stderr);

    const both = await run(["--embedded", "all", "--catalog-url", "postgres://u:p@127.0.0.1:5432/catalog"]);
    assert.equal(both.code, 2, both.stderr);
    assert.match(both.stderr, /--embedded cannot be combined with --catalog-url/);

    // A fresh directory: nothing is started, nothing is created.
    const fresh = projectDir();
    try {
      for (const args of [
        ["all"],
        ["migrate"],
        ["status"],
        ["catalog", "migrate"],
        ["tenants", "add", "Lincoln High"],
      ]) {
        const result = await runCli(args, { cwd: fresh, env: {}, timeoutMs: 60_000 });
        assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
        assert.match(result.stderr, /no catalog connection: set --catalog-url or CATALOG_DATABASE_URL/);
        assert.equal(result.stdout, "");
      }
      assert.equal(existsSync(path.join(fresh, ".tenant-migrate")), false, "no embedded data was created");
    } finally {
      rmSync(fresh, { recursive: true, force: true });
    }
  });
});
