// The CLI is a client of the public entry (src/index.ts): it reaches the
// library through nothing else, so the entry cannot fall behind the CLI.
// No database: `node --import tsx --test test/unit/public-api.test.ts`.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import type * as Api from "../../src/index.ts";

const src = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../src");

/** The types the public functions take or return: `npm run typecheck` fails when index.ts stops exporting one. */
export type PublicTypes = [
  Api.AddTenantOptions,
  Api.AddTenantResult,
  Api.AllResult,
  Api.CatalogMigrateResult,
  Api.CatalogStatus,
  Api.ChangedObject,
  Api.CommandOptions,
  Api.Config,
  Api.ConfigFlags,
  Api.ConnectionSettings,
  Api.DiffGroup,
  Api.DiffOptions,
  Api.DiffReference,
  Api.DiffState,
  Api.EmitEvent,
  Api.FleetCommandOptions,
  Api.FleetDiff,
  Api.FleetEvent,
  Api.FleetResult,
  Api.FleetStatus,
  Api.FleetSummary,
  Api.HistoryEntry,
  Api.MakeOptions,
  Api.MigrationExtension,
  Api.ProvisionOptions,
  Api.PruneAction,
  Api.PrunedTemplate,
  Api.PruneResult,
  Api.RecreatedDatabase,
  Api.RollbackOptions,
  Api.RunEntry,
  Api.SchemaObject,
  Api.SimpleResult,
  Api.SimpleTenantResult,
  Api.TemplateEntry,
  Api.TemplateOwner,
  Api.TemplatesResult,
  Api.Tenant,
  Api.TenantDiff,
  Api.TenantListEntry,
  Api.TenantResult,
  Api.TenantResultKind,
  Api.TenantState,
  Api.TenantStatus,
];

/** The values the entry exports: the commands, the errors to match with instanceof, helpers, defaults. */
const RUNTIME_EXPORTS = [
  "addTenant",
  "catalogStatus",
  "countByResult",
  "DEFAULT_APP_MIGRATIONS_DIR",
  "DEFAULT_CONCURRENCY",
  "DEFAULT_HISTORY_LIMIT",
  "DEFAULT_LOCK_TIMEOUT_MS",
  "DEFAULT_PG_LOCK_TIMEOUT_MS",
  "DEFAULT_RETRIES",
  "DEFAULT_RUNS_LIMIT",
  "describeConnection",
  "describeError",
  "dropTenants",
  "fleetDiff",
  "fleetStatus",
  "historyRuns",
  "listTemplates",
  "listTenants",
  "makeMigration",
  "migrateAll",
  "migrateCatalog",
  "migrateTenants",
  "provisionTenants",
  "pruneTemplates",
  "redact",
  "resolveConfig",
  "retryWaitMs",
  "rollbackCatalog",
  "rollbackTenants",
  "shardOf",
  "tenantHistory",
  "unlockTenants",
  "withServer",
  "ConfigError",
  "InterruptedError",
  "TenantMigrateError",
  "UsageError",
];

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return filesUnder(full);
    return entry.name.endsWith(".ts") ? [full] : [];
  });
}

/** Every module a file names: static imports, `export … from`, dynamic import(). */
function specifiers(text: string): string[] {
  const found: string[] = [];
  for (const match of text.matchAll(/\b(?:from|import)\s*\(?\s*["']([^"']+)["']/g)) found.push(match[1] as string);
  return found;
}

describe("public API", () => {
  it("src/cli reaches the library only through src/index.ts, never src/commands or src/core", () => {
    const files = filesUnder(path.join(src, "cli"));
    assert.ok(files.length > 10, `found only ${files.length} CLI files`);
    const offending: string[] = [];
    let throughIndex = 0;
    for (const file of files) {
      for (const spec of specifiers(readFileSync(file, "utf8"))) {
        if (!spec.startsWith(".")) continue;
        const target = path.resolve(path.dirname(file), spec);
        if (target === path.join(src, "index.js")) throughIndex++;
        const relative = path.relative(src, target);
        if (/^(commands|core)[/\\]/.test(relative)) offending.push(`${path.relative(src, file)}: ${spec}`);
      }
    }
    assert.deepEqual(offending, [], "import what the CLI needs from src/index.ts (export it there)");
    assert.ok(throughIndex > 10, `only ${throughIndex} imports of src/index.ts found: is the check reading the files?`);
  });

  it("src/index.ts exports the commands, the errors, the helpers and the defaults", async () => {
    const entry = (await import("../../src/index.ts")) as Record<string, unknown>;
    const missing = RUNTIME_EXPORTS.filter((name) => entry[name] === undefined);
    assert.deepEqual(missing, []);
    for (const name of ["TenantMigrateError", "UsageError", "ConfigError", "InterruptedError"]) {
      const error = entry[name] as new (...args: never[]) => Error;
      assert.ok(error.prototype instanceof Error, `${name} is an Error class`);
    }
  });
});
