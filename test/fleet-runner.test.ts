// How a fleet run picks schools, through the CLI on a real server: --shard
// slices, --canary, tenants on several servers. runFleet's own bounds, which
// need no database, are unit tests (test/unit/fleet.test.ts).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { shardOf } from "../src/commands/selection.ts";
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
