import type { Command } from "commander";
import { fleetStatus } from "../../commands/status.js";
import type { TenantStatus } from "../../core/tenant-status.js";
import { addFleetOptions, type FleetFlags, fleetOptionsFrom } from "../options.js";
import type { Output } from "../output.js";
import { runAction } from "../run.js";
import { safe } from "../safe.js";

export function registerStatus(program: Command): void {
  addFleetOptions(
    program
      .command("status")
      .argument("[tenants...]", "school_id, school_database or school_name values; all tenants when none is named")
      .option("--check", "exit 1 when any tenant is not up to date (for CI gates)")
      .description("per tenant: applied and pending migrations, and its state"),
    { changes: false },
  ).action(async (tenants: string[], flags: FleetFlags & { check?: boolean }, command: Command) => {
    await runAction(command, async (config, { output, signal }) => {
      const status = await fleetStatus({ ...fleetOptionsFrom(flags, config, tenants), signal });
      if (flags.json) {
        output.document(status);
      } else {
        output.line(
          `latest migration: ${status.latest === null ? "(none: the folder is empty)" : safe(status.latest)}`,
        );
        if (status.tenants.length === 0 && tenants.length === 0)
          output.note(warning(output, "the catalog has no schools"));
        // Only the schools that need a look; --verbose lists every one.
        for (const tenant of status.tenants)
          if (flags.verbose || tenant.state !== "up-to-date") output.line(statusLine(output, tenant));
        output.line(stateCounts(output, status.tenants));
      }
      const behind = status.tenants.some((t) => t.state !== "up-to-date");
      return flags.check && behind ? 1 : 0;
    });
  });
}

/** "300 tenants: 290 up to date · 5 pending · 5 unreachable" (states in the order they first occur, up to date first). */
function stateCounts(output: Output, statuses: TenantStatus[]): string {
  const c = output.out;
  const counts = new Map<string, number>([["up-to-date", 0]]);
  for (const t of statuses) counts.set(t.state, (counts.get(t.state) ?? 0) + 1);
  const parts = [...counts].map(([state, n]) => {
    const text = `${n} ${state.replace(/-/g, " ")}`;
    if (state === "up-to-date" || n === 0) return text;
    return state === "pending" || state === "not-provisioned" || state === "locked" ? c.yellow(text) : c.red(text);
  });
  return `${statuses.length} tenant${statuses.length === 1 ? "" : "s"}: ${parts.join(" · ")}`;
}

function warning(output: Output, text: string): string {
  return `${output.err.yellow("warning")}: ${text}`;
}

function statusLine(output: Output, tenant: TenantStatus): string {
  const c = output.out;
  const who = `${safe(tenant.database)} (id ${safe(tenant.id)}${tenant.server ? `, server ${safe(tenant.server)}` : ""})`;
  const counts = `${tenant.applied.length} applied, ${tenant.pending.length} pending`;
  switch (tenant.state) {
    case "up-to-date":
      return `${c.green("✔")} ${who} ${c.green("up to date")} (${counts})`;
    case "pending":
      return `${c.yellow("•")} ${who} ${c.yellow("pending")} (${counts}): ${names(tenant.pending)}`;
    case "not-provisioned":
      return `${c.yellow("○")} ${who} ${c.yellow("not provisioned")}`;
    case "unknown-migrations":
      return `${c.red("✖")} ${who} ${c.red("unknown migrations")}: ${(tenant.unknown ?? []).map(safe).join(", ")} (no file matches)`;
    case "edited":
      return `${c.yellow("!")} ${who} ${c.yellow("edited")} (${counts}): ${(tenant.edited ?? []).map(safe).join(", ")} changed since applied here`;
    case "locked":
      return `${c.yellow("!")} ${who} ${c.yellow("locked")} (${counts})`;
    case "closed":
      return `${c.red("✖")} ${who} ${c.red("closed")}: connections not allowed (ALLOW_CONNECTIONS false); tenant-migrate does not reopen it`;
    default:
      return `${c.red("✖")} ${who} ${c.red("unreachable")}: ${safe(tenant.error ?? "")}`;
  }
}

/** Migration names, the middle left out when there are many (`status --json` has them all). */
function names(list: string[]): string {
  const shown = list.length <= 3 ? list : [list[0] as string, "…", list[list.length - 1] as string];
  return shown.map(safe).join(", ");
}
