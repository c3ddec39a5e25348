import type { Command } from "commander";
import { withServer } from "../commands/context.js";
import type { Config } from "../core/config.js";
import { describeError, InterruptedError, TenantMigrateError } from "../core/errors.js";
import type { FleetResult } from "../core/fleet-types.js";
import { redact } from "../core/redact.js";
import { routeStdoutToStderr } from "./json-stdout.js";
import { FleetView, type ViewOptions } from "./ops-view.js";
import { configFrom } from "./options.js";
import { Output } from "./output.js";
import { safeLines } from "./safe.js";

/** What every command's action gets besides its configuration. */
export interface CliRun {
  output: Output;
  /** Aborted by the first SIGINT/SIGTERM: start nothing new. */
  signal: AbortSignal;
}

/**
 * The one place a command's errors are printed and its exit code set: a tool
 * error carries its own code (2 for usage, configuration and catalog), any
 * other error is 1; an interrupted command exits 130. Never process.exit()
 * here, so pools close normally and an embedded server is stopped.
 */
export async function runAction(
  command: Command,
  action: (config: Config, cli: CliRun) => Promise<number>,
  options: { needsServer?: boolean } = {},
): Promise<void> {
  const json = command.opts().json === true;
  const output = new Output(json);
  // After Output took stdout's own write: the document still goes there.
  const restoreStdout = json ? routeStdoutToStderr() : undefined;
  const interrupt = interruptController(output);
  const cli = { output, signal: interrupt.signal };
  try {
    const config = configFrom(command, {
      catalog: options.needsServer !== false,
    });
    const code =
      options.needsServer === false ? await action(config, cli) : await withServer(config, (c) => action(c, cli));
    process.exitCode = interrupt.signal.aborted ? 130 : code;
  } catch (error) {
    output.stopSpinner();
    const message = safeLines(redact(messageOf(error)));
    output.note(error instanceof InterruptedError ? message : `${output.err.red("error")}: ${message}`);
    // --json promises one document on stdout, also when the run could not start.
    if (json) output.document({ ok: false, error: message });
    process.exitCode = error instanceof TenantMigrateError ? error.exitCode : 1;
  } finally {
    interrupt.dispose();
    restoreStdout?.();
  }
}

function messageOf(error: unknown): string {
  if (error instanceof TenantMigrateError) return error.message;
  return describeError(error);
}

/**
 * SIGINT/SIGTERM/SIGHUP: the first stops new tenants from starting and lets
 * what is in flight finish; the second stops at once (PostgreSQL rolls back
 * what was open). A closed stdout or stderr (`| head -1`, quitting less) is
 * handled like the first signal: the run ends as an interrupted one (exit 130),
 * with its history written, and never with a stack trace.
 */
function interruptController(output: Output): {
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
    output.note(`${signal}: finishing what is in flight; no new tenant will start (again to stop at once)`);
  };
  // Stays for the life of the process: a write that fails after the run has ended must not crash it either.
  output.watchStreams((stream) => {
    if (controller.signal.aborted) return;
    controller.abort();
    output.note(`${stream} was closed: finishing what is in flight; no new tenant will start`);
  });
  const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
  for (const signal of signals) process.on(signal, onSignal);
  return {
    signal: controller.signal,
    dispose: () => {
      for (const signal of signals) process.off(signal, onSignal);
    },
  };
}

/** Runs a fleet command with live output and returns its exit code. */
export async function runFleetWithOutput<T extends FleetResult>(
  { output, signal }: CliRun,
  options: ViewOptions,
  run: (hooks: { onEvent: FleetView["onEvent"]; signal: AbortSignal }) => Promise<T>,
  extraJson?: (result: T) => Record<string, unknown>,
): Promise<number> {
  await output.prepareSpinner();
  const view = new FleetView(output, options);
  let result: T;
  try {
    result = await run({ onEvent: view.onEvent, signal });
  } catch (error) {
    view.finish(undefined);
    throw error;
  }
  view.finish(result);
  if (output.json) {
    const { ok, tenants, summary, interrupted, run: runId } = result;
    output.document({
      ok,
      ...(runId ? { run: runId } : {}),
      ...extraJson?.(result),
      tenants,
      summary,
      ...(options.dryRun ? { dryRun: true } : {}),
      ...(options.rehearse ? { rehearse: true } : {}),
      ...(interrupted ? { interrupted: true } : {}),
      ...(result.warnings ? { warnings: result.warnings } : {}),
    });
  }
  if (result.interrupted) return 130;
  return result.ok ? 0 : 1;
}
