// How the fleet runner picks and paces schools: --shard slices, --canary,
// tenants on several servers, and runFleet's own bounds (per-server
// concurrency, catalog order, thrown errors, an aborted signal).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { shardOf } from "../src/commands/selection.ts";
import { runFleet } from "../src/core/fleet.ts";
import type { Tenant } from "../src/core/fleet-types.ts";
import {
  appliedMigrations,
  databaseExists,
  type Fleet,
  type FleetJson,
  parseJson,
  type SecondServer,
  type StatusJson,
  startSecondServer,
  tableMigration,
  useFleet,
} from "./helpers.ts";

describe("--shard I/N", () => {
  let fleet: Fleet;
  useFleet(
    (f) => {
      fleet = f;
    },
    { each: true },
  );

  it("splits the tenants into N stable, disjoint slices that together cover every tenant once", async () => {
    const names = fleet.numberedDbs("sh", 10);
    await fleet.addTenants(names);
    const seen: string[] = [];
    const slices = new Map<string, string[]>();
    for (const shard of ["1/3", "2/3", "3/3"]) {
      const result = await fleet.run(["all", "--shard", shard, "--json"]);
      assert.equal(result.code, 0, result.stderr);
      const json = parseJson<FleetJson>(result.stdout);
      for (const tenant of json.tenants) {
        assert.equal(tenant.result, "provisioned");
        assert.equal(shardOf(tenant.id, 3), Number(shard[0]), "the slice is the documented hash of school_id");
      }
      seen.push(...json.tenants.map((t) => t.database));
      slices.set(
        shard,
        json.tenants.map((t) => t.id),
      );
    }
    assert.deepEqual([...seen].sort(), [...names].sort(), "every tenant exactly once");
    // Stable: the same split again finds the same tenants, now up to date.
    const again = parseJson<FleetJson>((await fleet.run(["migrate", "--shard", "2/3", "--json"])).stdout);
    assert.ok((slices.get("2/3") ?? []).length > 0, "the slice tested is not empty");
    assert.deepEqual(
      again.tenants.map((t) => [t.id, t.result]),
      (slices.get("2/3") ?? []).map((id) => [id, "up-to-date"]),
    );
  });

  it("rejects a malformed shard with exit 2", async () => {
    for (const bad of ["0/3", "4/3", "x", "1/0"]) {
      const result = await fleet.run(["migrate", "--shard", bad]);
      assert.equal(result.code, 2, `${bad}: ${result.stderr}`);
      assert.match(result.stderr, /--shard/);
    }
  });
});

describe("--canary N", () => {
  let fleet: Fleet;
  useFleet(
    (f) => {
      fleet = f;
    },
    { each: true },
  );

  it("with a migration broken for every tenant, exactly N fail and the rest are skipped", async () => {
    const names = fleet.numberedDbs("c", 6);
    await fleet.addMigrated(names);
    fleet.writeMigration(
      "20240601000000_broken.js",
      `export async function up(knex) { await knex.raw("select * from no_such_table"); }
export async function down() {}`,
    );
    const result = await fleet.run(["migrate", "--canary", "2", "--json"]);
    assert.equal(result.code, 1);
    const json = parseJson<FleetJson>(result.stdout);
    assert.equal(json.summary.failed, 2);
    assert.equal(json.summary.skipped, 4);
    assert.deepEqual(
      json.tenants.map((t) => t.result),
      ["failed", "failed", "skipped", "skipped", "skipped", "skipped"],
    );
    assert.match(result.stderr, /a canary tenant failed: skipping the other 4/);
    for (const database of names) assert.equal((await appliedMigrations(database)).length, 3);
  });

  it("when the canaries pass, the rest run", async () => {
    const names = fleet.numberedDbs("c", 6);
    await fleet.addMigrated(names);
    fleet.writeMigration("20240601000000_fixed.js", tableMigration("fixed"));
    const result = await fleet.run(["migrate", "--canary", "2", "--json"]);
    assert.equal(result.code, 0, result.stderr);
    const json = parseJson<FleetJson>(result.stdout);
    assert.deepEqual(
      json.tenants.map((t) => [t.database, t.result]),
      names.map((database) => [database, "migrated"]),
    );
  });
});

