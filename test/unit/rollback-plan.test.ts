// What a rollback undoes, decided from the applied list alone (planRollback,
// emptiesTenant), and applied migrations that no file matches.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { type AppliedMigration, unknownMigrations, unknownMigrationsError } from "../../src/core/knex-state.ts";
import { MigrationFolder } from "../../src/core/migration-folder.ts";
import { emptiesTenant, pinRollback, planRollback } from "../../src/core/tenant-work.ts";

/** Applied migrations, oldest first: `a1` is migration a in batch 1. */
function applied(...items: string[]): AppliedMigration[] {
  return items.map((item) => ({ name: item.slice(0, -1), batch: Number(item.slice(-1)) }));
}

// a and b in batch 1, c in batch 2, d and e in batch 3.
const FIVE = applied("a1", "b1", "c2", "d3", "e3");

describe("pinRollback: what a retried rollback finishes", () => {
  it("pins --step N to the newest migration the first plan keeps, so a retry undoes no more", () => {
    const mode = { kind: "steps", steps: 2 } as const;
    const pinned = pinRollback(FIVE, planRollback(FIVE, mode), mode);
    assert.deepEqual(pinned, { kind: "to", name: "b" });
    // The first attempt undid e and d, then lost its connection: the retry undoes c only,
    // where counting two batches again would undo c, b and a.
    const afterFirstTry = applied("a1", "b1", "c2");
    assert.deepEqual(planRollback(afterFirstTry, pinned), ["c"]);
    assert.deepEqual(planRollback(afterFirstTry, mode), ["c", "b", "a"]);
  });

  it("pins the last batch the same way, and leaves --all and --to as they are", () => {
    assert.deepEqual(pinRollback(FIVE, ["e", "d"], { kind: "last" }), { kind: "to", name: "c" });
    assert.deepEqual(pinRollback(FIVE, ["e", "d", "c", "b", "a"], { kind: "all" }), { kind: "all" });
    assert.deepEqual(pinRollback(FIVE, ["e"], { kind: "to", name: "d" }), { kind: "to", name: "d" });
  });
});

describe("planRollback", () => {
  it("undoes the newest batch by default, newest first", () => {
    assert.deepEqual(planRollback(FIVE, { kind: "last" }), ["e", "d"]);
  });

  it("undoes n batches with steps", () => {
    assert.deepEqual(planRollback(FIVE, { kind: "steps", steps: 1 }), ["e", "d"]);
    assert.deepEqual(planRollback(FIVE, { kind: "steps", steps: 2 }), ["e", "d", "c"]);
    assert.deepEqual(planRollback(FIVE, { kind: "steps", steps: 3 }), ["e", "d", "c", "b", "a"]);
  });

  it("stops at the oldest batch when steps exceed the batches", () => {
    assert.deepEqual(planRollback(FIVE, { kind: "steps", steps: 99 }), ["e", "d", "c", "b", "a"]);
  });

  it("undoes everything with all, newest first", () => {
    assert.deepEqual(planRollback(FIVE, { kind: "all" }), ["e", "d", "c", "b", "a"]);
  });

  it("undoes the migrations after `to`, keeping `to` itself, across batch boundaries", () => {
    assert.deepEqual(planRollback(FIVE, { kind: "to", name: "b" }), ["e", "d", "c"]);
    assert.deepEqual(planRollback(FIVE, { kind: "to", name: "d" }), ["e"]);
    assert.deepEqual(planRollback(FIVE, { kind: "to", name: "a" }), ["e", "d", "c", "b"]);
  });

  it("plans nothing when `to` is already the newest applied", () => {
    assert.deepEqual(planRollback(FIVE, { kind: "to", name: "e" }), []);
  });

  it("refuses a `to` that is not applied on the tenant", () => {
    assert.throws(() => planRollback(FIVE, { kind: "to", name: "zz" }), {
      message: "migration zz is not applied on this tenant",
    });
    assert.throws(() => planRollback([], { kind: "to", name: "a" }), /migration a is not applied/);
  });

  it("plans nothing on a tenant with nothing applied", () => {
    assert.deepEqual(planRollback([], { kind: "last" }), []);
    assert.deepEqual(planRollback([], { kind: "steps", steps: 3 }), []);
    assert.deepEqual(planRollback([], { kind: "all" }), []);
  });

  it("never changes the applied list it is given", () => {
    const list = applied("a1", "b2");
    const copy = structuredClone(list);
    planRollback(list, { kind: "all" });
    planRollback(list, { kind: "last" });
    assert.deepEqual(list, copy);
  });
});

describe("emptiesTenant", () => {
  it("is true when the last batch is everything the tenant has (provisioned in one go)", () => {
    assert.equal(emptiesTenant(applied("a1", "b1", "c1"), { kind: "last" }), true);
    assert.equal(emptiesTenant(applied("a1", "b1"), { kind: "steps", steps: 1 }), true);
  });

  it("is true when steps reach the oldest batch", () => {
    assert.equal(emptiesTenant(FIVE, { kind: "steps", steps: 3 }), true);
    assert.equal(emptiesTenant(FIVE, { kind: "steps", steps: 4 }), true);
  });

  it("is false when something stays applied", () => {
    assert.equal(emptiesTenant(FIVE, { kind: "last" }), false);
    assert.equal(emptiesTenant(FIVE, { kind: "steps", steps: 2 }), false);
  });

  it("is false for --all and --to, which say what they mean", () => {
    assert.equal(emptiesTenant(applied("a1"), { kind: "all" }), false);
    assert.equal(emptiesTenant(applied("a1", "b1"), { kind: "to", name: "a" }), false);
  });

  it("is false on a tenant with nothing applied (nothing to empty)", () => {
    assert.equal(emptiesTenant([], { kind: "last" }), false);
  });
});

describe("unknownMigrations", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "tenant-migrate-unit-unknown-"));
  for (const name of ["001_a.js", "002_b.js"]) writeFileSync(path.join(dir, name), "");
  after(() => rmSync(dir, { recursive: true, force: true }));
  const folder = new MigrationFolder(dir, "TEST");

  it("names the applied migrations the folder has no file for, in applied order", () => {
    assert.deepEqual(unknownMigrations(applied("001_a.js1", "009_gone.js1", "002_b.js2", "000_old.js2"), folder), [
      "009_gone.js",
      "000_old.js",
    ]);
  });

  it("is empty when every applied migration has its file", () => {
    assert.deepEqual(unknownMigrations(applied("001_a.js1", "002_b.js1"), folder), []);
    assert.deepEqual(unknownMigrations([], folder), []);
  });

  it("its error lists them all, in knex's words too", () => {
    assert.equal(
      unknownMigrationsError(["x.js", "y.js"]).message,
      "the database has applied migrations that no file matches: x.js, y.js (knex calls this a corrupt migration directory)",
    );
  });
});
