import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  appliedMigrations,
  databaseExists,
  type Fleet,
  type FleetJson,
  parseJson,
  query,
  SAMPLE,
  tableExists,
  useFleet,
} from "./helpers.ts";

describe("all", () => {
  let fleet: Fleet;
  useFleet((f) => {
    fleet = f;
  });

  it("creates and migrates every school database, then finds them up to date", async () => {
    const names = fleet.dbs("lincoln", "roosevelt", "washington");
    await fleet.addTenants(names);

    const first = await fleet.run(["all"]);
    assert.equal(first.code, 0, first.stderr);
    for (const database of names) {
      assert.ok(await databaseExists(database), `${database} exists`);
      assert.ok(await tableExists(database, "lunch_week"));
      assert.ok(await tableExists(database, "menu_item"));
      assert.deepEqual(await appliedMigrations(database), SAMPLE);
      assert.match(first.stdout, new RegExp(`${database} \\(id \\d+\\) provisioned`));
    }
    assert.match(first.stdout, /3 tenants: 3 provisioned \(/);

    const second = await fleet.run(["all", "--json"]);
    assert.equal(second.code, 0, second.stderr);
    const json = parseJson<FleetJson>(second.stdout);
    assert.equal(json.ok, true);
    assert.deepEqual(json.catalog, { migrations: [] });
    assert.deepEqual(
      json.tenants.map((t) => [t.database, t.result, t.migrations.length]),
      names.map((n) => [n, "up-to-date", 0]),
    );
    assert.deepEqual(json.summary, { ...json.summary, total: 3, succeeded: 3, failed: 0, skipped: 0 });
  });

  it("fails a hostile or over-long row alone, naming it, and migrates the others", async () => {
    const good = fleet.db("good_school");
    const hostile = `${fleet.prefix}"; drop database postgres; --`;
    const tooLong = `${fleet.prefix}_${"x".repeat(64 - fleet.prefix.length - 1)}`; // 64 bytes
    assert.equal(Buffer.byteLength(tooLong), 64);
    const [, hostileId, longId] = await fleet.addSchools(
      { name: "Good", database: good },
      { name: "Hostile", database: hostile },
      { name: "Too long", database: tooLong },
    );

    const result = await fleet.run(["all", "--json"]);
    assert.equal(result.code, 1, result.stderr);
    const json = parseJson<FleetJson>(result.stdout);
    const byId = new Map(json.tenants.map((t) => [t.id, t]));
    assert.equal(json.tenants.find((t) => t.database === good)?.result, "provisioned");
    assert.equal(byId.get(hostileId as string)?.result, "failed");
    assert.match(
      byId.get(hostileId as string)?.error ?? "",
      /school \d+: database name .* is not a lower-case PostgreSQL name/,
    );
    assert.equal(byId.get(longId as string)?.result, "failed");
    assert.match(byId.get(longId as string)?.error ?? "", /64 bytes long; PostgreSQL allows at most 63/);
    assert.equal(json.summary.failed, 2);
    assert.ok(await databaseExists("postgres"));
    assert.equal(await databaseExists(tooLong.slice(0, 63)), false, "no truncated database was created");
    const rows = await query(good, "select count(*)::int as n from knex_migrations");
    assert.deepEqual(rows, [{ n: 3 }]);
  });
});
