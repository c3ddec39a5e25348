// Runs at once: five `all` runs on one fleet apply each migration once, and a
// run waits for another run's tenant lock (bounded by --lock-timeout, ended at
// once by SIGTERM).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  appliedMigrations,
  type Fleet,
  type FleetJson,
  lockFlag,
  parseJson,
  tableExists,
  tableMigration,
  useFleet,
  waitFor,
  withDb,
} from "./helpers.ts";

/** The tenant lock's advisory key: a test holds it as another run would. */
const TENANT_LOCK_KEY = "7465767000";

describe("five `all` runs at once", () => {
  let fleet: Fleet;
  useFleet(
    (f) => {
      fleet = f;
    },
    { each: true },
  );

  it("apply each migration to each tenant exactly once, and all exit 0", async () => {
    const names = fleet.numberedDbs("school_", 12);
    await fleet.addTenants(names);
    const runs = Array.from({ length: 5 }, () => fleet.start(["all", "--json", "--concurrency", "4"]));
    const results = await Promise.all(runs.map((r) => r.done));
    for (const result of results) assert.equal(result.code, 0, result.stderr);

    const reported = new Map<string, string[]>();
    for (const result of results) {
      for (const tenant of parseJson<FleetJson>(result.stdout).tenants) {
        reported.set(tenant.database, [...(reported.get(tenant.database) ?? []), ...tenant.migrations]);
      }
    }
    const files = (await appliedMigrations(names[0] as string)).length;
    assert.equal(files, 3);
    for (const database of names) {
      const applied = await appliedMigrations(database);
      assert.equal(applied.length, 3, `${database} has each migration once`);
      assert.equal(new Set(applied).size, 3);
      assert.deepEqual((reported.get(database) ?? []).sort(), [...applied].sort(), `${database}: reported once in all`);
      assert.deepEqual(await lockFlag(database), [0], `${database}: one lock row, unlocked`);
    }
    const provisioned = results
      .flatMap((r) => parseJson<FleetJson>(r.stdout).tenants)
      .filter((t) => t.result === "provisioned");
    assert.equal(provisioned.length, names.length, "each database was created by exactly one run");
  });
});

describe("a tenant lock held by another run", () => {
  let fleet: Fleet;
  useFleet(
    (f) => {
      fleet = f;
    },
    { each: true },
  );

  it("waits for another run's tenant lock, bounded by --lock-timeout", async () => {
    const database = fleet.db("held");
    await fleet.addMigrated([database]);
    fleet.writeMigration("20240501000000_more.js", tableMigration("more"));
    await withDb(database, async (holder) => {
      await holder.query("select pg_advisory_lock($1::bigint)", [TENANT_LOCK_KEY]);
      const gaveUp = await fleet.run(["migrate", "--lock-timeout", "1s", "--json"]);
      assert.equal(gaveUp.code, 1);
      const error = parseJson<FleetJson>(gaveUp.stdout).tenants[0]?.error ?? "";
      assert.match(
        error,
        new RegExp(`another tenant-migrate run is working on ${database}; gave up after waiting 1 s`),
      );
      assert.equal(await tableExists(database, "more"), false);

      // SIGTERM ends a wait at once: the tenant had not started, so it is skipped.
      const interrupted = fleet.start(["migrate", "--lock-timeout", "60s", "--json"]);
      await waitFor(() => interrupted.output().stderr.includes("waiting (up to 60 s)"), 20_000, "wait");
      const sent = Date.now();
      interrupted.child.kill("SIGTERM");
      const stopped = await interrupted.done;
      assert.equal(stopped.code, 130, stopped.stderr);
      assert.ok(Date.now() - sent < 10_000, "it did not wait out the lock timeout");
      assert.equal(parseJson<FleetJson>(stopped.stdout).tenants[0]?.result, "skipped");
      assert.equal(await tableExists(database, "more"), false);

      const waiting = fleet.start(["migrate", "--lock-timeout", "30s"]);
      await waitFor(() => waiting.output().stderr.includes("another run is working on it; waiting"), 20_000, "wait");
      await holder.query("select pg_advisory_unlock($1::bigint)", [TENANT_LOCK_KEY]);
      const result = await waiting.done;
      assert.equal(result.code, 0, result.stderr);
      assert.ok(await tableExists(database, "more"));
    });
  });
});
