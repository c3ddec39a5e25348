// The original serial deploy script (the old `migrate.js`), as the original
// design describes it: read the catalog, then for each school in turn create its
// database if it is missing and run knex's migrate.latest() on a new knex
// instance, destroyed afterwards. No concurrency, no locking beyond knex's own.
//
//   node bench/original-migrate.mjs CATALOG_URL MIGRATIONS_DIR
// (or CATALOG_DATABASE_URL and APP_MIGRATIONS_DIR in the environment)
import knex from "knex";

const catalogUrl = process.argv[2] ?? process.env.CATALOG_DATABASE_URL;
const directory = process.argv[3] ?? process.env.APP_MIGRATIONS_DIR;
if (!catalogUrl || !directory) {
  console.error("usage: node bench/original-migrate.mjs CATALOG_URL MIGRATIONS_DIR");
  process.exit(2);
}

function tenantUrl(database) {
  const url = new URL(catalogUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

const catalog = knex({ client: "pg", connection: catalogUrl });
let failed = 0;
try {
  const schools = await catalog("schools").select("school_id", "school_name", "school_database").orderBy("school_id");
  for (const school of schools) {
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
} finally {
  await catalog.destroy();
}
process.exitCode = failed > 0 ? 1 : 0;
