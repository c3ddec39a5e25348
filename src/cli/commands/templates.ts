import type { Command } from "commander";
import { listTemplates, type PrunedTemplate, pruneTemplates, type TemplateEntry } from "../../index.js";
import { alignColumns, type Output } from "../output.js";
import { runAction } from "../run.js";

const WHOSE = { "this-catalog": "this catalog", "another-catalog": "another catalog", orphan: "none (orphan)" };

function size(bytes: number | null): string {
  return bytes === null ? "?" : `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function total(templates: TemplateEntry[]): string {
  return size(templates.reduce((sum, t) => sum + (t.sizeBytes ?? 0), 0));
}

function printErrors(output: Output, errors: { server: string; error: string }[]): void {
  for (const e of errors) output.note(`${output.err.red("error")}: server ${e.server}: ${e.error}`);
}

export function registerTemplates(program: Command): void {
  const templates = program
    .command("templates")
    .description("the template databases that --template provisioning copies, on each server");

  templates
    .command("list", { isDefault: true })
    .description("each server's template databases: size, and whether this catalog's current files use it")
    .option("--json", "print one JSON document on stdout")
    .action(async (flags: { json?: boolean }, command: Command) => {
      await runAction(command, async (config, { output }) => {
        const result = await listTemplates({ config });
        printErrors(output, result.errors);
        if (flags.json) {
          output.document(result);
          return result.ok ? 0 : 1;
        }
        const rows = result.templates.map((t) => [
          t.server,
          t.name,
          size(t.sizeBytes),
          t.current ? "yes" : "no",
          t.finished ? "finished" : "being built or half-built",
          WHOSE[t.belongsTo],
        ]);
        const header = ["SERVER", "TEMPLATE", "SIZE", "CURRENT FILES", "STATE", "CATALOG"];
        if (rows.length > 0) for (const line of alignColumns([header, ...rows])) output.line(line);
        const count = result.templates.length;
        output.line(`${count} template${count === 1 ? "" : "s"}, ${total(result.templates)}`);
        return result.ok ? 0 : 1;
      });
    });

  templates
    .command("prune")
    .description("drop the templates this catalog's current migration files do not use")
    .option("--yes", "really drop them (without it: list what would be dropped, exit 2)")
    .option("--json", "print one JSON document on stdout")
    .action(async (flags: { yes?: boolean; json?: boolean }, command: Command) => {
      await runAction(command, async (config, { output }) => {
        const result = await pruneTemplates({ config, yes: flags.yes === true });
        printErrors(output, result.errors);
        const chosen = result.templates.filter((t) => t.action === "would-drop");
        const refusal = `refusing to drop ${chosen.length} template${chosen.length === 1 ? "" : "s"} without --yes`;
        if (flags.json) output.document(result.refused ? { ...result, ok: false, error: refusal } : result);
        else for (const t of result.templates) output.line(pruneLine(output, t));
        if (result.refused) {
          if (chosen.length === 0) {
            output.line("nothing to prune");
            return result.ok ? 0 : 1;
          }
          output.note(`${output.err.red("error")}: ${refusal}`);
          return 2;
        }
        const dropped = result.templates.filter((t) => t.action === "dropped");
        output.line(`dropped ${dropped.length} template${dropped.length === 1 ? "" : "s"}, ${total(dropped)}`);
        return result.ok ? 0 : 1;
      });
    });
}

function pruneLine(output: Output, t: PrunedTemplate): string {
  const where = `${t.name} (server ${t.server}, ${size(t.sizeBytes)})`;
  switch (t.action) {
    case "dropped":
      return `${where} dropped`;
    case "would-drop":
      return `${where} would be dropped`;
    case "failed":
      return `${where} ${output.out.red("failed")}: ${t.reason ?? ""}`;
    default:
      return `${where} kept: ${t.reason ?? ""}`;
  }
}
