// What the CLI prints, as text: escaping, failure causes and their grouping,
// result lines and the summary (no colour: the streams are not terminals).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { describeCause, failureCause } from "../../src/cli/causes.ts";
import { groupByCause } from "../../src/cli/ops-view.ts";
import {
  alignColumns,
  describeMigrations,
  formatMs,
  Output,
  resultWord,
  summaryLine,
  tenantLine,
} from "../../src/cli/output.ts";
import { firstLine, safe, safeLines } from "../../src/cli/safe.ts";
import { countByResult } from "../../src/core/fleet.ts";
import type { FleetResult, TenantResult } from "../../src/core/fleet-types.ts";

function result(overrides: Partial<TenantResult> = {}): TenantResult {
  return {
    id: "7",
    name: "Lincoln",
    database: "lincoln_high",
    result: "migrated",
    migrations: [],
    ms: 12,
    ...overrides,
  };
}

const failed = (error: string, overrides: Partial<TenantResult> = {}) =>
  result({ result: "failed", error, ...overrides });

describe("safe", () => {
  it("escapes control characters and bidirectional overrides, leaving other text as it is", () => {
    assert.equal(safe("x\r\u001b[2K✔ other up to date"), "x\\r\\x1b[2K✔ other up to date");
    assert.equal(safe("a\nb\tc\u0000d\u007fe\u009bf"), "a\\nb\\tc\\x00d\\x7fe\\x9bf");
    assert.equal(safe("evil\u202Etxt.js\u2066"), "evil\\u202etxt.js\\u2066");
    assert.equal(safe("école – 学校 ✔"), "école – 学校 ✔");
  });

  it("safeLines keeps line breaks; firstLine keeps only the first line, escaped", () => {
    assert.equal(safeLines("one\ntwo\r\n\u001b"), "one\ntwo\\r\n\\x1b");
    assert.equal(firstLine("first\u001b\r\nsecond"), "first\\x1b");
    assert.equal(firstLine(""), "");
  });
});

describe("failureCause", () => {
  it("splits a failed migration into migration, SQLSTATE and the server's message, without the statement", () => {
    const cause = failureCause(
      failed(
        'migration 001_lunch.js failed: create table "lunch" ("id" serial) - relation "lunch" already exists (SQLSTATE 42P07)',
      ),
    );
    assert.deepEqual(cause, {
      migration: "001_lunch.js",
      sqlstate: "42P07",
      message: 'relation "lunch" already exists',
    });
    assert.equal(describeCause(cause), '001_lunch.js · SQLSTATE 42P07 · relation "lunch" already exists');
  });

  it("keeps the statement when asked, and reads a failed rollback the same way", () => {
    const cause = failureCause(failed("rollback of 002_x.js failed: drop table t - table t is in use"), {
      withStatement: true,
    });
    assert.deepEqual(cause, {
      migration: "002_x.js",
      sqlstate: undefined,
      message: "drop table t - table t is in use",
    });
  });

  it("leaves a message with no migration, code or statement as it is", () => {
    assert.deepEqual(failureCause(failed("connect ECONNREFUSED 10.0.0.1:5432")), {
      migration: undefined,
      sqlstate: undefined,
      message: "connect ECONNREFUSED 10.0.0.1:5432",
    });
    assert.equal(failureCause(result({ result: "failed" })).message, "unknown error");
    assert.equal(describeCause({ message: "only this" }), "only this");
  });

  it("in generic form, reads the same for every school: its id, database and provision hint replaced", () => {
    const cause = failureCause(
      failed('school 7: database "lincoln_high" was created but cut short: run `tenant-migrate provision 7`'),
      { generic: true },
    );
    assert.equal(cause.message, 'database "<school>" was created but cut short: run `tenant-migrate provision <id>`');
  });

  it("in generic form, replaces the database's name only as a whole word", () => {
    const cause = failureCause(
      failed('school 2: database "b" does not exist; b.knex_migrations, b2 and db stay', { id: "2", database: "b" }),
      {
        generic: true,
      },
    );
    assert.equal(cause.message, 'database "<school>" does not exist; <school>.knex_migrations, b2 and db stay');
  });

  it("can keep only the first line, and escapes control characters of migration and message", () => {
    const cause = failureCause(failed("migration 00\u001b1.js failed: bad\u0007 thing\nsecond line"), {
      firstLineOnly: true,
    });
    assert.deepEqual(cause, { migration: "00\\x1b1.js", sqlstate: undefined, message: "bad\\x07 thing" });
  });

  it("cuts the statement at its own ` - `, not at one inside the server's detail", () => {
    const cause = failureCause(
      failed(
        'migration 003_price.js failed: update lunch set price = price + 1 - new row for relation "lunch" violates check constraint "p" (SQLSTATE 23514); detail: Failing row contains (1, Soup - hot, 5).',
      ),
    );
    assert.equal(
      cause.message,
      'new row for relation "lunch" violates check constraint "p"; detail: Failing row contains (1, Soup - hot, 5).',
    );
  });
});

