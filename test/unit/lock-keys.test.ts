import assert from "node:assert/strict";
import { test } from "node:test";
import { ADVISORY_LOCKS } from "../../src/core/lock-keys.ts";

const INT4_MIN = -(2 ** 31);
const INT4_MAX = 2 ** 31 - 1;

test("advisory lock values are distinct within each lock space", () => {
  const bySpace = new Map<string, Map<number, string>>();
  for (const lock of ADVISORY_LOCKS) {
    const seen = bySpace.get(lock.space) ?? new Map<number, string>();
    assert.equal(seen.get(lock.value), undefined, `${lock.name} reuses the value of ${seen.get(lock.value)}`);
    seen.set(lock.value, lock.name);
    bySpace.set(lock.space, seen);
  }
  assert.equal(bySpace.size, 2, "both spaces are in use");
});

test("every value fits the SQL type its space passes it as", () => {
  for (const lock of ADVISORY_LOCKS) {
    assert.ok(Number.isSafeInteger(lock.value), `${lock.name} is an exact integer`);
    if (lock.space === "single bigint key") continue;
    assert.ok(lock.value >= INT4_MIN && lock.value <= INT4_MAX, `${lock.name} fits int4`);
  }
});

test("every lock is listed once, by name", () => {
  const names = ADVISORY_LOCKS.map((lock) => lock.name);
  assert.deepEqual(names, [...new Set(names)]);
  assert.deepEqual([...names].sort(), [
    "CATALOG_LOCK_KEY",
    "HISTORY_LOCK_KEY",
    "PROVISION_LOCK_CLASS",
    "SCRATCH_LOCK_CLASS",
    "TENANT_LOCK_KEY",
  ]);
});
