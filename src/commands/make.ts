import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { BUNDLED_CATALOG_MIGRATIONS, type Config } from "../core/config.js";
import { UsageError } from "../core/errors.js";
import type { CommandOptions } from "./options.js";

export type MigrationExtension = "js" | "cjs" | "mjs" | "ts";

export interface MakeOptions extends CommandOptions {
  name: string;
  /** A catalog migration instead of an app migration. @default false */
  catalog?: boolean;
  /** File type. @default the one most files in the folder have, else "js" */
  extension?: MigrationExtension;
  /** The file's timestamp; for tests and reproducible output. @default new Date() */
  now?: Date;
}

/** Writes a new timestamped migration file, named as knex names them; returns its path. */
export function makeMigration(options: MakeOptions): { file: string } {
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]*$/.test(options.name)) {
    throw new UsageError(`migration name ${JSON.stringify(options.name)} may only hold letters, digits, _ and -`);
  }
  const dir = options.catalog ? catalogDirForNewFiles(options.config) : options.config.appMigrationsDir;
  mkdirSync(dir, { recursive: true });
  const extension = options.extension ?? usualExtension(dir);
  const file = path.join(dir, `${timestamp(options.now ?? new Date())}_${options.name}.${extension}`);
  if (existsSync(file)) throw new UsageError(`${file} already exists`);
  writeFileSync(file, stub(extension, isEsmFolder(dir)), { flag: "wx" });
  return { file };
}

/**
 * Never the tool's bundled folder (inside node_modules once installed):
 * ./catalog_migrations instead, seeded with the bundled files, since from
 * then on it replaces the bundled folder.
 */
function catalogDirForNewFiles(config: Config): string {
  if (config.catalogMigrationsDir !== BUNDLED_CATALOG_MIGRATIONS) return config.catalogMigrationsDir;
  const local = path.resolve(config.cwd, "catalog_migrations");
  if (!existsSync(local)) cpSync(BUNDLED_CATALOG_MIGRATIONS, local, { recursive: true });
  return local;
}

function timestamp(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${date.getUTCFullYear()}${pad(date.getUTCMonth() + 1)}${pad(date.getUTCDate())}${pad(date.getUTCHours())}${pad(date.getUTCMinutes())}${pad(date.getUTCSeconds())}`;
}

function usualExtension(dir: string): MigrationExtension {
  const counts = new Map<MigrationExtension, number>();
  for (const name of readdirSync(dir)) {
    const ext = /\.(js|cjs|mjs|ts)$/.exec(name)?.[1] as MigrationExtension | undefined;
    if (ext && !name.endsWith(".d.ts")) counts.set(ext, (counts.get(ext) ?? 0) + 1);
  }
  return [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? "js";
}

/** Whether .js files in `dir` are ES modules: the nearest package.json says "type": "module". */
function isEsmFolder(dir: string): boolean {
  for (let current = path.resolve(dir); ; current = path.dirname(current)) {
    const manifest = path.join(current, "package.json");
    if (existsSync(manifest)) {
      try {
        return JSON.parse(readFileSync(manifest, "utf8")).type === "module";
      } catch {
        return false;
      }
    }
    if (path.dirname(current) === current) return false;
  }
}

function stub(extension: MigrationExtension, esmFolder: boolean): string {
  if (extension === "ts") {
    return `import type { Knex } from "knex";

export async function up(knex: Knex): Promise<void> {
  // await knex.schema.createTable("example", (t) => { t.increments("id"); });
}

export async function down(knex: Knex): Promise<void> {
  // await knex.schema.dropTable("example");
}
`;
  }
  if (extension === "mjs" || (extension === "js" && esmFolder)) {
    return `/** @param {import("knex").Knex} knex */
export async function up(knex) {
  // await knex.schema.createTable("example", (t) => { t.increments("id"); });
}

/** @param {import("knex").Knex} knex */
export async function down(knex) {
  // await knex.schema.dropTable("example");
}
`;
  }
  return `/** @param {import("knex").Knex} knex */
exports.up = async function up(knex) {
  // await knex.schema.createTable("example", (t) => { t.increments("id"); });
};

/** @param {import("knex").Knex} knex */
exports.down = async function down(knex) {
  // await knex.schema.dropTable("example");
};
`;
}