describe("tenants on two servers", () => {
  let fleet: Fleet;
  let second: SecondServer;
  useFleet((f) => {
    fleet = f;
  });
  before(async () => {
    second = await startSecondServer("second-server-pw");
  });
  after(async () => {
    await second?.stop();
  });

  it("provisions and migrates each row on its own server, and names the server", async () => {
    const here = fleet.db("here");
    const there = fleet.db("there");
    await fleet.addSchools({ name: "Here", database: here }, { name: "There", database: there, server: "second" });
    const env = { TENANT_SERVERS: JSON.stringify({ second: second.url }) };
    const result = await fleet.run(["all", "--json"], { env });
    assert.equal(result.code, 0, result.stderr);
    const json = parseJson<FleetJson>(result.stdout);
    assert.equal(json.tenants.find((t) => t.database === there)?.server, "second");
    assert.equal(json.tenants.find((t) => t.database === here)?.server, undefined);

    assert.ok(await databaseExists(here));
    assert.equal(await databaseExists(there), false, "not on the catalog's server");
    assert.equal((await second.query("select 1 from pg_database where datname = $1", [there])).length, 1);
    const applied = await second.query("select name from knex_migrations order by id", [], there);
    assert.equal(applied.length, 3);
    assert.doesNotMatch(result.stdout + result.stderr, /second-server-pw/);

    const status = await fleet.run(["status", "--json"], { env });
    const tenants = parseJson<StatusJson>(status.stdout).tenants;
    assert.deepEqual(
      tenants.map((t) => [t.database, t.server ?? null, t.state]),
      [
        [here, null, "up-to-date"],
        [there, "second", "up-to-date"],
      ],
    );
  });
});

describe("the fleet runner", () => {
  const tenants = (n: number, server: (i: number) => string | null): Tenant[] =>
    Array.from({ length: n }, (_, i) => ({ id: String(i + 1), name: `S${i}`, database: `s${i}`, server: server(i) }));

  it("holds --concurrency per server and returns results in catalog order", async () => {
    const fleet = tenants(12, (i) => (i % 2 === 0 ? "a" : "b"));
    const running = new Map<string, number>();
    const peak = new Map<string, number>();
    const result = await runFleet(
      fleet,
      async (tenant) => {
        const server = tenant.server as string;
        running.set(server, (running.get(server) ?? 0) + 1);
        peak.set(server, Math.max(peak.get(server) ?? 0, running.get(server) ?? 0));
        await new Promise((r) => setTimeout(r, 5 + Number(tenant.id)));
        running.set(server, (running.get(server) ?? 0) - 1);
        return { result: "migrated", migrations: [tenant.database] };
      },
      { concurrency: 2, onError: "continue", serverOf: (t) => t.server as string },
    );
    assert.deepEqual(Object.fromEntries(peak), { a: 2, b: 2 });
    assert.deepEqual(
      result.tenants.map((t) => t.id),
      fleet.map((t) => t.id),
    );
    assert.equal(result.summary.succeeded, 12);
  });

  it("turns a thrown error into a failed result without hiding the others", async () => {
    const result = await runFleet(
      tenants(3, () => null),
      async (tenant) => {
        if (tenant.id === "2") throw Object.assign(new Error("boom"), { code: "42P01", hint: "look here" });
        return { result: "up-to-date", migrations: [] };
      },
      { concurrency: 1, onError: "continue" },
    );
    assert.deepEqual(
      result.tenants.map((t) => t.result),
      ["up-to-date", "failed", "up-to-date"],
    );
    assert.equal(result.tenants[1]?.error, "boom (SQLSTATE 42P01); hint: look here");
    assert.equal(result.ok, false);
  });

  it("starts nothing new once its signal is aborted", async () => {
    const controller = new AbortController();
    const result = await runFleet(
      tenants(4, () => null),
      async () => {
        controller.abort();
        return { result: "migrated", migrations: [] };
      },
      { concurrency: 1, onError: "continue", signal: controller.signal },
    );
    assert.deepEqual(
      result.tenants.map((t) => t.result),
      ["migrated", "skipped", "skipped", "skipped"],
    );
    assert.equal(result.interrupted, true);
  });
});
