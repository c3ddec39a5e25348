import type { Command } from "commander";
import { migrateAll } from "../../index.js";
import { addFleetOptions, type FleetFlags, fleetOptionsFrom, viewOptionsFrom } from "../options.js";
import { runAction, runFleetWithOutput } from "../run.js";

export function registerAll(program: Command): void {
  addFleetOptions(
    program
      .command("all")
      .description("the deploy job: catalog to latest, missing tenant databases created, every tenant migrated")
      .option(
        "--rehearse",
        "run each school's pending migrations in a transaction that is rolled back; change nothing",
      ),
  ).action(async (flags: FleetFlags, command: Command) => {
    await runAction(command, (config, cli) =>
      runFleetWithOutput(
        cli,
        viewOptionsFrom(flags, flags.rehearse ? "migrate" : "provision", [], command),
        (hooks) => migrateAll({ ...fleetOptionsFrom(flags, config, []), ...hooks }),
        (result) => ({ catalog: result.catalog }),
      ),
    );
  });
}
