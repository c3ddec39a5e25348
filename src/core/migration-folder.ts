import { readdirSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import type { Knex } from "knex";
import { UsageError } from "./errors.js";

const MIGRATION_FILE = /\.(js|cjs|mjs|ts|cts|mts)$/;

export interface MigrationModule {
  up: (knex: Knex) => PromiseLike<unknown>;
  down: (knex: Knex) => PromiseLike<unknown>;
  config?: { transaction?: boolean };
}

export interface MigrationFile {
  /** The file name, as knex stores it in knex_migrations. */
  name: string;
  file: string;
}

/**
 * One migrations folder, read once per run (not once per tenant); modules are
 * imported on first use and shared by every tenant. It is also the knex
 * migrationSource, so knex's migrator runs exactly these files.
 */
export class MigrationFolder implements Knex.MigrationSource<MigrationFile> {
  readonly files: MigrationFile[];
  readonly names: string[];
  private readonly loaded = new Map<string, Promise<MigrationModule>>();

  constructor(
    readonly dir: string,
    setting: string,
  ) {
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      throw new UsageError(`${setting}: migrations folder ${dir} does not exist or cannot be read`);
    }
    // knex sorts by file name; .d.ts files are type declarations, not migrations.
    this.files = entries
      .filter((name) => MIGRATION_FILE.test(name) && !/\.d\.[cm]?ts$/.test(name))
      .sort()
      .map((name) => ({ name, file: path.join(dir, name) }));
    this.names = this.files.map((f) => f.name);
  }

  get latest(): string | undefined {
    return this.names.at(-1);
  }

  has(name: string): boolean {
    return this.names.includes(name);
  }

  /** Groups of files that share a name stem (`…_dup.js` and `…_dup.ts`): knex would run each of them. */
  sameStems(): string[][] {
    const byStem = new Map<string, string[]>();
    for (const name of this.names) {
      const stem = name.replace(MIGRATION_FILE, "");
      byStem.set(stem, [...(byStem.get(stem) ?? []), name]);
    }
    return [...byStem.values()].filter((names) => names.length > 1);
  }

  load(name: string): Promise<MigrationModule> {
    let module = this.loaded.get(name);
    if (!module) {
      const entry = this.files.find((f) => f.name === name);
      if (!entry) throw new Error(`migration ${name} is not in ${this.dir}`);
      module = importMigration(entry.file);
      this.loaded.set(name, module);
    }
    return module;
  }

  // knex's MigrationSource interface
  async getMigrations(): Promise<MigrationFile[]> {
    return this.files;
  }
  getMigrationName(migration: MigrationFile): string {
    return migration.name;
  }
  getMigration(migration: MigrationFile): Promise<MigrationModule> {
    return this.load(migration.name);
  }
}

async function importMigration(file: string): Promise<MigrationModule> {
  let loaded: Record<string, unknown>;
  try {
    if (/\.[cm]?ts$/.test(file)) {
      // TypeScript migrations run as they are: tsx compiles them on import.
      const { tsImport } = await import("tsx/esm/api");
      loaded = await tsImport(pathToFileURL(file).href, import.meta.url);
    } else {
      loaded = await import(pathToFileURL(file).href);
    }
  } catch (error) {
    throw new Error(`cannot load migration ${path.basename(file)}: ${(error as Error).message}`, { cause: error });
  }
  // CommonJS files arrive as { default: module.exports }.
  const candidate = (typeof loaded.up === "function" ? loaded : loaded.default) as MigrationModule | undefined;
  if (!candidate || typeof candidate.up !== "function" || typeof candidate.down !== "function") {
    throw new Error(`invalid migration ${path.basename(file)}: it must export both up and down functions`);
  }
  return candidate;
}
