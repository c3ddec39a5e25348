import type { Command } from "commander";
import { type FleetDiff, fleetDiff, type TenantDiff } from "../../index.js";
import { addFleetOptions, type FleetFlags, fleetOptionsFrom } from "../options.js";
import type { Output } from "../output.js";
import { runAction } from "../run.js";
import { safe } from "../safe.js";

export function registerDiff(program: Command): void {
  addFleetOptions(
    program
      .command("diff")
      .argument("[tenants...]", "school_id or school_database values; all tenants when none is named")
      .option("--against <tenant>", "compare with this school instead of a scratch database migrated from the files")
      .option("--check", "exit 1 unless every school is identical to the reference (for CI gates)")
      .description("compare each school's schema with the migration files' (or one school's), grouped by schema")
      .addHelpText(
        "after",
        `
Examples:
  tenant-migrate diff                       every school against a scratch database built from the files
  tenant-migrate diff --check --json        a CI gate: exit 1 on any difference, one JSON document
  tenant-migrate diff --against lincoln_high roosevelt washington`,
      ),
    { changes: false },
  ).action(async (tenants: string[], flags: FleetFlags & { check?: boolean; against?: string }, command: Command) => {
    await runAction(command, async (config, { output, signal }) => {
      const diff = await fleetDiff({ ...fleetOptionsFrom(flags, config, tenants), against: flags.against, signal });
      if (flags.json) output.document(diff);
      else printDiff(output, diff);
      const clean = diff.tenants.every((t) => t.state === "identical");
      return flags.check && !clean ? 1 : 0;
    });
  });
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
// Catalog values and definitions are escaped: no raw control character reaches the terminal.
const short = (text: string, max = 100) => safe(text.length > max ? `${text.slice(0, max - 1)}…` : text);

function printDiff(output: Output, diff: FleetDiff): void {
  const c = output.out;
  const ref = diff.reference;
  const what = ref.kind === "scratch" ? "a scratch database migrated from the files" : `${ref.database} (id ${ref.id})`;
  output.line(`reference: ${what}: ${plural(ref.objects, "object")}, fingerprint ${ref.fingerprint.slice(0, 12)}`);
  const byDatabase = new Map(diff.tenants.map((t) => [t.database, t]));
  for (const group of diff.groups) {
    if (group.identicalToReference) {
      output.line(`${c.green("✔")} ${plural(group.tenants.length, "school")} identical to the reference`);
      continue;
    }
    // Schools of one group differ from the reference in the same way: the objects are listed once.
    const n = group.tenants.length;
    output.line(
      `${c.red("✖")} ${plural(n, "school")} ${n === 1 ? "differs" : "differ"} from the reference (fingerprint ${group.fingerprint.slice(0, 12)}): ${group.tenants.join(", ")}`,
    );
    const sample = byDatabase.get(group.tenants[0] as string) as TenantDiff;
    for (const o of sample.added) output.line(`    ${c.green("+")} ${o.kind} ${o.name}: ${short(o.definition)}`);
    for (const o of sample.missing) output.line(`    ${c.red("-")} ${o.kind} ${o.name}: ${short(o.definition)}`);
    for (const o of sample.changed) {
      output.line(`    ${c.yellow("~")} ${o.kind} ${o.name}`);
      output.line(`        reference: ${short(o.reference)}`);
      output.line(`        here:      ${short(o.tenant)}`);
    }
  }
  for (const t of diff.tenants) {
    const who = safe(`${t.database} (id ${t.id}${t.server ? `, server ${t.server}` : ""})`);
    const list = safe((t.migrations ?? []).join(", "));
    if (t.state === "pending") output.line(`${c.yellow("•")} ${who} ${c.yellow("pending")}, not compared: ${list}`);
    else if (t.state === "unknown-migrations")
      output.line(`${c.red("✖")} ${who} ${c.red("unknown migrations")}, not compared: ${list} (no file matches)`);
    else if (t.state === "not-provisioned")
      output.line(`${c.yellow("○")} ${who} ${c.yellow("not provisioned")}${t.error ? `: ${safe(t.error)}` : ""}`);
    else if (t.state === "closed")
      output.line(
        `${c.red("✖")} ${who} ${c.red("closed")}: connections not allowed (ALLOW_CONNECTIONS false); tenant-migrate does not reopen it`,
      );
    else if (t.state === "unreachable")
      output.line(`${c.red("✖")} ${who} ${c.red("unreachable")}: ${safe(t.error ?? "")}`);
  }
  const counts = new Map<string, number>();
  for (const t of diff.tenants) counts.set(t.state, (counts.get(t.state) ?? 0) + 1);
  const parts = [...counts].map(([state, n]) => `${n} ${state.replace(/-/g, " ")}`);
  output.line(`${plural(diff.tenants.length, "school")}${parts.length > 0 ? `: ${parts.join(", ")}` : ""}`);
}
