import type { Command } from "commander";
import { provisionTenants } from "../../index.js";
import { addFleetOptions, type FleetFlags, fleetOptionsFrom, viewOptionsFrom } from "../options.js";
import { runAction, runFleetWithOutput } from "../run.js";

export function registerProvision(program: Command): void {
  addFleetOptions(
    program
      .command("provision")
      .argument("[tenants...]", "school_id, school_database or school_name values")
      .option("--missing", "every tenant whose database does not exist yet")
      .option("--adopt", "also migrate an existing database that tenant-migrate did not make and knex never migrated")
      .description("create each tenant's database if it is missing, then migrate it to latest"),
  ).action(async (tenants: string[], flags: FleetFlags & { missing?: boolean; adopt?: boolean }, command: Command) => {
    await runAction(command, (config, cli) =>
      runFleetWithOutput(cli, viewOptionsFrom(flags, "provision", [], command), (hooks) =>
        provisionTenants({
          ...fleetOptionsFrom(flags, config, tenants),
          ...hooks,
          missing: flags.missing === true,
          adopt: flags.adopt === true,
        }),
      ),
    );
  });
}
