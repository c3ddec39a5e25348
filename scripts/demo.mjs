// `npm run demo`: the main job on an embedded PostgreSQL (data under
// .tenant-migrate/): migrate the catalog, add three sample schools if they
// are missing, run `tenant-migrate all`, and show the fleet's status.
// Run it again: the second time everything is up to date.
import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const bin = path.join(root, "bin", "tenant-migrate.js");
const SCHOOLS = ["Lincoln High", "Roosevelt Elementary", "Washington Middle"];

function tenantMigrate(args, { show = true } = {}) {
  const shown = args.map((a) => (/\s/.test(a) ? `"${a}"` : a)).join(" ");
  if (show) console.log(`\n$ tenant-migrate --embedded ${shown}`);
  const result = spawnSync(process.execPath, ["--", bin, "--embedded", ...args], {
    cwd: root,
    stdio: show ? "inherit" : ["ignore", "pipe", "inherit"],
    encoding: "utf8",
  });
  if (result.status !== 0) {
    console.error(`demo: \`tenant-migrate ${args.join(" ")}\` exited ${result.status}`);
    process.exit(result.status ?? 1);
  }
  return result.stdout;
}

tenantMigrate(["catalog", "migrate"]);
const { tenants } = JSON.parse(tenantMigrate(["tenants", "list", "--json"], { show: false }));
for (const name of SCHOOLS) {
  if (!tenants.some((t) => t.name === name)) tenantMigrate(["tenants", "add", name]);
}
tenantMigrate(["all"]);
tenantMigrate(["status"]);
console.log("\nRun `npm run demo` again: every school is then up to date.");
