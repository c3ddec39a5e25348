import type { Command } from "commander";
import {
  DEFAULT_HISTORY_LIMIT,
  DEFAULT_RUNS_LIMIT,
  type HistoryEntry,
  historyRuns,
  type RunEntry,
  tenantHistory,
} from "../../index.js";
import { parsePositive } from "../options.js";
import { describeMigrations, type Output, resultWord } from "../output.js";
import { runAction } from "../run.js";
import { safe } from "../safe.js";

interface HistoryFlags {
  limit?: number;
  json?: boolean;
  run?: string;
  failed?: boolean;
  runs?: boolean;
}

export function registerHistory(program: Command): void {
  program
    .command("history")
    .argument("[tenants...]", "school_id, school_database or school_name values; all tenants when none is named")
    .option(
      "--limit <n>",
      `at most n entries (default ${DEFAULT_HISTORY_LIMIT}; ${DEFAULT_RUNS_LIMIT} runs with --runs)`,
      parsePositive("--limit"),
    )
    .option("--run <id>", "every school of one run (its id, or the first 8 characters of it)")
    .option("--failed", "only the failures")
    .option("--runs", "one line per run: when, command, schools by result, host")
    .option("--json", "print one JSON document on stdout")
    .description("past runs per tenant, newest first")
    .addHelpText(
      "after",
      `
Examples:
  tenant-migrate history lincoln_high            the last runs on one school
  tenant-migrate history --runs                  one line per run, newest first
  tenant-migrate history --run 1a2b3c4d          every school of that run (the id a fleet command prints)
  tenant-migrate history --run 1a2b3c4d --failed what failed in that run, with the errors`,
    )
    .action(async (tenants: string[], flags: HistoryFlags, command: Command) => {
      await runAction(command, async (config, { output }) => {
        if (flags.runs) {
          const runs = await historyRuns({ config, limit: flags.limit, runId: flags.run });
          if (flags.json) output.document({ runs });
          else {
            for (const run of runs) output.line(runLine(output, run));
            if (runs.length === 0) output.line("no runs recorded yet");
          }
          return 0;
        }
        const [run] = flags.run === undefined ? [] : await historyRuns({ config, runId: flags.run });
        const entries = await tenantHistory({
          config,
          tenants,
          limit: flags.limit,
          runId: run?.runId,
          failed: flags.failed === true,
        });
        if (flags.json) {
          output.document(run ? { run, history: entries } : { history: entries });
          return 0;
        }
        if (run) output.line(runLine(output, run));
        for (const e of entries) output.line(entryLine(output, e, run === undefined));
        if (entries.length === 0) output.line(flags.failed ? "no failures recorded" : "no runs recorded yet");
        return 0;
      });
    });
}

/** "2026-11-27 06:31:02  run cdb4fb86  all  40 tenants: 37 migrated · 3 failed  on host" */
function runLine(output: Output, run: RunEntry): string {
  const c = output.out;
  const total = Object.values(run.byResult).reduce((a, b) => a + b, 0);
  const counts = Object.entries(run.byResult)
    .sort(([a], [b]) => (a === "failed" ? 1 : b === "failed" ? -1 : a.localeCompare(b)))
    .map(([kind, n]) => {
      const text = `${n} ${resultWord(kind)}`;
      return kind === "failed" ? c.red(text) : kind === "unfinished" || kind === "skipped" ? c.yellow(text) : text;
    });
  const host = run.host ? c.dim(`  on ${safe(run.host)}`) : "";
  return `${when(run.startedAt)}  run ${run.runId.slice(0, 8)}  ${safe(run.command)}  ${total} tenant${total === 1 ? "" : "s"}: ${counts.join(" · ")}${host}`;
}

function entryLine(output: Output, e: HistoryEntry, showRun: boolean): string {
  const c = output.out;
  const result = e.result === "failed" ? c.red(e.result) : e.result;
  const what = e.migrations.length > 0 ? describeMigrations(e.migrations, true).replace(/^: /, " ") : "";
  const error = e.error ? ` error: ${safe(e.error)}` : "";
  const run = showRun ? `  run ${e.runId.slice(0, 8)}` : "";
  return `${when(e.startedAt)}${run}  ${safe(e.database)} (id ${safe(e.id)})  ${safe(e.command)}  ${result}${what}${error}`;
}

/** An ISO time as "2026-11-27 06:31:02" (UTC). */
function when(iso: string): string {
  return iso.replace("T", " ").replace(/\.\d+Z$/, "Z");
}
