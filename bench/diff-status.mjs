// `diff` next to `status` on one fleet, in the same run: what comparing every
// school's schema costs over reading its migration state.
//
//   node bench/diff-status.mjs [--tenants N] [--rounds R] [--concurrency C] [--also CLI]
//
// Starts an embedded PostgreSQL, provisions N schools (200) with the ten
// bench/migrations, then runs `status`, `diff` and `diff --against` R times
// (3) each, alternating, and prints the median wall clock of each. `--also
// CLI` adds `status` of another build (another checkout's bin/tenant-migrate.js)
// on the same fleet. A CHECKPOINT runs before each. Times are shown, never asserted.
import { spawn } from "node:child_process";
import { cpus, loadavg } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { startThrowawayServer } from "../scripts/throwaway-server.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const cli = path.join(here, "..", "bin", "tenant-migrate.js");
const options = { tenants: 200, rounds: 3, concurrency: 8, also: undefined };
for (let i = 2; i < process.argv.length; i += 2) {
  const key = process.argv[i]?.replace(/^--/, "");
  if (!(key in options)) throw new Error(`unknown option ${process.argv[i]}`);
  options[key] = key === "also" ? process.argv[i + 1] : Number(process.argv[i + 1]);
}

const password = "bench-password-not-secret";
const server = await startThrowawayServer({
  prefix: "tenant-migrate-diff-bench-",
  password,
  flags: [`max_connections=${options.concurrency * 3 + 30}`],
});
const url = (db) => `${server.url}/${db}`;
const env = {
  ...process.env,
  CATALOG_DATABASE_URL: url("bench_catalog"),
  APP_MIGRATIONS_DIR: path.join(here, "migrations"),
  TENANT_MIGRATE_CONCURRENCY: String(options.concurrency),
  NO_COLOR: "1",
};

function run(args, bin = cli) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, [bin, ...args], { env, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("close", (code) => {
      const ms = performance.now() - started;
      if (code !== 0) reject(new Error(`${args.join(" ")}: exit ${code}: ${stderr.slice(-500)}`));
      else resolve(ms);
    });
  });
}

try {
  const admin = new pg.Client({ connectionString: url("postgres") });
  await admin.connect();
  await admin.query("create database bench_catalog");
  await admin.end();
  await run(["catalog", "migrate"]);
  const catalog = new pg.Client({ connectionString: url("bench_catalog") });
  await catalog.connect();
  await catalog.query(
    "insert into schools (school_name, school_database) select 'School ' || i, 'school_' || lpad(i::text, 5, '0') from generate_series(1, $1) i",
    [options.tenants],
  );
  await catalog.end();
  await run(["all"]);

  const scenarios = [
    ["status", () => run(["status"])],
    ["diff (scratch reference)", () => run(["diff"])],
    ["diff --against school_00001", () => run(["diff", "--against", "school_00001"])],
  ];
  if (options.also) scenarios.push([`status (${options.also})`, () => run(["status"], options.also)]);
  const times = new Map(scenarios.map(([name]) => [name, []]));
  // A CHECKPOINT before each scenario: DROP DATABASE (diff drops its scratch database) forces one, and the first
  // after provisioning the fleet would otherwise write out the whole fleet's dirty pages inside diff's time.
  const checkpoint = new pg.Client({ connectionString: url("postgres") });
  await checkpoint.connect();
  for (let round = 0; round < options.rounds; round++) {
    for (const [name, fn] of scenarios) {
      await checkpoint.query("checkpoint");
      times.get(name).push(await fn());
    }
  }
  await checkpoint.end();
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(
    `${options.tenants} schools, 10 migrations each, concurrency ${options.concurrency}, ${options.rounds} rounds (median), ${cpus().length} cores, load ${loadavg()[0].toFixed(2)}`,
  );
  for (const [name, xs] of times) {
    console.log(
      `  ${name.padEnd(40)} ${(median(xs) / 1000).toFixed(2)} s   (${xs.map((x) => (x / 1000).toFixed(2)).join(", ")})`,
    );
  }
} finally {
  await server.stop();
}
