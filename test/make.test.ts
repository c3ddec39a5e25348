// `make NAME`: a new, timestamped migration file with an up and a down, in the
// app folder, or with --catalog in the catalog folder (never the tool's own).
import assert from "node:assert/strict";
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { assertUpAndDown, ROOT, runCli, stampTime, withFleet } from "./helpers.ts";

describe("make", () => {
  it("make NAME writes a timestamped app migration with up and down", async () => {
    await withFleet({ migrateCatalog: false }, async (fleet) => {
      const before = Date.now();
      const result = await fleet.run(["make", "add_allergens"]);
      assert.equal(result.code, 0, result.stderr);
      const made = readdirSync(fleet.appMigrations).filter((f) => f.endsWith("_add_allergens.js"));
      assert.equal(made.length, 1);
      const file = made[0] as string;
      assert.match(file, /^\d{14}_add_allergens\.js$/);
      const stamp = file.slice(0, 14);
      assert.ok(Math.abs(stampTime(stamp) - before) < 60_000, `timestamp ${stamp} is now (UTC)`);
      assert.ok(result.stdout.includes(path.join(fleet.appMigrations, file)));
      assertUpAndDown(path.join(fleet.appMigrations, file));
      // It sorts after the existing migrations, so it is the newest.
      assert.equal(readdirSync(fleet.appMigrations).sort().at(-1), file);
      const bad = await fleet.run(["make", "add allergens; rm -rf"]);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /may only hold letters, digits/);
    });
  });

  it("make NAME --catalog writes into --catalog-migrations (or CATALOG_MIGRATIONS_DIR), not the app folder", async () => {
    await withFleet({ migrateCatalog: false }, async (fleet) => {
      const dir = path.join(fleet.cwd, "my_catalog");
      mkdirSync(dir);
      const appBefore = readdirSync(fleet.appMigrations);
      const result = await fleet.run(["make", "add_district", "--catalog", "--catalog-migrations", dir]);
      assert.equal(result.code, 0, result.stderr);
      const files = readdirSync(dir);
      assert.equal(files.length, 1);
      assert.match(files[0] as string, /^\d{14}_add_district\.js$/);
      assertUpAndDown(path.join(dir, files[0] as string));
      assert.deepEqual(readdirSync(fleet.appMigrations), appBefore, "the app folder is left alone");

      // CATALOG_MIGRATIONS_DIR names the folder as well.
      const fromEnv = path.join(fleet.cwd, "env_catalog");
      mkdirSync(fromEnv);
      const env = await fleet.run(["make", "add_region", "--catalog"], { env: { CATALOG_MIGRATIONS_DIR: fromEnv } });
      assert.equal(env.code, 0, env.stderr);
      assert.match(readdirSync(fromEnv).join(), /^\d{14}_add_region\.js$/);
      assert.deepEqual(readdirSync(fleet.appMigrations), appBefore);
    });
  });

  it("make NAME --catalog without a catalog folder never writes into the tool's own bundled migrations", async () => {
    // A private copy of the installed package, so that a stray file cannot reach the repository's folder.
    const pkg = mkdtempSync(path.join(tmpdir(), "tenant-migrate-pkg-"));
    const cwd = mkdtempSync(path.join(tmpdir(), "tenant-migrate-make-"));
    try {
      for (const entry of ["bin", "dist", "catalog_migrations", "package.json"]) {
        cpSync(path.join(ROOT, entry), path.join(pkg, entry), { recursive: true });
      }
      symlinkSync(path.join(ROOT, "node_modules"), path.join(pkg, "node_modules"));
      chmodSync(cwd, 0o755);
      writeFileSync(path.join(cwd, "package.json"), '{ "type": "module" }\n');
      const bundledBefore = readdirSync(path.join(pkg, "catalog_migrations")).sort();

      const result = await runCli(["make", "add_district", "--catalog"], {
        cwd,
        bin: path.join(pkg, "bin", "tenant-migrate.js"),
      });
      assert.deepEqual(
        readdirSync(path.join(pkg, "catalog_migrations")).sort(),
        bundledBefore,
        `the bundled catalog folder was changed: ${result.stdout}${result.stderr}`,
      );
      if (result.code === 0) {
        assert.match(result.stdout, new RegExp(`created ${path.join(cwd, "catalog_migrations")}`));
      } else {
        assert.equal(result.code, 2, result.stderr);
        assert.match(result.stderr, /catalog/);
      }
    } finally {
      rmSync(pkg, { recursive: true, force: true });
      rmSync(cwd, { recursive: true, force: true });
    }
  });
});
