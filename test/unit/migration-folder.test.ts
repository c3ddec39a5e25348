// A migrations folder on a temporary directory, no database: which files
// count, the preflight checks, transactions, edited files, template and
// scratch names, and `make`.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { makeMigration } from "../../src/commands/make.ts";
import { checkMigrationFolder } from "../../src/commands/preflight.ts";
import { editedMigrations, fileChecksum } from "../../src/core/checksums.ts";
import { BUNDLED_CATALOG_MIGRATIONS, type Config } from "../../src/core/config.ts";
import { UsageError } from "../../src/core/errors.ts";
import { databaseNameProblem } from "../../src/core/identifiers.ts";
import { MigrationFolder } from "../../src/core/migration-folder.ts";
import { createMarkedDatabaseSql, PROVISIONING_CONNECTION_LIMIT } from "../../src/core/provisioning.ts";
import { scratchPrefix } from "../../src/core/scratch-database.ts";
import { migrationSetKey, templateName, templatePrefix } from "../../src/core/template.ts";
import { everyMigrationTransactional } from "../../src/core/tenant-work.ts";

const root = mkdtempSync(path.join(tmpdir(), "tenant-migrate-unit-folder-"));
after(() => rmSync(root, { recursive: true, force: true }));

const MIGRATION = "exports.up = async () => {};\nexports.down = async () => {};\n";
const NO_TRANSACTION = `${MIGRATION}exports.config = { transaction: false };\n`;

let folders = 0;
/** A fresh folder holding these files (name -> contents). */
function folderWith(files: Record<string, string>): MigrationFolder {
  const dir = path.join(root, `f${++folders}`);
  mkdirSync(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  return new MigrationFolder(dir, "--app-migrations / APP_MIGRATIONS_DIR");
}

/** The UsageError a promise rejects with, or a failed assertion. */
async function usageError(promise: Promise<unknown>): Promise<UsageError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof UsageError, String(error));
    return error;
  }
  assert.fail("no UsageError");
}

describe("MigrationFolder", () => {
  it("lists migration files by name, as knex sorts them, leaving out declarations and other files", () => {
    const folder = folderWith({
      "002_b.ts": MIGRATION,
      "001_a.js": MIGRATION,
      "003_c.mjs": MIGRATION,
      "004_d.cjs": MIGRATION,
      "005_e.mts": MIGRATION,
      "006_f.cts": MIGRATION,
      "types.d.ts": "",
      "types.d.mts": "",
      "README.md": "",
      "seed.sql": "",
      "notes.json": "{}",
    });
    assert.deepEqual(folder.names, ["001_a.js", "002_b.ts", "003_c.mjs", "004_d.cjs", "005_e.mts", "006_f.cts"]);
    assert.equal(folder.latest, "006_f.cts");
    assert.equal(folder.has("002_b.ts"), true);
    assert.equal(folder.has("types.d.ts"), false);
    assert.equal(folder.files[0]?.file, path.join(folder.dir, "001_a.js"));
  });

  it("has no latest when empty", () => {
    const folder = folderWith({});
    assert.deepEqual(folder.names, []);
    assert.equal(folder.latest, undefined);
  });

  it("refuses a folder that does not exist, naming the setting (exit 2)", () => {
    assert.throws(
      () => new MigrationFolder(path.join(root, "missing"), "--app-migrations / APP_MIGRATIONS_DIR"),
      (error: unknown) =>
        error instanceof UsageError &&
        error.message ===
          `--app-migrations / APP_MIGRATIONS_DIR: migrations folder ${path.join(root, "missing")} does not exist or cannot be read`,
    );
  });

  it("groups files that share a name stem", () => {
    const folder = folderWith({ "001_a.js": MIGRATION, "001_a.ts": MIGRATION, "002_b.js": MIGRATION, "002_b.mjs": "" });
    assert.deepEqual(folder.sameStems(), [
      ["001_a.js", "001_a.ts"],
      ["002_b.js", "002_b.mjs"],
    ]);
  });

  it("loads a module once, and refuses a name it does not have", async () => {
    const folder = folderWith({ "001_a.js": MIGRATION });
    assert.equal(folder.load("001_a.js"), folder.load("001_a.js"));
    assert.equal(typeof (await folder.load("001_a.js")).up, "function");
    assert.throws(() => folder.load("nope.js"), /migration nope\.js is not in /);
  });
});

