import type { Command } from "commander";
import { fleetStatus } from "../../commands/status.js";
import type { TenantStatus } from "../../core/tenant.js";
import { addFleetOptions, type FleetFlags, fleetOptionsFrom } from "../options.js";
import type { Output } from "../output.js";
import { runAction } from "../run.js";

export function registerStatus(program: Command): void {
  addFleetOptions(
    program
      .command("status")
      .argument("[tenants...]", "school_id or school_database values; all tenants when none is named")
      .option("--check", "exit 1 when any tenant is not up to date (for CI gates)")
      .description("per tenant: applied and pending migrations, and its state"),
    { changes: false },
  ).action(async (tenants: string[], flags: FleetFlags & { check?: boolean }, command: Command) => {
    await runAction(command, async (config, { output, signal }) => {
      const status = await fleetStatus({ ...fleetOptionsFrom(flags, config, tenants), signal });
      if (flags.json) {
        output.document(status);
      } else {
        output.line(`latest migration: ${status.latest ?? "(none: the folder is empty)"}`);
        for (const tenant of status.tenants) output.line(statusLine(output, tenant));
        const behind = status.tenants.filter((t) => t.state !== "up-to-date").length;
        output.line(`${status.tenants.length} tenants: ${status.tenants.length - behind} up to date, ${behind} not`);
      }
      const behind = status.tenants.some((t) => t.state !== "up-to-date");
      return flags.check && behind ? 1 : 0;
    });
  });
}

function statusLine(output: Output, tenant: TenantStatus): string {
  const c = output.out;
  const who = `${tenant.database} (id ${tenant.id}${tenant.server ? `, server ${tenant.server}` : ""})`;
  const counts = `${tenant.applied.length} applied, ${tenant.pending.length} pending`;
  switch (tenant.state) {
    case "up-to-date":
      return `${c.green("✔")} ${who} ${c.green("up to date")} (${counts})`;
    case "pending":
      return `${c.yellow("•")} ${who} ${c.yellow("pending")} (${counts}): ${tenant.pending.join(", ")}`;
    case "not-provisioned":
      return `${c.yellow("○")} ${who} ${c.yellow("not provisioned")}`;
    case "unknown-migrations":
      return `${c.red("✖")} ${who} ${c.red("unknown migrations")}: ${(tenant.unknown ?? []).join(", ")} (no file matches)`;
    case "edited":
      return `${c.yellow("!")} ${who} ${c.yellow("edited")} (${counts}): ${(tenant.edited ?? []).join(", ")} changed since applied here`;
    case "locked":
      return `${c.yellow("!")} ${who} ${c.yellow("locked")} (${counts})`;
    case "closed":
      return `${c.red("✖")} ${who} ${c.red("closed")}: connections not allowed (ALLOW_CONNECTIONS false); tenant-migrate does not reopen it`;
    default:
      return `${c.red("✖")} ${who} ${c.red("unreachable")}: ${tenant.error ?? ""}`;
  }
}
