// Which faults are tried again, and how: isTransient, isConnectionLoss,
// withRetries (tiny delays, or none: an onRetry that throws stops before the
// wait), the lock waits of --pg-lock-timeout, and what a retried school's
// result lists (carryingMigrations).
import assert from "node:assert/strict";
import { describe, it, mock } from "node:test";
import type { Knex } from "knex";
import { isConnectionLoss, isTransient, RETRY_BASE_DELAY_MS, withRetries } from "../../src/core/db.ts";
import { TenantSkipped, TenantWorkError } from "../../src/core/errors.ts";
import type { TenantOutcome } from "../../src/core/fleet-types.ts";
import {
  explainLockWait,
  isLockTimeout,
  LockWaitError,
  retryLockWaits,
  setLockTimeout,
} from "../../src/core/lock-wait.ts";
import { carryingMigrations } from "../../src/core/tenant-work.ts";

const coded = (code: string, message = `fault ${code}`) => Object.assign(new Error(message), { code });
const wrapping = (cause: unknown, message = "migration x failed") => new Error(message, { cause });

describe("isTransient", () => {
  it("accepts connection faults, a full or restarting server, and lost races", () => {
    for (const code of ["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "53300", "57P01", "57P02", "57P03"]) {
      assert.equal(isTransient(coded(code)), true, code);
    }
    for (const code of ["40001", "40P01", "08000", "08003", "08006"])
      assert.equal(isTransient(coded(code)), true, code);
  });

  it("refuses the migration's own problems", () => {
    for (const code of ["42P01", "42P07", "23505", "22001", "55P03", "3D000", "28P01", "ENOTFOUND"]) {
      assert.equal(isTransient(coded(code)), false, code);
    }
    assert.equal(isTransient(new Error("syntax error at or near x")), false);
  });

  it("looks through `cause`, however deep", () => {
    assert.equal(isTransient(wrapping(coded("57P01"))), true);
    assert.equal(isTransient(wrapping(wrapping(wrapping(coded("40P01"))))), true);
    assert.equal(isTransient(wrapping(coded("42P01"))), false);
  });

  it("survives an error that is its own cause", () => {
    const error = coded("42P01") as Error & { cause?: unknown };
    error.cause = error;
    assert.equal(isTransient(error), false);
  });

  it("survives two errors that are each other's cause", () => {
    const a = new Error("a") as Error & { cause?: unknown };
    a.cause = new Error("b", { cause: a });
    assert.equal(isTransient(a), false);
    a.cause = new Error("c", { cause: Object.assign(coded("57P01"), { cause: a }) });
    assert.equal(isTransient(a), true, "a transient fault in a cycle is still found");
  });

  it("accepts a session marked lost and messages of a lost or starting server", () => {
    assert.equal(isTransient(Object.assign(new Error("x"), { lostConnection: new Error("gone") })), true);
    for (const message of [
      "Connection terminated unexpectedly",
      "Client has encountered a connection error and is not queryable",
      "Connection ended unexpectedly",
      "timeout expired",
      "FATAL: the database system is starting up",
      "the database system is shutting down",
      "the database system is in recovery mode",
    ]) {
      assert.equal(isTransient(new Error(message)), true, message);
    }
  });

  it("is false for values that are not errors", () => {
    for (const value of [null, undefined, "Connection terminated", 53300, {}]) assert.equal(isTransient(value), false);
  });
});

describe("isConnectionLoss", () => {
  it("accepts the codes and messages of a session that is gone, through `cause`", () => {
    assert.equal(isConnectionLoss(coded("57P01")), true);
    assert.equal(isConnectionLoss(coded("EPIPE")), true);
    assert.equal(isConnectionLoss(new Error("Client was closed and is not queryable")), true);
    assert.equal(isConnectionLoss(wrapping(wrapping(coded("08006")))), true);
    assert.equal(isConnectionLoss(Object.assign(new Error("x"), { lostConnection: null })), true);
  });

  it("refuses faults that leave the session alive", () => {
    for (const code of ["53300", "40001", "40P01", "ECONNREFUSED", "42P01"]) {
      assert.equal(isConnectionLoss(coded(code)), false, code);
    }
    assert.equal(isConnectionLoss(undefined), false);
  });

  it("stops after 5 causes (a cycle never hangs)", () => {
    const a = new Error("a") as Error & { cause?: unknown };
    a.cause = new Error("b", { cause: a });
    assert.equal(isConnectionLoss(a), false);
    let deep: unknown = coded("57P01");
    for (let i = 0; i < 5; i++) deep = wrapping(deep);
    assert.equal(isConnectionLoss(deep), false, "the sixth cause is not read");
  });
});

/** A function that fails with `errors` in turn, then returns "done"; counts its calls. */
function failing(...errors: unknown[]) {
  const fn = async () => {
    fn.calls++;
    const error = errors.shift();
    if (error !== undefined) throw error;
    return "done";
  };
  fn.calls = 0;
  return fn;
}

describe("withRetries", () => {
  it("returns the first success without retrying", async () => {
    const fn = failing();
    assert.equal(await withRetries(fn, { retries: 3, baseDelayMs: 1 }), "done");
    assert.equal(fn.calls, 1);
  });

  it("tries a transient fault again, reporting each retry", async () => {
    const fn = failing(coded("ECONNREFUSED"), coded("57P03"));
    const retries: [string, number][] = [];
    const result = await withRetries(fn, {
      retries: 3,
      baseDelayMs: 1,
      onRetry: (error, attempt) => retries.push([(error as Error).message, attempt]),
    });
    assert.equal(result, "done");
    assert.equal(fn.calls, 3);
    assert.deepEqual(retries, [
      ["fault ECONNREFUSED", 1],
      ["fault 57P03", 2],
    ]);
  });

  it("gives up after `retries` retries with the last error", async () => {
    const last = coded("ECONNRESET", "the last one");
    const fn = failing(coded("ECONNRESET"), coded("ECONNRESET"), last, coded("ECONNRESET"));
    await assert.rejects(withRetries(fn, { retries: 2, baseDelayMs: 1 }), (error) => error === last);
    assert.equal(fn.calls, 3);
  });

  it("never retries with retries 0, a fault that is not transient, a refusing retryIf or an aborted signal", async () => {
    const cases: [unknown, Parameters<typeof withRetries>[1]][] = [
      [coded("ECONNREFUSED"), { retries: 0, baseDelayMs: 1 }],
      [coded("42P07"), { retries: 5, baseDelayMs: 1 }],
      [coded("ECONNREFUSED"), { retries: 5, baseDelayMs: 1, retryIf: () => false }],
      [coded("ECONNREFUSED"), { retries: 5, baseDelayMs: 1, signal: AbortSignal.abort() }],
    ];
    for (const [error, options] of cases) {
      const fn = failing(error);
      await assert.rejects(withRetries(fn, options), (thrown) => thrown === error);
      assert.equal(fn.calls, 1);
    }
  });

  it("retries what retryIf accepts", async () => {
    const fn = failing(coded("40001"));
    const seen: unknown[] = [];
    await withRetries(fn, {
      retries: 1,
      baseDelayMs: 1,
      retryIf: (error) => {
        seen.push(error);
        return true;
      },
    });
    assert.equal(fn.calls, 2);
    assert.equal(seen.length, 1);
  });

  /** The delay withRetries would wait before retry `attempt` (an onRetry that throws stops it before waiting). */
  async function delayBefore(attempt: number, baseDelayMs?: number): Promise<number> {
    const stop = new Error("stop");
    let delay = -1;
    const errors = Array.from({ length: attempt }, () => coded("ECONNREFUSED"));
    await assert.rejects(
      withRetries(failing(...errors), {
        retries: 10,
        ...(baseDelayMs === undefined ? {} : { baseDelayMs }),
        onRetry: (_error, n, delayMs) => {
          if (n < attempt) return;
          delay = delayMs;
          throw stop;
        },
      }),
      (error) => error === stop,
    );
    return delay;
  }

  it("doubles the delay on each retry, ±25% jitter, from 0.5 s unless told", async () => {
    assert.equal(RETRY_BASE_DELAY_MS, 500);
    const first = await delayBefore(1);
    assert.ok(first >= 375 && first <= 625, `first delay ${first}`);
    const third = await delayBefore(3, 4);
    assert.ok(third >= 12 && third <= 20, `third delay ${third} (base 4 ms)`);
  });

  it("never waits more than 5 s between tries", async () => {
    assert.equal(await delayBefore(1, 60_000), 5000);
  });

  it("waits out too many connections without using up retries, within busyTimeoutMs", async () => {
    const full = () => coded("53300", "sorry, too many clients already");
    // Plain, and wrapped as a failed migration wraps it.
    for (const error of [full(), wrapping(full())]) {
      const fn = failing(error);
      const waits: [number, number][] = [];
      const result = await withRetries(fn, {
        retries: 0,
        busyTimeoutMs: 40,
        onRetry: (_error, attempt, delayMs) => waits.push([attempt, delayMs]),
      });
      assert.equal(result, "done");
      assert.equal(fn.calls, 2);
      assert.equal(waits.length, 1);
      assert.equal(waits[0]?.[0], 0, "attempt 0: a busy wait, not a retry");
      assert.ok((waits[0]?.[1] ?? 99) <= 40, `a busy wait of ${waits[0]?.[1]} ms, past busyTimeoutMs`);
    }
  });

  it("counts too many connections as a retry once busyTimeoutMs has passed", async () => {
    const fn = failing(coded("53300"), coded("53300"));
    await assert.rejects(withRetries(fn, { retries: 0, busyTimeoutMs: 0 }), { code: "53300" });
    assert.equal(fn.calls, 1);
  });
});

describe("lock waits (--pg-lock-timeout)", () => {
  const lockTimeout = () =>
    coded("55P03", "alter table lunch_day add column x int - canceling statement due to lock timeout");

  it("isLockTimeout finds SQLSTATE 55P03, through up to 5 causes", () => {
    assert.equal(isLockTimeout(lockTimeout()), true);
    assert.equal(isLockTimeout(wrapping(wrapping(lockTimeout()))), true);
    assert.equal(isLockTimeout(coded("57014")), false);
    assert.equal(isLockTimeout(null), false);
  });

  it("setLockTimeout sets lock_timeout in ms for the session, and nothing for 0", async () => {
    const calls: unknown[][] = [];
    const db = { raw: async (...args: unknown[]) => calls.push(args) } as unknown as Knex;
    await setLockTimeout(db, 0);
    assert.equal(calls.length, 0);
    await setLockTimeout(db, 1500);
    assert.deepEqual(calls, [["select set_config('lock_timeout', ?, false)", ["1500ms"]]]);
  });

  it("explainLockWait leaves every other error as it is, without a query", async () => {
    const error = coded("42P01");
    const db = { raw: async () => assert.fail("no query for another error") } as unknown as Knex;
    assert.equal(await explainLockWait(db, error, 10_000), error);
  });

  it("explainLockWait names the sessions that likely held the lock, and keeps the partial migrations", async () => {
    const holders = [
      {
        pid: 4242,
        application_name: "lunch-app",
        state: "idle in transaction",
        xact_seconds: 31.6,
        query: "update lunch_day set menu = '***'",
        relations: "lunch_day",
      },
      { pid: 7, application_name: "", state: null, xact_seconds: null, query: null, relations: "a, b" },
    ];
    const db = { raw: async () => ({ rows: holders }) } as unknown as Knex;
    // What tenant work throws: the failed migration, what stayed applied before it, the server's error as cause.
    const error = new TenantWorkError("migration 002_b.js failed", ["001_a.js"], { cause: lockTimeout() });
    const explained = await explainLockWait(db, error, 10_000);
    assert.ok(explained instanceof LockWaitError);
    assert.equal(explained.cause, error);
    assert.deepEqual(explained.migrations, ["001_a.js"]);
    assert.equal(
      explained.message,
      `${error.message}: waited longer than --pg-lock-timeout (10 s) for a lock, held by pid 4242 (application "lunch-app", idle in transaction, transaction open 32 s, holding lunch_day, last query "update lunch_day set menu = '***'"); pid 7 (application "", unknown state, holding a, b); rolled back`,
    );
  });

  it("explainLockWait says when the holder had gone or could not be read; odd timeouts in ms", async () => {
    const none = { raw: async () => ({ rows: [] }) } as unknown as Knex;
    const broken = { raw: async () => Promise.reject(new Error("connection lost")) } as unknown as Knex;
    const gone = (await explainLockWait(none, lockTimeout(), 1500)) as LockWaitError;
    assert.match(
      gone.message,
      /\(1500 ms\) for a lock, the session holding it had finished by the time it was looked up; rolled back$/,
    );
    assert.deepEqual(gone.migrations, []);
    const unread = (await explainLockWait(broken, lockTimeout(), 2000)) as LockWaitError;
    assert.match(unread.message, /\(2 s\) for a lock, the session holding it could not be read; rolled back$/);
  });

  it("retryLockWaits passes other errors through at once, and a lock wait with retries 0 as it is", async () => {
    const other = failing(coded("ECONNREFUSED"));
    await assert.rejects(retryLockWaits(other, { retries: 5 }), { code: "ECONNREFUSED" });
    assert.equal(other.calls, 1);
    const wait = new LockWaitError("waited", []);
    await assert.rejects(
      retryLockWaits(failing(wait), { retries: 0 }),
      (error) => error === wait && wait.message === "waited",
    );
  });

  it("retryLockWaits tries again after 1 s (±25%), doubling, and says how often it tried when it gives up", async () => {
    mock.timers.enable({ apis: ["setTimeout"] });
    try {
      const fn = failing(
        new LockWaitError("waited", []),
        new LockWaitError("waited", []),
        new LockWaitError("waited again", []),
      );
      const delays: number[] = [];
      const run = retryLockWaits(fn, { retries: 2, onRetry: (_e, _attempt, delayMs) => delays.push(delayMs) });
      for (let i = 0; i < 2; i++) {
        // Let the failure reach the sleep, then end the sleep.
        await new Promise((resolve) => setImmediate(resolve));
        mock.timers.tick(10_000);
      }
      await assert.rejects(run, { message: "waited again (gave up after 3 tries)" });
      assert.equal(fn.calls, 3);
      assert.equal(delays.length, 2);
      assert.ok((delays[0] ?? 0) >= 750 && (delays[0] ?? 0) <= 1250, `first delay ${delays[0]}`);
      assert.ok((delays[1] ?? 0) >= 1500 && (delays[1] ?? 0) <= 2500, `second delay ${delays[1]}`);
    } finally {
      mock.timers.reset();
    }
  });
});

describe("carryingMigrations", () => {
  /** Work whose attempts throw `steps` in turn (errors), then return the last step. */
  function attempts(...steps: (Error | TenantOutcome)[]) {
    let call = 0;
    return async (): Promise<TenantOutcome> => {
      const step = steps[Math.min(call++, steps.length - 1)];
      if (step instanceof Error) throw step;
      return step as TenantOutcome;
    };
  }
  const lost = (done: string[]) =>
    new TenantWorkError("migration b failed: connection lost", done, { cause: coded("57P01") });
  /** The work run as the fleet runs it: lock waits and transient faults retried, the last failure carried. */
  const retried = (work: () => Promise<TenantOutcome>, retries = 3) => {
    const carried = carryingMigrations(work);
    return withRetries(() => retryLockWaits(carried.attempt, { retries }), { retries, baseDelayMs: 1 }).catch(
      (error: unknown) => {
        throw carried.failure(error);
      },
    );
  };

  it("lists what a failed attempt left applied before what the retry applied, each once", async () => {
    const outcome = await retried(attempts(lost(["a"]), lost(["b"]), { result: "migrated", migrations: ["b", "c"] }));
    assert.deepEqual(outcome, { result: "migrated", migrations: ["a", "b", "c"] });
  });

  it("a retry with nothing left to do is migrated (or rolled back) all the same", async () => {
    assert.deepEqual(await retried(attempts(lost(["a", "b"]), { result: "up-to-date", migrations: [] })), {
      result: "migrated",
      migrations: ["a", "b"],
    });
    assert.deepEqual(await retried(attempts(lost(["c"]), { result: "nothing-to-roll-back", migrations: [] })), {
      result: "rolled-back",
      migrations: ["c"],
    });
  });

  it("carries across lock-wait retries too", async () => {
    mock.timers.enable({ apis: ["setTimeout"] });
    try {
      const run = retried(attempts(new LockWaitError("waited", ["a"]), { result: "migrated", migrations: ["b"] }), 1);
      // Let the failure reach retryLockWaits' sleep, then end the sleep.
      await new Promise((resolve) => setImmediate(resolve));
      mock.timers.tick(10_000);
      assert.deepEqual((await run).migrations, ["a", "b"]);
    } finally {
      mock.timers.reset();
    }
  });

  it("changes nothing when no attempt left anything done", async () => {
    const done = { result: "up-to-date", migrations: [] } satisfies TenantOutcome;
    assert.equal(await retried(attempts(lost([]), done)), done);
    const refused = coded("ECONNREFUSED");
    await assert.rejects(retried(attempts(refused), 1), (error) => error === refused);
  });

  it("a school that still fails lists what every attempt left done, with the last error's message", async () => {
    await assert.rejects(retried(attempts(lost(["a"]), coded("ECONNREFUSED", "connect ECONNREFUSED")), 2), (error) => {
      assert.ok(error instanceof TenantWorkError);
      assert.deepEqual(error.migrations, ["a"]);
      assert.equal(
        error.message,
        "connect ECONNREFUSED (SQLSTATE ECONNREFUSED)".replace(" (SQLSTATE ECONNREFUSED)", ""),
      );
      return true;
    });
    await assert.rejects(retried(attempts(lost(["a"]), lost(["b"])), 1), (error) => {
      assert.ok(error instanceof TenantWorkError);
      assert.deepEqual(error.migrations, ["a", "b"]);
      assert.equal(error.message, "migration b failed: connection lost");
      return true;
    });
  });

  it("leaves an interrupt a skip", async () => {
    const skipped = new TenantSkipped("interrupted");
    await assert.rejects(retried(attempts(lost(["a"]), skipped)), (error) => error === skipped);
  });
});
