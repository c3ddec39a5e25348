import type { Command } from "commander";
import { migrateTenants } from "../../index.js";
import { addFleetOptions, type FleetFlags, fleetOptionsFrom, viewOptionsFrom } from "../options.js";
import { runAction, runFleetWithOutput } from "../run.js";

export function registerMigrate(program: Command): void {
  addFleetOptions(
    program
      .command("migrate")
      .argument("[tenants...]", "school_id, school_database or school_name values; all tenants when none is named")
      .description("migrate the named tenants (all when none is named) to the latest app migration")
      .option(
        "--rehearse",
        "run each school's pending migrations in a transaction that is rolled back; change nothing",
      ),
  ).action(async (tenants: string[], flags: FleetFlags, command: Command) => {
    await runAction(command, (config, cli) =>
      runFleetWithOutput(cli, viewOptionsFrom(flags, "migrate", [], command), (hooks) =>
        migrateTenants({
          ...fleetOptionsFrom(flags, config, tenants),
          ...hooks,
        }),
      ),
    );
  });
}
