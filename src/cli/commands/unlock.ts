import type { Command } from "commander";
import { unlockTenants } from "../../index.js";
import { printSimpleResult } from "../output.js";
import { runAction } from "../run.js";

export function registerUnlock(program: Command): void {
  program
    .command("unlock")
    .argument("<tenants...>", "school_id, school_database or school_name values")
    .option("--json", "print one JSON document on stdout")
    .description("release a knex migration lock left by a dead process")
    .action(async (tenants: string[], _flags: { json?: boolean }, command: Command) => {
      await runAction(command, async (config, { output, signal }) => {
        const result = await unlockTenants({ config, tenants, signal });
        return printSimpleResult(result, output);
      });
    });
}
