import type { Command } from "commander";
import { tenantHistory } from "../../commands/history.js";
import { parsePositive } from "../options.js";
import { runAction } from "../run.js";

export function registerHistory(program: Command): void {
  program
    .command("history")
    .argument("[tenants...]", "school_id or school_database values; all tenants when none is named")
    .option("--limit <n>", "at most n entries (default 50)", parsePositive("--limit"))
    .option("--json", "print one JSON document on stdout")
    .description("past runs per tenant, newest first")
    .action(async (tenants: string[], flags: { limit?: number; json?: boolean }, command: Command) => {
      await runAction(command, async (config, { output }) => {
        const entries = await tenantHistory({
          config,
          tenants,
          limit: flags.limit,
        });
        if (flags.json) {
          output.document({ history: entries });
          return 0;
        }
        for (const e of entries) {
          const what = e.migrations.length > 0 ? ` ${e.migrations.join(", ")}` : "";
          const error = e.error ? ` error: ${e.error}` : "";
          output.line(`${e.startedAt}  ${e.database} (id ${e.id})  ${e.command}  ${e.result}${what}${error}`);
        }
        if (entries.length === 0) output.line("no runs recorded yet");
        return 0;
      });
    });
}
