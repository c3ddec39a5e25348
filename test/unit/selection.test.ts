// Which schools a command works on and which rows it refuses before any SQL:
// selection by name, shards, row checks, placement on servers, aliases.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { chooseTenants, requireSelection, rowProblems, shardOf } from "../../src/commands/selection.ts";
import { serverOfTenant } from "../../src/commands/server.ts";
import { closestTenantName, placeTenant, selectTenants } from "../../src/core/catalog.ts";
import type { Config } from "../../src/core/config.ts";
import type { ConnectionSettings } from "../../src/core/connection.ts";
import { UsageError } from "../../src/core/errors.ts";
import type { Tenant } from "../../src/core/fleet-types.ts";
import { reservedDatabaseProblem, TOOL_DATABASE_PREFIX } from "../../src/core/reserved.ts";
import { possibleAliases, type ServerIdentities, sameDatabaseProblems } from "../../src/core/server-identity.ts";

const CATALOG: ConnectionSettings = { host: "cat-host", port: 5432, user: "cat", database: "the_catalog" };
const EAST: ConnectionSettings = { host: "east-host", port: 6000, user: "east", database: "east_admin" };
const WEST: ConnectionSettings = { host: "west-host", port: 6001, user: "west", database: "postgres" };

function config(overrides: Partial<Config> = {}): Config {
  return {
    catalog: CATALOG,
    catalogDatabase: "catalog",
    appMigrationsDir: "/nowhere/app_migrations",
    catalogMigrationsDir: "/nowhere/catalog_migrations",
    tenantServers: new Map([
      ["east", EAST],
      ["west", WEST],
    ]),
    concurrency: 8,
    lockTimeoutMs: 60_000,
    pgLockTimeoutMs: 10_000,
    retries: 10,
    appRole: undefined,
    embedded: false,
    template: false,
    cwd: "/nowhere",
    ...overrides,
  };
}

function tenant(id: string, database: string, server: string | null = null, name = `School ${id}`): Tenant {
  return { id, name, database, server };
}

const FLEET = [
  tenant("1", "lincoln_high", null, "Lincoln High"),
  tenant("2", "adams_middle", null, "Adams Middle"),
  tenant("3", "grant_elementary", "east", "Grant Elementary"),
  tenant("4", "twin_a", null, "Twin"),
  tenant("5", "twin_b", null, "twin"),
];

/** The UsageError `fn` throws, or a failed assertion. */
function usageError(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof UsageError, `expected a UsageError, got ${String(error)}`);
    assert.equal(error.exitCode, 2);
    return error;
  }
  assert.fail("no UsageError was thrown");
}

describe("shardOf", () => {
  it("is the documented hash: the first 4 bytes of sha256(school_id), mod n, plus one", () => {
    // Pinned: a change would move schools between the slices of a running deploy.
    assert.deepEqual(
      [2, 3, 4, 10].map((n) => shardOf("1", n)),
      [2, 1, 4, 10],
    );
    assert.deepEqual(
      [2, 3, 4, 10].map((n) => shardOf("42", n)),
      [1, 3, 1, 9],
    );
    assert.equal(shardOf("school-7", 3), 2);
  });

  it("is always 1 with one shard, and within 1..n otherwise", () => {
    for (let i = 0; i < 200; i++) {
      assert.equal(shardOf(String(i), 1), 1);
      const s = shardOf(`id-${i}`, 7);
      assert.ok(Number.isInteger(s) && s >= 1 && s <= 7, `shard ${s}`);
    }
  });

  it("spreads ids about evenly", () => {
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 4000; i++) counts[shardOf(String(i), 4) - 1]++;
    for (const count of counts) assert.ok(count > 850 && count < 1150, `uneven shards: ${counts.join(", ")}`);
  });
});