describe("checkMigrationFolder", () => {
  it("passes a folder whose files all load with up and down (CommonJS, ES module, TypeScript)", async () => {
    const folder = folderWith({
      "001_a.js": MIGRATION,
      "002_b.mjs": "export async function up() {}\nexport async function down() {}\n",
      "003_c.ts": "export async function up(): Promise<void> {}\nexport async function down(): Promise<void> {}\n",
    });
    await checkMigrationFolder(folder);
  });

  it("reports one problem on one line", async () => {
    const folder = folderWith({ "001_a.js": "exports.up = async () => {};\n" });
    const error = await usageError(checkMigrationFolder(folder));
    assert.equal(
      error.message,
      `migrations folder ${folder.dir}: invalid migration 001_a.js: it must export both up and down functions; nothing was changed`,
    );
  });

  it("reports every problem at once, in file order: shared stems, files that do not load", async () => {
    const folder = folderWith({
      "001_a.js": MIGRATION,
      "001_a.ts": "export async function up() {}\nexport async function down() {}\n",
      "002_broken.js": "this is not javascript {",
      "003_empty.js": "",
    });
    const error = await usageError(checkMigrationFolder(folder));
    const lines = error.message.split("\n");
    assert.equal(lines[0], `migrations folder ${folder.dir}:`);
    assert.equal(lines[1], "  - 001_a.js and 001_a.ts share a name stem (knex would run each of them): keep one");
    assert.match(lines[2] ?? "", /^ {2}- cannot load migration 002_broken\.js: /);
    assert.equal(lines[3], "  - invalid migration 003_empty.js: it must export both up and down functions");
    assert.equal(lines.at(-1), "nothing was changed");
    assert.equal(lines.length, 5);
  });
});

describe("everyMigrationTransactional", () => {
  const folder = folderWith({ "001_a.js": MIGRATION, "002_b.js": NO_TRANSACTION, "003_c.js": MIGRATION });

  it("is false when one of the named migrations opts out of the transaction", async () => {
    assert.equal(await everyMigrationTransactional(folder, ["001_a.js", "002_b.js"]), false);
  });

  it("is true when none does, for no migrations, and skips names the folder lacks", async () => {
    assert.equal(await everyMigrationTransactional(folder, ["001_a.js", "003_c.js"]), true);
    assert.equal(await everyMigrationTransactional(folder, []), true);
    assert.equal(await everyMigrationTransactional(folder, ["999_gone.js"]), true);
  });
});

describe("edited migrations", () => {
  const folder = folderWith({ "001_a.js": MIGRATION, "002_b.js": NO_TRANSACTION });
  const sha = (text: string) => createHash("sha256").update(text).digest("hex");

  it("fileChecksum is the sha256 of the file's bytes; none for a name the folder lacks", () => {
    assert.equal(fileChecksum(folder, "001_a.js"), sha(MIGRATION));
    assert.equal(fileChecksum(folder, "nope.js"), undefined);
  });

  it("names applied files whose bytes changed since applied; never those with no checksum or no file", () => {
    const recorded = new Map([
      ["001_a.js", sha(MIGRATION)],
      ["002_b.js", sha("the file as it was applied")],
      ["009_gone.js", sha("x")],
    ]);
    assert.deepEqual(editedMigrations(["001_a.js", "002_b.js", "009_gone.js"], recorded, folder), ["002_b.js"]);
    assert.deepEqual(editedMigrations(["001_a.js", "002_b.js"], new Map(), folder), []);
  });
});

