// The server's floors, at a given concurrency, with plain node-postgres:
//
//   node bench/floor.mjs create  ADMIN_URL PREFIX N CONCURRENCY
//     N empty `CREATE DATABASE PREFIXschool_00001...` on a pool of CONCURRENCY
//     administrative connections (what provisioning cannot go below);
//   node bench/floor.mjs connect ADMIN_URL PREFIX N CONCURRENCY
//     N times: connect to a database, `select 1`, disconnect, CONCURRENCY at once
//     (what any per-tenant check cannot go below).
import pg from "pg";

const [mode, adminUrl, prefix, n, concurrency] = process.argv.slice(2);
const total = Number(n);
const width = Number(concurrency);
if (!["create", "connect"].includes(mode) || !adminUrl || !prefix || !(total > 0) || !(width > 0)) {
  console.error("usage: node bench/floor.mjs create|connect ADMIN_URL PREFIX N CONCURRENCY");
  process.exit(2);
}

const databaseName = (prefix, i) => `${prefix}school_${String(i).padStart(5, "0")}`;

function urlFor(database) {
  const url = new URL(adminUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

const pool = mode === "create" ? new pg.Pool({ connectionString: adminUrl, max: width }) : undefined;
const work =
  mode === "create"
    ? (i) => pool.query(`create database "${databaseName(prefix, i)}"`)
    : async (i) => {
        const client = new pg.Client({ connectionString: urlFor(databaseName(prefix, i)) });
        await client.connect();
        try {
          await client.query("select 1");
        } finally {
          await client.end();
        }
      };

let next = 1;
let failed = 0;
async function worker() {
  while (next <= total) {
    const i = next++;
    try {
      await work(i);
    } catch (error) {
      failed++;
      console.error(`${databaseName(prefix, i)}: ${error.message}`);
    }
  }
}
await Promise.all(Array.from({ length: Math.min(width, total) }, worker));
await pool?.end();
process.exitCode = failed > 0 ? 1 : 0;
