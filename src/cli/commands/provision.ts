import type { Command } from "commander";
import { provisionTenants } from "../../commands/provision.js";
import { addFleetOptions, type FleetFlags, fleetOptionsFrom, viewOptionsFrom } from "../options.js";
import { runAction, runFleetWithOutput } from "../run.js";

export function registerProvision(program: Command): void {
  addFleetOptions(
    program
      .command("provision")
      .argument("[tenants...]", "school_id, school_database or school_name values")
      .option("--missing", "every tenant whose database does not exist yet")
      .description("create each tenant's database if it is missing, then migrate it to latest"),
  ).action(async (tenants: string[], flags: FleetFlags & { missing?: boolean }, command: Command) => {
    await runAction(command, (config, cli) =>
      runFleetWithOutput(cli, viewOptionsFrom(flags, "provision"), (hooks) =>
        provisionTenants({
          ...fleetOptionsFrom(flags, config, tenants),
          ...hooks,
          missing: flags.missing === true,
        }),
      ),
    );
  });
}