describe("template and scratch names", () => {
  const admin = { database: "postgres", user: "deploy" };

  it("are valid database names, the tool's own, distinct per admin database and role", () => {
    const folder = folderWith({ "001_a.js": MIGRATION });
    const settings = { host: "h", port: 5432, ...admin };
    const names = [
      templateName(settings, folder),
      `${scratchPrefix(admin)}${"f".repeat(12)}`,
      templatePrefix({ ...admin, user: "other" }),
      templatePrefix({ ...admin, database: "catalog" }),
    ];
    for (const name of names) {
      assert.equal(databaseNameProblem(name), undefined, name);
      assert.match(name, /^tenant_migrate_/);
    }
    assert.equal(new Set(names.map((n) => n.slice(0, 37))).size, 4);
    assert.match(templatePrefix(admin), /^tenant_migrate_template_[0-9a-f]{12}_$/);
    assert.match(scratchPrefix(admin), /^tenant_migrate_diff_[0-9a-f]{12}_$/);
    assert.equal(templateName(settings, folder), `${templatePrefix(admin)}${migrationSetKey(folder)}`);
  });

  it("give a new template when a file is added or edited, the same one for the same files", () => {
    const one = folderWith({ "001_a.js": MIGRATION });
    assert.equal(migrationSetKey(one), migrationSetKey(folderWith({ "001_a.js": MIGRATION })));
    assert.match(migrationSetKey(one), /^[0-9a-f]{16}$/);
    assert.notEqual(migrationSetKey(one), migrationSetKey(folderWith({ "001_a.js": NO_TRANSACTION })));
    assert.notEqual(migrationSetKey(one), migrationSetKey(folderWith({ "001_a.js": MIGRATION, "002_b.js": "" })));
    assert.notEqual(migrationSetKey(one), migrationSetKey(folderWith({ "001_b.js": MIGRATION })));
  });

  it("a new school's database is created closed and marked, its name quoted", () => {
    assert.equal(
      createMarkedDatabaseSql('we"ird'),
      `create database "we""ird" with allow_connections = false connection limit = ${PROVISIONING_CONNECTION_LIMIT}`,
    );
  });
});

describe("makeMigration", () => {
  const now = new Date(Date.UTC(2026, 0, 2, 3, 4, 5));
  const config = (dir: string, cwd = root) =>
    ({ appMigrationsDir: dir, catalogMigrationsDir: BUNDLED_CATALOG_MIGRATIONS, cwd }) as Config;

  it("writes a timestamped CommonJS file into a new folder, and refuses to overwrite it", () => {
    const dir = path.join(root, "make-new", "app_migrations");
    const { file } = makeMigration({ config: config(dir), name: "add_menu", now });
    assert.equal(file, path.join(dir, "20260102030405_add_menu.js"));
    assert.match(readFileSync(file, "utf8"), /^exports\.up = async function up\(knex\)/m);
    assert.throws(
      () => makeMigration({ config: config(dir), name: "add_menu", now }),
      (error: unknown) => error instanceof UsageError && error.message === `${file} already exists`,
    );
  });

  it("takes the type most files of the folder have, and ES module syntax in a type: module package", () => {
    const pkg = path.join(root, "make-esm");
    const dir = path.join(pkg, "migrations");
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(pkg, "package.json"), '{ "type": "module" }');
    for (const name of ["1_a.js", "2_b.js", "3_c.ts", "x.d.ts", "y.d.ts"]) writeFileSync(path.join(dir, name), "");
    const js = makeMigration({ config: config(dir), name: "esm", now }).file;
    assert.ok(js.endsWith("_esm.js"));
    assert.match(readFileSync(js, "utf8"), /^export async function up\(knex\)/m);
    const ts = makeMigration({ config: config(dir), name: "typed", now, extension: "ts" }).file;
    assert.match(readFileSync(ts, "utf8"), /^import type \{ Knex \} from "knex";/);
  });

  it("refuses a name that is not letters, digits, _ and -", () => {
    for (const name of ["", "../escape", "has space", "-lead", "a.b"]) {
      assert.throws(() => makeMigration({ config: config(path.join(root, "make-bad")), name, now }), UsageError, name);
    }
    assert.equal(existsSync(path.join(root, "make-bad")), false, "nothing was written");
  });

  it("puts a catalog migration in ./catalog_migrations, seeded with the bundled ones, never the bundled folder", () => {
    const cwd = path.join(root, "make-catalog");
    mkdirSync(cwd);
    const { file } = makeMigration({
      config: config(path.join(cwd, "app"), cwd),
      name: "add_region",
      catalog: true,
      now,
    });
    assert.equal(path.dirname(file), path.join(cwd, "catalog_migrations"));
    assert.deepEqual(
      readdirSync(path.dirname(file)).sort(),
      [...readdirSync(BUNDLED_CATALOG_MIGRATIONS), path.basename(file)].sort(),
    );
    assert.equal(existsSync(path.join(BUNDLED_CATALOG_MIGRATIONS, path.basename(file))), false);
  });
});
