import type { Command } from "commander";
import { withServer } from "../commands/context.js";
import type { Config } from "../core/config.js";
import { describeError, TenantMigrateError } from "../core/errors.js";
import type { FleetResult } from "../core/fleet.js";
import { redact } from "../core/redact.js";
import { configFrom } from "./options.js";
import { fleetRenderer, Output, summaryLine } from "./output.js";

/**
 * The one place a command's errors are printed and its exit code set: a tool
 * error carries its own code (2 for usage, configuration and catalog), any
 * other error is 1. Never process.exit() here, so pools close normally.
 */
export async function runAction(
  command: Command,
  action: (config: Config) => Promise<number>,
  options: { needsServer?: boolean } = {},
): Promise<void> {
  try {
    const config = configFrom(command, {
      catalog: options.needsServer !== false,
    });
    process.exitCode = options.needsServer === false ? await action(config) : await withServer(config, action);
  } catch (error) {
    const json = command.opts().json === true;
    const output = new Output(json);
    const message = redact(messageOf(error));
    output.note(`${output.err.red("error")}: ${message}`);
    // --json promises one document on stdout, also when the run could not start.
    if (json) output.document({ ok: false, error: message });
    process.exitCode = error instanceof TenantMigrateError ? error.exitCode : 1;
  }
}

function messageOf(error: unknown): string {
  if (error instanceof TenantMigrateError) return error.message;
  return describeError(error);
}

/**
 * SIGINT/SIGTERM: the first stops new tenants from starting and lets those in
 * flight finish; the second stops at once (PostgreSQL rolls back what was open).
 */
export function interruptController(output: Output): {
  signal: AbortSignal;
  dispose: () => void;
} {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      output.stopSpinner();
      output.note(`${signal} again: stopping now; open transactions roll back`);
      process.exit(130);
    }
    controller.abort();
    output.note(`${signal}: no new tenants will start; finishing those in flight (again to stop at once)`);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    },
  };
}

/** Runs a fleet command with live output and returns its exit code. */
export async function runFleetWithOutput<T extends FleetResult>(
  options: { json: boolean; dryRun: boolean; verb: string },
  run: (hooks: { onEvent: ReturnType<typeof fleetRenderer>; signal: AbortSignal }, output: Output) => Promise<T>,
  extraJson?: (result: T) => Record<string, unknown>,
): Promise<number> {
  const output = new Output(options.json);
  await output.prepareSpinner();
  const interrupt = interruptController(output);
  let result: T;
  try {
    result = await run({ onEvent: fleetRenderer(output, options), signal: interrupt.signal }, output);
  } finally {
    output.stopSpinner();
    interrupt.dispose();
  }
  if (options.json) {
    const { ok, tenants, summary, interrupted } = result;
    output.document({
      ok,
      ...extraJson?.(result),
      tenants,
      summary,
      ...(options.dryRun ? { dryRun: true } : {}),
      ...(interrupted ? { interrupted: true } : {}),
    });
  }
  output.line(summaryLine(output, result));
  if (result.interrupted) return 130;
  return result.ok ? 0 : 1;
}
