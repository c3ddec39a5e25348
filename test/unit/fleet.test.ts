// The fleet runner with fake tenant work (no database): canary, --max-failures,
// --on-error abort, skipped work, partial failures, the summary; schema
// fingerprints and their comparison; the tool's errors as text.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  ConfigError,
  describeError,
  errorCode,
  InterruptedError,
  TenantMigrateError,
  TenantSkipped,
  TenantWorkError,
  UsageError,
} from "../../src/core/errors.ts";
import { type FleetOptions, runFleet } from "../../src/core/fleet.ts";
import type { FleetEvent, Tenant, TenantOutcome } from "../../src/core/fleet-types.ts";
import { addSecret } from "../../src/core/redact.ts";
import { compareSchemas, describeObjects, objectKey, type SchemaObject } from "../../src/core/schema-fingerprint.ts";
import { rememberBindings, withoutStatementValues } from "../../src/core/sql-literals.ts";

const fleet = (n: number): Tenant[] =>
  Array.from({ length: n }, (_, i) => ({
    id: String(i + 1),
    name: `School ${i + 1}`,
    database: `school_${i + 1}`,
    server: null,
  }));

/** runFleet over `n` tenants, one at a time; `work` returns an outcome or throws. */
async function run(n: number, work: (tenant: Tenant) => TenantOutcome, options: Partial<FleetOptions> = {}) {
  const events: FleetEvent[] = [];
  const result = await runFleet(fleet(n), async (tenant) => work(tenant), {
    concurrency: 1,
    onError: "continue",
    onEvent: (event) => events.push(event),
    ...options,
  });
  const notices = events.flatMap((e) => (e.type === "notice" ? [e.message] : []));
  return { result, events, notices, kinds: result.tenants.map((t) => t.result) };
}

const migrated = (): TenantOutcome => ({ result: "migrated", migrations: ["001.js"] });
const failOn =
  (...ids: string[]) =>
  (tenant: Tenant): TenantOutcome => {
    if (ids.includes(tenant.id)) throw new Error(`boom on ${tenant.id}`);
    return migrated();
  };