describe("chooseTenants", () => {
  it("takes every tenant when none is named and no shard is given", () => {
    assert.deepEqual(chooseTenants(FLEET, { config: config() }), FLEET);
  });

  it("takes disjoint shards that together are the whole fleet", () => {
    const many = Array.from({ length: 50 }, (_, i) => tenant(String(i + 1), `s${i + 1}`));
    const slices = [1, 2, 3].map((index) => chooseTenants(many, { config: config(), shard: { index, count: 3 } }));
    for (const [i, slice] of slices.entries()) {
      for (const t of slice) assert.equal(shardOf(t.id, 3), i + 1);
    }
    const ids = slices.flat().map((t) => t.id);
    assert.equal(new Set(ids).size, ids.length, "no tenant in two slices");
    assert.deepEqual(ids.sort(), many.map((t) => t.id).sort());
  });

  it("shards the named tenants only", () => {
    // With 2 shards: "2" is in slice 1; "1", "3", and the unnamed "4" and "5" are in slice 2.
    const slice = (index: number) =>
      chooseTenants(FLEET, { config: config(), tenants: ["3", "2", "1"], shard: { index, count: 2 } }).map((t) => t.id);
    assert.deepEqual(slice(1), ["2"]);
    assert.deepEqual(slice(2), ["3", "1"]);
  });
});

describe("selectTenants", () => {
  it("finds schools by school_id, school_database or school_name (any case), in the order named", () => {
    assert.deepEqual(
      selectTenants(FLEET, ["grant_elementary", "1", "ADAMS MIDDLE"]).map((t) => t.id),
      ["3", "1", "2"],
    );
  });

  it("names a school once however often it is named", () => {
    assert.deepEqual(
      selectTenants(FLEET, ["1", "lincoln_high", "Lincoln High"]).map((t) => t.id),
      ["1"],
    );
  });

  it("returns the whole fleet when nothing is named", () => {
    assert.equal(selectTenants(FLEET, []), FLEET);
  });

  it("prefers a school_id over another school's database of that name", () => {
    const fleet = [tenant("7", "x7"), tenant("8", "7")];
    assert.deepEqual(
      selectTenants(fleet, ["7"]).map((t) => t.id),
      ["7"],
    );
  });

  it("reports an unknown name with the closest match", () => {
    const error = usageError(() => selectTenants(FLEET, ["lincon_high"]));
    assert.equal(
      error.message,
      "unknown tenant: lincon_high (did you mean lincoln_high?) (name a school by its school_id, school_database or school_name)",
    );
  });

  it("reports every unknown and ambiguous name at once", () => {
    const error = usageError(() => selectTenants(FLEET, ["nope", "twin", "zzzzzzzzzzzz"]));
    assert.equal(
      error.message,
      'unknown tenants: nope, zzzzzzzzzzzz (name a school by its school_id, school_database or school_name); "twin" is the name of schools 4, 5: name one by its school_id',
    );
  });
});

describe("closestTenantName", () => {
  it("suggests a database or school name a typo away", () => {
    assert.equal(closestTenantName(FLEET, "adams_midle"), "adams_middle");
    assert.equal(closestTenantName(FLEET, "Grant Elementry"), "Grant Elementary");
  });

  it("suggests nothing for another word altogether", () => {
    assert.equal(closestTenantName(FLEET, "zzzz"), undefined);
    assert.equal(closestTenantName([], "lincoln_high"), undefined);
  });

  it("allows 2 edits on a short name, a third of the length on a long one", () => {
    const fleet = [tenant("1", "abcd"), tenant("2", "abcdefghijklmnopqr")];
    assert.equal(closestTenantName(fleet, "abxy"), "abcd");
    assert.equal(closestTenantName(fleet, "axyz"), undefined);
    // 18 characters: up to 6 edits.
    assert.equal(closestTenantName(fleet, "abcdefghijkl123456"), "abcdefghijklmnopqr");
    assert.equal(closestTenantName(fleet, "abcdefghijk1234567"), undefined);
  });
});

describe("requireSelection", () => {
  const all = (set: boolean) => ({ flag: "--all-tenants", set });

  it("accepts names, or the all-of-them flag", () => {
    assert.doesNotThrow(() => requireSelection(["1"], all(false), "what"));
    assert.doesNotThrow(() => requireSelection([], all(true), "what"));
    assert.doesNotThrow(() => requireSelection(["1"], null, "what"));
  });

  it("refuses neither, with the command's own words", () => {
    assert.equal(usageError(() => requireSelection([], all(false), "name some")).message, "name some");
    assert.equal(usageError(() => requireSelection(undefined, null, "name some")).message, "name some");
  });

  it("refuses both", () => {
    assert.equal(
      usageError(() => requireSelection(["1"], all(true), "what")).message,
      "name tenants or use --all-tenants, not both",
    );
  });
});

