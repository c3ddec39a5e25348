import type { Command } from "commander";
import { rollbackTenants } from "../../index.js";
import { shellWord } from "../ops-view.js";
import { addFleetOptions, type FleetFlags, fleetOptionsFrom, parsePositive, viewOptionsFrom } from "../options.js";
import { runAction, runFleetWithOutput } from "../run.js";

interface RollbackFlags extends FleetFlags {
  allTenants?: boolean;
  step?: number;
  all?: boolean;
  to?: string;
  yes?: boolean;
}

export function registerRollback(program: Command): void {
  addFleetOptions(
    program
      .command("rollback")
      .argument("[tenants...]", "school_id, school_database or school_name values")
      .option("--all-tenants", "every tenant in the catalog (needs --yes, unless --dry-run)")
      .option("--yes", "really roll back every tenant (with --all-tenants)")
      .option("--step <n>", "undo the last n batches", parsePositive("--step"))
      .option("--all", "undo every batch (needed whenever a school would be left with no migration applied)")
      .option("--to <migration>", "undo until this migration is the newest applied")
      .description(
        "undo the last batch (default), n batches, every batch, or back to a migration; a rollback that would undo every migration of a school needs --all",
      ),
  ).action(async (tenants: string[], flags: RollbackFlags, command: Command) => {
    await runAction(command, (config, cli) =>
      runFleetWithOutput(cli, viewOptionsFrom(flags, "rollback", rollbackFlags(flags), command), (hooks) =>
        rollbackTenants({
          ...fleetOptionsFrom(flags, config, tenants),
          ...hooks,
          allTenants: flags.allTenants === true,
          step: flags.step,
          all: flags.all === true,
          to: flags.to,
          yes: flags.yes === true,
        }),
      ),
    );
  });
}

/** The rollback mode's flags, so that the rerun command undoes the same; each one shell word. */
export function rollbackFlags(flags: Pick<RollbackFlags, "all" | "to" | "step">): string[] {
  if (flags.all) return ["--all"];
  if (flags.to !== undefined) return ["--to", shellWord(flags.to)];
  if (flags.step !== undefined) return ["--step", String(flags.step)];
  return [];
}