describe("groupByCause", () => {
  it("groups schools that failed alike, biggest group first, their own names left out", () => {
    const groups = groupByCause([
      failed("migration 001.js failed: boom (SQLSTATE 42P07)", { id: "1", database: "school_a" }),
      failed('school 2: database "school_b" does not exist: run `tenant-migrate provision 2`', {
        id: "2",
        database: "school_b",
      }),
      failed('school 3: database "school_c" does not exist: run `tenant-migrate provision 3`\nmore', {
        id: "3",
        database: "school_c",
      }),
      failed("migration 001.js failed: boom (SQLSTATE 42P07)", { id: "4", database: "school_d" }),
      failed('school 5: database "school_e" does not exist: run `tenant-migrate provision 5`', {
        id: "5",
        database: "school_e",
      }),
    ]);
    assert.deepEqual(
      groups.map((g) => [describeCause(g.cause), g.tenants.map((t) => t.id)]),
      [
        ['database "<school>" does not exist: run `tenant-migrate provision <id>`', ["2", "3", "5"]],
        ["001.js · SQLSTATE 42P07 · boom", ["1", "4"]],
      ],
    );
  });
});

describe("result lines and the summary", () => {
  const stream = () => ({ isTTY: false, write: () => true }) as unknown as NodeJS.WriteStream;
  const output = new Output(false, stream(), stream());

  it("formatMs, resultWord, describeMigrations, alignColumns", () => {
    assert.deepEqual(
      [formatMs(0), formatMs(999), formatMs(1000), formatMs(31_249)],
      ["0 ms", "999 ms", "1.0 s", "31.2 s"],
    );
    assert.deepEqual(["up-to-date", "nothing-to-roll-back", "not-rehearsable", "some-new-kind"].map(resultWord), [
      "up to date",
      "nothing to roll back",
      "not rehearsable",
      "some new kind",
    ]);
    assert.equal(describeMigrations([]), "");
    assert.equal(describeMigrations(["a.js", "b\u001b.js"]), ": a.js, b\\x1b.js");
    assert.equal(describeMigrations(["a.js", "b.js", "c.js"]), ": 3 migrations, up to c.js");
    assert.equal(describeMigrations(["a.js", "b.js", "c.js"], true), ": a.js, b.js, c.js");
    assert.deepEqual(
      alignColumns([
        ["id", "database", "state"],
        ["10", "a", "up to date"],
      ]),
      ["id  database  state", "10  a         up to date"],
    );
  });

  it("a tenant line says what happened, the same facts off a terminal", () => {
    assert.equal(
      tenantLine(output, result({ migrations: ["a.js"], server: "east" }), false),
      "✔ lincoln_high (id 7, server east) migrated: a.js (12 ms)",
    );
    assert.equal(
      tenantLine(output, result({ migrations: ["a.js"] }), true),
      "✔ lincoln_high (id 7) would be migrated: a.js (12 ms)",
    );
    assert.equal(
      tenantLine(output, result({ result: "up-to-date" }), true),
      "· lincoln_high (id 7) up to date (12 ms)",
    );
    assert.equal(tenantLine(output, result({ result: "skipped" }), false), "- lincoln_high (id 7) skipped");
    assert.equal(
      tenantLine(output, failed("migration a.js failed: boom (SQLSTATE 42601)", { ms: 1500 }), false),
      "✖ lincoln_high (id 7) failed: a.js · SQLSTATE 42601 · boom (1.5 s)",
    );
    assert.equal(
      tenantLine(
        output,
        result({ result: "provisioned", recreated: { firstSeen: "2026-01-01", lastSeen: "2026-02-01" } }),
        false,
      ),
      "✔ lincoln_high (id 7) provisioned (its database had vanished: created again, empty) (12 ms)",
    );
    assert.equal(
      tenantLine(output, result({ database: "x\r\u001b[2K", id: "1\n" }), false),
      "✔ x\\r\\x1b[2K (id 1\\n) migrated (12 ms)",
    );
  });

  it("the summary counts each kind in a fixed order, and says dry run and interrupted", () => {
    const tenants = [
      result({ result: "failed" }),
      result({ result: "up-to-date" }),
      result({ result: "migrated" }),
      result({ result: "provisioned" }),
      result({ result: "migrated" }),
      result({ result: "skipped" }),
    ];
    const run = (interrupted: boolean, summary: Partial<FleetResult["summary"]> = {}): FleetResult => ({
      ok: false,
      tenants,
      interrupted,
      summary: {
        total: 6,
        succeeded: 4,
        failed: 1,
        skipped: 1,
        ms: 31_249,
        byResult: countByResult(tenants),
        ...summary,
      },
    });
    assert.deepEqual(countByResult(tenants), { failed: 1, "up-to-date": 1, migrated: 2, provisioned: 1, skipped: 1 });
    assert.equal(
      summaryLine(output, run(false)),
      "6 tenants: 1 provisioned · 2 migrated · 1 up to date · 1 failed · 1 skipped (31.2 s)",
    );
    assert.equal(
      summaryLine(output, run(true), true),
      "6 tenants (dry run): 1 would be provisioned · 2 would be migrated · 1 up to date · 1 failed · 1 skipped (31.2 s) (interrupted)",
    );
    assert.equal(
      summaryLine(output, { ...run(false, { total: 1, byResult: {} }), tenants: [] }),
      "1 tenant: nothing to do (31.2 s)",
    );
  });
});
