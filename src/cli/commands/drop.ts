import type { Command } from "commander";
import { dropTenants } from "../../index.js";
import { printSimpleResult } from "../output.js";
import { runAction } from "../run.js";

export function registerDrop(program: Command): void {
  program
    .command("drop")
    .argument("<tenants...>", "school_id, school_database or school_name values")
    .option("--yes", "really drop the databases (their data is deleted)")
    .option("--json", "print one JSON document on stdout")
    .description("drop tenant databases (the catalog rows stay)")
    .action(async (tenants: string[], flags: { yes?: boolean; json?: boolean }, command: Command) => {
      await runAction(command, async (config, { output, signal }) => {
        const result = await dropTenants({ config, tenants, yes: flags.yes === true, signal });
        return printSimpleResult(result, output);
      });
    });
}