describe("runFleet", () => {
  it("runs every tenant and sums up, results in the order given", async () => {
    const { result, events } = await run(3, migrated);
    assert.deepEqual(
      result.tenants.map((t) => [t.id, t.result, t.migrations]),
      [
        ["1", "migrated", ["001.js"]],
        ["2", "migrated", ["001.js"]],
        ["3", "migrated", ["001.js"]],
      ],
    );
    assert.equal(result.ok, true);
    assert.equal(result.interrupted, false);
    assert.deepEqual(
      { ...result.summary, ms: 0 },
      { total: 3, succeeded: 3, failed: 0, skipped: 0, ms: 0, byResult: { migrated: 3 } },
    );
    assert.deepEqual(
      events.map((e) => e.type),
      ["fleet-started", ...Array(3).fill(["tenant-started", "tenant-finished"]).flat()],
    );
  });

  it("skips the rest when a canary tenant fails", async () => {
    const { result, kinds, notices } = await run(5, failOn("2"), { canary: 2 });
    assert.deepEqual(kinds, ["migrated", "failed", "skipped", "skipped", "skipped"]);
    assert.deepEqual(
      result.tenants.slice(2).map((t) => t.reason),
      Array(3).fill("a canary tenant failed"),
    );
    assert.deepEqual(notices, ["a canary tenant failed: skipping the other 3"]);
    assert.equal(result.ok, false);
  });

  it("runs the rest when the canaries pass; a canary larger than the fleet is the fleet", async () => {
    assert.deepEqual((await run(4, failOn("4"), { canary: 2 })).kinds, ["migrated", "migrated", "migrated", "failed"]);
    assert.deepEqual((await run(2, migrated, { canary: 9 })).kinds, ["migrated", "migrated"]);
  });

  it("starts no new tenant once more than --max-failures have failed", async () => {
    const { result, kinds, notices } = await run(5, failOn("1", "2", "4"), { maxFailures: 1 });
    assert.deepEqual(kinds, ["failed", "failed", "skipped", "skipped", "skipped"]);
    assert.equal(result.tenants[2]?.reason, "more than --max-failures 1 failed");
    assert.deepEqual(notices, [
      "2 tenants failed, more than --max-failures 1: no new tenant starts; the rest are skipped",
    ]);
    assert.deepEqual((await run(3, failOn("1", "3"), { maxFailures: 2 })).kinds, ["failed", "migrated", "failed"]);
  });

  it("--on-error abort stops after the first failure", async () => {
    const { result, kinds, notices } = await run(3, failOn("1"), { onError: "abort", maxFailures: 5 });
    assert.deepEqual(kinds, ["failed", "skipped", "skipped"]);
    assert.equal(result.tenants[1]?.reason, "a tenant failed (--on-error abort)");
    assert.deepEqual(notices, ["a tenant failed and --on-error is abort: no new tenant starts; the rest are skipped"]);
  });

  it("turns TenantSkipped into a skipped tenant with its reason, not a failure", async () => {
    const { result, kinds } = await run(
      2,
      (tenant) => {
        if (tenant.id === "1") throw new TenantSkipped("school_1: not provisioned yet");
        throw new TenantSkipped("no school name in this one");
      },
      { maxFailures: 0 },
    );
    assert.deepEqual(kinds, ["skipped", "skipped"], "a skip is no failure: --max-failures 0 never stops");
    assert.deepEqual(
      result.tenants.map((t) => t.reason),
      ["not provisioned yet", "no school name in this one"],
    );
    assert.equal(result.summary.failed, 0);
    assert.equal(result.ok, false);
  });

  it("keeps a failure's partial migrations and its error, secrets masked", async () => {
    addSecret("Fleet-Secret-77");
    const { result } = await run(1, () => {
      throw Object.assign(new TenantWorkError("password Fleet-Secret-77 was refused", ["001.js"]), { code: "28P01" });
    });
    assert.deepEqual(result.tenants[0]?.migrations, ["001.js"]);
    assert.equal(result.tenants[0]?.error, "password *** was refused (SQLSTATE 28P01)");
  });

  it("reports each final result to onResult, carries `recreated` and counts not-rehearsable apart", async () => {
    const seen: string[] = [];
    const recreated = { firstSeen: "2026-01-01T00:00:00Z", lastSeen: "2026-02-01T00:00:00Z" };
    const { result } = await run(
      3,
      (tenant) =>
        tenant.id === "1"
          ? { result: "provisioned", migrations: [], recreated }
          : tenant.id === "2"
            ? { result: "not-rehearsable", migrations: ["002.js"] }
            : { result: "rehearsed", migrations: [] },
      { onResult: (r) => seen.push(`${r.id}:${r.result}`) },
    );
    assert.deepEqual(seen, ["1:provisioned", "2:not-rehearsable", "3:rehearsed"]);
    assert.deepEqual(result.tenants[0]?.recreated, recreated);
    assert.equal(result.summary.succeeded, 2);
    assert.equal(result.summary.notRehearsable, 1);
    assert.equal(result.ok, true, "not rehearsable is neither failed nor skipped");
  });

  it("an empty fleet is a success with nothing done", async () => {
    const { result } = await run(0, migrated);
    assert.equal(result.ok, true);
    assert.deepEqual(result.summary.byResult, {});
    assert.equal(result.summary.total, 0);
  });

  it("records a tenant's server when it has one", async () => {
    const result = await runFleet(
      [{ id: "1", name: "", database: "x", server: "east" }],
      async () => ({ result: "up-to-date", migrations: [] }),
      { concurrency: 1, onError: "continue" },
    );
    assert.equal(result.tenants[0]?.server, "east");
    assert.equal((await run(1, migrated)).result.tenants[0]?.server, undefined);
  });
});

