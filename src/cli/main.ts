import { readFileSync } from "node:fs";
import { Command, CommanderError } from "commander";
import { registerAll } from "./commands/all.js";
import { registerCatalog } from "./commands/catalog.js";
import { registerDiff } from "./commands/diff.js";
import { registerDrop } from "./commands/drop.js";
import { registerHistory } from "./commands/history.js";
import { registerMake } from "./commands/make.js";
import { registerMigrate } from "./commands/migrate.js";
import { registerProvision } from "./commands/provision.js";
import { registerRollback } from "./commands/rollback.js";
import { registerStatus } from "./commands/status.js";
import { registerTemplates } from "./commands/templates.js";
import { registerTenants } from "./commands/tenants.js";
import { registerUnlock } from "./commands/unlock.js";
import { addExamples, configureProgramHelp } from "./help.js";
import { addGlobalOptions } from "./options.js";

const { version } = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
  version: string;
};

export function buildProgram(): Command {
  const program = new Command("tenant-migrate")
    .description("keep a fleet of database-per-tenant PostgreSQL databases migrated")
    .version(version)
    .showHelpAfterError()
    // Usage errors exit 2, as configuration errors do.
    .exitOverride((error: CommanderError) => {
      throw error;
    });
  addGlobalOptions(program);
  configureProgramHelp(program);
  registerAll(program);
  registerProvision(program);
  registerMigrate(program);
  registerRollback(program);
  registerStatus(program);
  registerDiff(program);
  registerMake(program);
  registerUnlock(program);
  registerDrop(program);
  registerTenants(program);
  registerTemplates(program);
  registerHistory(program);
  registerCatalog(program);
  addExamples(program);
  for (const command of program.commands) {
    command.exitOverride((error) => {
      throw error;
    });
    for (const sub of command.commands)
      sub.exitOverride((error) => {
        throw error;
      });
  }
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end with code 0; every other parse problem is usage (2).
      process.exitCode = error.exitCode === 0 ? 0 : 2;
      return;
    }
    throw error;
  }
}