describe("reservedDatabaseProblem", () => {
  it("reserves the tool's own prefix", () => {
    assert.match(
      reservedDatabaseProblem(`${TOOL_DATABASE_PREFIX}template_x`, config()) ?? "",
      /names starting with tenant_migrate_ are tenant-migrate's own/,
    );
  });

  it("reserves the server's databases, the catalog's and every TENANT_SERVERS admin database", () => {
    for (const name of ["postgres", "template0", "template1", "the_catalog", "east_admin"]) {
      assert.match(reservedDatabaseProblem(name, config()) ?? "", /is the catalog's or a server's own/, name);
    }
  });

  it("takes the catalog database from CATALOG_DB while the embedded catalog has not started", () => {
    const embedded = config({ catalog: undefined, catalogDatabase: "emb_catalog" });
    assert.ok(reservedDatabaseProblem("emb_catalog", embedded));
    assert.equal(reservedDatabaseProblem("the_catalog", embedded), undefined);
  });

  it("leaves a school's name alone", () => {
    assert.equal(reservedDatabaseProblem("lincoln_high", config()), undefined);
    assert.equal(reservedDatabaseProblem("tenant_migrate", config()), undefined, "the prefix needs its underscore");
  });
});

describe("rowProblems", () => {
  it("finds nothing wrong with a clean fleet", () => {
    assert.equal(rowProblems(FLEET, config()).size, 0);
  });

  it("refuses a name that is not a lower-case PostgreSQL name, and a reserved one", () => {
    const problems = rowProblems(
      [tenant("1", "Bad-Name"), tenant("2", "postgres"), tenant("3", ""), tenant("4", "fine")],
      config(),
    );
    assert.match(problems.get("1") ?? "", /^school 1: database name "Bad-Name" is not a lower-case PostgreSQL name/);
    assert.match(problems.get("2") ?? "", /^school 2: database "postgres" is the catalog's or a server's own/);
    assert.equal(problems.get("3"), "school 3: database name is empty");
    assert.equal(problems.has("4"), false);
  });

  it("fails every row that names one database on one server, naming the others", () => {
    const problems = rowProblems(
      [tenant("1", "shared"), tenant("2", "shared"), tenant("3", "shared"), tenant("4", "alone")],
      config(),
    );
    assert.equal(problems.get("1"), 'school 1: database "shared" is also named by school 2, 3');
    assert.equal(problems.get("2"), 'school 2: database "shared" is also named by school 1, 3');
    assert.equal(problems.get("3"), 'school 3: database "shared" is also named by school 1, 2');
    assert.equal(problems.has("4"), false);
  });

  it("counts a null and an empty school_server as the catalog's server", () => {
    const problems = rowProblems([tenant("1", "shared", null), tenant("2", "shared", "")], config());
    assert.equal(problems.size, 2);
  });

  it("leaves one database name on two server names to the server identity check", () => {
    assert.equal(rowProblems([tenant("1", "shared", null), tenant("2", "shared", "east")], config()).size, 0);
  });

  it("reports a bad name as such, not as a duplicate", () => {
    const problems = rowProblems([tenant("1", "Bad"), tenant("2", "Bad")], config());
    assert.match(problems.get("1") ?? "", /not a lower-case PostgreSQL name/);
    assert.match(problems.get("2") ?? "", /not a lower-case PostgreSQL name/);
  });
});

