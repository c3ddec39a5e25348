import type { Command } from "commander";
import { catalogStatus, migrateCatalog, rollbackCatalog } from "../../index.js";
import { noticesTo } from "../output.js";
import { runAction } from "../run.js";

export function registerCatalog(program: Command): void {
  const catalog = program.command("catalog").description("the catalog's own migrations");

  catalog
    .command("migrate")
    .description("bring the catalog to its latest migration")
    .option("--json", "print one JSON document on stdout")
    .action(async (flags: { json?: boolean }, command: Command) => {
      await runAction(command, async (config, { output, signal }) => {
        const result = await migrateCatalog({ config, onEvent: noticesTo(output), signal });
        if (flags.json) output.document(result);
        else
          output.line(
            result.migrations.length > 0 ? `catalog migrated: ${result.migrations.join(", ")}` : "catalog up to date",
          );
        return 0;
      });
    });

  catalog
    .command("rollback")
    .description("undo the catalog's last batch")
    .option("--all", "undo every batch")
    .option("--json", "print one JSON document on stdout")
    .action(async (flags: { all?: boolean; json?: boolean }, command: Command) => {
      await runAction(command, async (config, { output, signal }) => {
        const result = await rollbackCatalog({ config, all: flags.all === true, onEvent: noticesTo(output), signal });
        if (flags.json) output.document(result);
        else
          output.line(
            result.migrations.length > 0
              ? `catalog rolled back: ${result.migrations.join(", ")}`
              : "catalog: nothing to roll back",
          );
        return 0;
      });
    });

  catalog
    .command("status")
    .description("applied and pending catalog migrations")
    .option("--json", "print one JSON document on stdout")
    .action(async (flags: { json?: boolean }, command: Command) => {
      await runAction(command, async (config, { output }) => {
        const status = await catalogStatus({ config });
        if (flags.json) {
          output.document(status);
        } else {
          for (const name of status.applied)
            output.line(`applied  ${name}${status.unknown.includes(name) ? "  (no file matches)" : ""}`);
          for (const name of status.pending) output.line(`pending  ${name}`);
          output.line(`catalog: ${status.applied.length} applied, ${status.pending.length} pending`);
        }
        return 0;
      });
    });
}
