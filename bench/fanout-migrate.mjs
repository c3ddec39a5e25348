// The fan-out loop a competent developer writes in an afternoon: the original
// `migrate.js` logic (bench/original-migrate.mjs) with C schools at once. Read
// the catalog; then C workers take schools in turn, and for each: create its
// database if it is missing, run knex's migrate.latest() on a fresh knex
// instance, destroy it. No locks beyond knex's own, no grants, no history.
//
//   node bench/fanout-migrate.mjs CATALOG_URL MIGRATIONS_DIR CONCURRENCY
import knex from "knex";

const [catalogUrl, directory, width] = process.argv.slice(2);
const concurrency = Number(width);
if (!catalogUrl || !directory || !(concurrency > 0)) {
  console.error("usage: node bench/fanout-migrate.mjs CATALOG_URL MIGRATIONS_DIR CONCURRENCY");
  process.exit(2);
}

function tenantUrl(database) {
  const url = new URL(catalogUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

// The catalog's pool is shared by the workers' CREATE DATABASEs: one connection each.
const catalog = knex({ client: "pg", connection: catalogUrl, pool: { min: 0, max: concurrency } });
let failed = 0;
try {
  const schools = await catalog("schools").select("school_id", "school_name", "school_database").orderBy("school_id");
  let next = 0;
  const worker = async () => {
    while (next < schools.length) {
      const school = schools[next++];
      try {
        const { rows } = await catalog.raw("select 1 from pg_database where datname = ?", [school.school_database]);
        if (rows.length === 0) await catalog.raw("create database ??", [school.school_database]);
        const db = knex({ client: "pg", connection: tenantUrl(school.school_database) });
        try {
          const [batch, log] = await db.migrate.latest({ directory });
          console.log(
            `${school.school_name}: ${log.length === 0 ? "already up to date" : `batch ${batch}, ${log.length} migrations`}`,
          );
        } finally {
          await db.destroy();
        }
      } catch (error) {
        failed++;
        console.error(`${school.school_name}: ${error.message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, schools.length) }, worker));
} finally {
  await catalog.destroy();
}
process.exitCode = failed > 0 ? 1 : 0;