describe("placeTenant and serverOfTenant", () => {
  it("puts a school with no school_server on the catalog's server", () => {
    for (const server of [null, ""]) {
      const placement = placeTenant(config(), tenant("1", "lincoln_high", server));
      assert.deepEqual(placement, {
        settings: { ...CATALOG, database: "lincoln_high" },
        admin: CATALOG,
        serverName: "catalog",
      });
    }
  });

  it("puts a school on its TENANT_SERVERS server, with that server's admin connection", () => {
    const placement = placeTenant(config(), tenant("3", "grant_elementary", "east"));
    assert.deepEqual(placement, {
      settings: { ...EAST, database: "grant_elementary" },
      admin: EAST,
      serverName: "east",
    });
  });

  it("refuses a server name TENANT_SERVERS does not have", () => {
    assert.throws(() => placeTenant(config(), tenant("9", "x", "north")), {
      message: 'school_server "north" is not a server named in TENANT_SERVERS',
    });
  });

  it("refuses while the embedded catalog has not started", () => {
    usageError(() => placeTenant(config({ catalog: undefined }), tenant("1", "x")));
  });

  it("serverOfTenant keys a school by host and port, `?` when it cannot be placed", () => {
    const of = serverOfTenant(config());
    assert.equal(of(tenant("1", "a")), "cat-host:5432");
    assert.equal(of(tenant("2", "b", "west")), "west-host:6001");
    assert.equal(of(tenant("3", "c", "north")), "?");
  });
});

describe("server aliases", () => {
  // "east" and "east2" are two spellings of one server; "west" is another server.
  const EAST2: ConnectionSettings = { ...EAST, host: "10.0.0.5" };
  const place = (t: Tenant, admin: ConnectionSettings) =>
    [t, { settings: { ...admin, database: t.database }, admin, serverName: t.server ?? "catalog" }] as [
      Tenant,
      ReturnType<typeof placeTenant>,
    ];
  const identities = (known: Record<string, string>, unknown: Record<string, string> = {}): ServerIdentities => ({
    of: (settings) => known[`${settings.host}:${settings.port}`] ?? `${settings.host}:${settings.port}`,
    unknown: new Map(Object.entries(unknown)),
  });

  it("possibleAliases: servers of rows naming one database on differently named servers", () => {
    const placed = [
      place(tenant("1", "shared", "east"), EAST),
      place(tenant("2", "shared", "east2"), EAST2),
      place(tenant("3", "alone", "west"), WEST),
    ];
    assert.deepEqual([...possibleAliases(placed)].sort(), ["10.0.0.5:6000", "east-host:6000"]);
  });

  it("possibleAliases: one server name twice is rowProblems' case, not an alias", () => {
    assert.equal(
      possibleAliases([place(tenant("1", "shared", "east"), EAST), place(tenant("2", "shared", "east"), EAST)]).size,
      0,
    );
  });

  it("sameDatabaseProblems: two spellings of one server reaching one database fail both rows", () => {
    const placed = [place(tenant("1", "shared", "east"), EAST), place(tenant("2", "shared", "east2"), EAST2)];
    const problems = sameDatabaseProblems(
      placed,
      identities({ "east-host:6000": "sys1/6000/t0", "10.0.0.5:6000": "sys1/6000/t0" }),
    );
    assert.equal(problems.size, 2);
    assert.match(
      problems.get("1") ?? "",
      /^school 1: database "shared" on east-host:6000 \(server east\) is the same database as school 2 \(server east2, 10\.0\.0\.5:6000\)/,
    );
    assert.match(problems.get("2") ?? "", /is the same database as school 1 \(server east, east-host:6000\)/);
  });

  it("sameDatabaseProblems: one database name on two different servers is fine", () => {
    const placed = [place(tenant("1", "shared", "east"), EAST), place(tenant("2", "shared", "west"), WEST)];
    assert.equal(sameDatabaseProblems(placed, identities({ "east-host:6000": "A", "west-host:6001": "B" })).size, 0);
  });

  // "east" could be asked, "west" could not: is west's "shared" east's "shared"?
  const unasked = () =>
    sameDatabaseProblems(
      [
        place(tenant("1", "shared", "east"), EAST),
        place(tenant("2", "shared", "west"), WEST),
        place(tenant("3", "other", "west"), WEST),
      ],
      identities({ "east-host:6000": "A" }, { "west-host:6001": "connection refused" }),
    );

  it("sameDatabaseProblems: a server that could not be asked fails the rows that might share a database", () => {
    assert.match(
      unasked().get("2") ?? "",
      /^school 2: database "shared" is also named by a school on another server, and the server at west-host:6001 could not be asked whether it is the same one: connection refused$/,
    );
    assert.equal(unasked().has("1"), false, "the server that answered keeps its row");
  });

  it("sameDatabaseProblems: a row on that server whose database no other row names is not failed", () => {
    assert.deepEqual([...unasked().keys()], ["2"]);
  });
});