describe("runFleet: servers, thrown errors, signals", () => {
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

describe("schema fingerprints", () => {
  const o = (kind: string, name: string, definition = ""): SchemaObject => ({ kind, name, definition });
  const objects = [
    o("table", "public.lunch_day", "table"),
    o("column", "public.lunch_day.menu", "text not null"),
    o("column", "public.lunch_day.Menu", "text"),
    o("index", "public.lunch_day_menu", "CREATE INDEX ON public.lunch_day USING btree (menu)"),
  ];

  it("sorts objects by kind and name in byte order, whatever order they come in", () => {
    const a = describeObjects(objects);
    const b = describeObjects([...objects].reverse());
    assert.deepEqual(a, b);
    assert.deepEqual(a.objects.map(objectKey), [
      "column public.lunch_day.Menu",
      "column public.lunch_day.menu",
      "index public.lunch_day_menu",
      "table public.lunch_day",
    ]);
    assert.match(a.fingerprint, /^[0-9a-f]{64}$/);
  });

  it("changes the fingerprint with any definition, name or kind", () => {
    const base = describeObjects(objects).fingerprint;
    for (const changed of [
      [...objects.slice(1), o("table", "public.lunch_day", "table, unlogged")],
      [...objects.slice(1), o("table", "public.lunch_days", "table")],
      [...objects.slice(1), o("view", "public.lunch_day", "table")],
      objects.slice(1),
    ]) {
      assert.notEqual(describeObjects(changed).fingerprint, base);
    }
  });

  it("compareSchemas: what the school added, is missing and defines otherwise", () => {
    const reference = describeObjects(objects);
    const school = describeObjects([
      o("table", "public.lunch_day", "table"),
      o("column", "public.lunch_day.menu", "text"),
      o("column", "public.lunch_day.allergens", "text[]"),
      o("index", "public.lunch_day_menu", "CREATE INDEX ON public.lunch_day USING btree (menu)"),
    ]);
    const difference = compareSchemas(reference, school);
    assert.deepEqual(difference.added.map(objectKey), ["column public.lunch_day.allergens"]);
    assert.deepEqual(difference.missing.map(objectKey), ["column public.lunch_day.Menu"]);
    assert.deepEqual(difference.changed, [
      { kind: "column", name: "public.lunch_day.menu", reference: "text not null", tenant: "text" },
    ]);
    assert.deepEqual(compareSchemas(reference, reference), { added: [], missing: [], changed: [] });
  });
});

describe("errors as text", () => {
  it("describeError adds a SQLSTATE, detail and hint, and nothing for other codes", () => {
    assert.equal(
      describeError(Object.assign(new Error("relation exists"), { code: "42P07", detail: "d", hint: "h" })),
      "relation exists (SQLSTATE 42P07); detail: d; hint: h",
    );
    assert.equal(describeError(Object.assign(new Error("connect failed"), { code: "ECONNREFUSED" })), "connect failed");
    assert.equal(describeError(Object.assign(new Error(""), { name: "AbortError" })), "AbortError");
    assert.equal(describeError("a string"), "a string");
    assert.equal(describeError(undefined), "undefined");
  });

  it("masks the values bound to a failed statement where the server's message repeats them", () => {
    const error = new Error(
      'insert into "users" ("email", "age") values ($1, $2) - invalid input syntax for type integer: "Bound-Value-1"',
    );
    rememberBindings(error, ["bob@example.com", "Bound-Value-1", 42, ""]);
    assert.equal(
      describeError(error),
      'insert into "users" ("email", "age") values ($1, $2) - invalid input syntax for type integer: "***"',
    );
    const other = new Error(error.message);
    assert.equal(withoutStatementValues(other.message, other), other.message, "another error's bindings are its own");
    rememberBindings(null, ["x"]);
    rememberBindings(other, "not a list");
    assert.equal(withoutStatementValues(other.message, other), other.message);
  });

  it("errorCode reads a string code only", () => {
    assert.equal(errorCode(Object.assign(new Error(), { code: "42P01" })), "42P01");
    assert.equal(errorCode({ code: 53300 }), undefined);
    assert.equal(errorCode(null), undefined);
  });

  it("the tool's errors carry their exit code and name; a config error lists every problem", () => {
    assert.deepEqual(
      [new TenantMigrateError("x"), new UsageError("x"), new InterruptedError("x")].map((e) => [e.name, e.exitCode]),
      [
        ["TenantMigrateError", 1],
        ["UsageError", 2],
        ["InterruptedError", 130],
      ],
    );
    assert.equal(new ConfigError(["one"]).message, "configuration error: one");
    const many = new ConfigError(["one", "two"]);
    assert.equal(many.message, "configuration errors:\n  - one\n  - two");
    assert.equal(many.exitCode, 2);
    assert.ok(many instanceof UsageError);
  });
});
