// Is a fresh fleet bound by PostgreSQL's copy of the template, or by
// tenant-migrate? On one embedded PostgreSQL, R rounds of, interleaved:
//   tool:  `tenant-migrate all --template` on N new schools (copies of its template);
//   copy:  N bare `CREATE DATABASE ... TEMPLATE` of that same template, C at once.
//
//   node bench/template-copy.mjs [--tenants N (200)] [--rounds R (3)]
//
// Prints ms per school for each round. Run `npm run build` first.
import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { startThrowawayServer } from "../scripts/throwaway-server.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const cli = path.join(here, "..", "bin", "tenant-migrate.js");
const option = (name, fallback) => {
  const index = process.argv.indexOf(name);
  return index < 0 ? fallback : Number(process.argv[index + 1]);
};
const N = option("--tenants", 200);
const ROUNDS = option("--rounds", 3);
const C = 8;

const server = await startThrowawayServer({
  prefix: "tenant-migrate-copy-",
  password: "bench-password-not-secret",
  flags: ["max_connections=100", "max_wal_size=16GB", "wal_init_zero=off"],
});
const urlFor = (database) => `${server.url}/${database}`;
const admin = new pg.Client({ connectionString: urlFor("postgres") });
const env = {
  PATH: process.env.PATH,
  CATALOG_DATABASE_URL: urlFor("copy_catalog"),
  APP_MIGRATIONS_DIR: path.join(here, "migrations"),
  NO_COLOR: "1",
};

function tool(args) {
  const started = performance.now();
  const run = spawnSync(cli, args, { env, encoding: "utf8", cwd: server.dir, maxBuffer: 1 << 28 });
  if (run.status !== 0) throw new Error(`tenant-migrate ${args.join(" ")}: ${run.stderr.slice(-2000)}`);
  return performance.now() - started;
}

/** `work(i)` for i in 0..N-1, C at once, on a pool of C admin connections; returns the wall time. */
async function concurrently(work) {
  const pool = new pg.Pool({ connectionString: urlFor("postgres"), max: C });
  const started = performance.now();
  let next = 0;
  try {
    await Promise.all(
      Array.from({ length: C }, async () => {
        while (next < N) await work(pool, next++);
      }),
    );
    return performance.now() - started;
  } finally {
    await pool.end();
  }
}

const dropSchools = async () => {
  const { rows } = await admin.query("select datname from pg_database where datname like 'copy\\_school\\_%'");
  await concurrently((pool, i) => (rows[i] ? pool.query(`drop database "${rows[i].datname}"`) : undefined));
};

try {
  await admin.connect();
  await admin.query("create database copy_catalog");
  tool(["catalog", "migrate"]);
  const catalog = new pg.Client({ connectionString: urlFor("copy_catalog") });
  await catalog.connect();
  await catalog.query(
    `insert into schools (school_name, school_database)
     select 'School ' || i, 'copy_school_' || i from generate_series(0, $1::int - 1) as i`,
    [N],
  );
  await catalog.end();
  // Warm-up (not measured): builds the template, and creates the WAL segment files.
  tool(["all", "--template"]);
  await dropSchools();
  const { rows } = await admin.query("select datname from pg_database where datname like 'tenant_migrate_template_%'");
  const template = rows[0].datname;
  console.log(`N=${N} schools, ${C} at once, ${ROUNDS} rounds; ms per school (wall clock, tool start-up included)`);
  for (let round = 1; round <= ROUNDS; round++) {
    await admin.query("checkpoint");
    const toolMs = tool(["all", "--template", "--concurrency", String(C)]);
    await dropSchools();
    await admin.query("checkpoint");
    const copyMs = await concurrently((pool, i) =>
      pool.query(`create database "copy_school_${i}" template "${template}"`),
    );
    await dropSchools();
    console.log(
      `round ${round}: tenant-migrate all ${(toolMs / N).toFixed(1)}, bare template copy ${(copyMs / N).toFixed(1)} (tool/copy ${(toolMs / copyMs).toFixed(2)}×)`,
    );
  }
} finally {
  await admin.end().catch(() => {});
  await server.stop();
}
