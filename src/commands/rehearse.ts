import type { FleetResult } from "../core/fleet-types.js";
import { NotProvisioned, rehearseTenant } from "../core/rehearse.js";
import { runFleetCommand } from "./fleet-command.js";
import type { FleetCommandOptions } from "./options.js";

/**
 * migrate --rehearse, all --rehearse: every chosen school's pending
 * migrations run in one transaction that is rolled back. No history is
 * written (like --dry-run). ok unless a school would fail (or was skipped by
 * an interrupt, --canary or --max-failures): a school not provisioned yet is
 * skipped without making the run fail.
 */
export async function rehearseFleet(
  command: "migrate" | "all",
  options: FleetCommandOptions,
  extra: Parameters<typeof runFleetCommand>[3] = {},
): Promise<FleetResult> {
  const provision = command === "all";
  const notProvisioned = new Set<string>();
  const reported = new Set<string>();
  const fleet = await runFleetCommand(
    command,
    { ...options, rehearse: true, dryRun: false },
    async (job) => {
      try {
        return await rehearseTenant(job, {
          provision,
          onNotRehearsable: (files) => {
            for (const file of files.filter((f) => !reported.has(f))) {
              reported.add(file);
              job.emit({
                type: "notice",
                message: `${file} runs outside a transaction (config.transaction = false): schools with it pending are not rehearsable`,
              });
            }
          },
        });
      } catch (error) {
        if (error instanceof NotProvisioned) notProvisioned.add(job.tenant.id);
        throw error;
      }
    },
    extra,
  );
  if (notProvisioned.size > 0) {
    options.onEvent?.({
      type: "notice",
      message: `${notProvisioned.size} school${notProvisioned.size === 1 ? " is" : "s are"} not provisioned yet: skipped (the real run creates ${notProvisioned.size === 1 ? "it" : "them"} and runs every migration)`,
    });
  }
  const ok =
    !fleet.interrupted &&
    fleet.tenants.every((t) => t.result !== "failed" && (t.result !== "skipped" || notProvisioned.has(t.id)));
  return { ...fleet, ok };
}
