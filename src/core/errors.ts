import { withoutStatementValues } from "./sql-literals.js";

/** Base of the tool's own errors; `exitCode` is what the CLI exits with. */
export class TenantMigrateError extends Error {
  readonly exitCode: number = 1;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Usage, configuration or catalog problem: nothing was changed (exit 2). */
export class UsageError extends TenantMigrateError {
  override readonly exitCode: number = 2;
}

/** Stopped by SIGINT/SIGTERM before its work began or while it waited: nothing half-done (exit 130). */
export class InterruptedError extends TenantMigrateError {
  override readonly exitCode: number = 130;
}

/** Every configuration problem found, reported at once. */
export class ConfigError extends UsageError {
  constructor(readonly problems: string[]) {
    super(
      problems.length === 1
        ? `configuration error: ${problems[0]}`
        : `configuration errors:\n${problems.map((p) => `  - ${p}`).join("\n")}`,
    );
  }
}

/**
 * A tenant's work that failed, carrying the migrations that did take effect
 * before it (none when the failed batch ran in one transaction): the result
 * is `failed`, with those migrations.
 */
export class TenantWorkError extends Error {
  constructor(
    message: string,
    readonly migrations: string[],
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Thrown by tenant work that stopped before changing anything (an interrupt): the result is `skipped`. */
export class TenantSkipped extends Error {}

/** PostgreSQL's error fields worth showing: code, detail, hint; a failed statement's literal values are masked. */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const pg = error as Error & { code?: string; detail?: string; hint?: string };
  let text = error.message || error.name;
  if (pg.code && /^[0-9A-Z]{5}$/.test(pg.code)) text += ` (SQLSTATE ${pg.code})`;
  if (pg.detail) text += `; detail: ${pg.detail}`;
  if (pg.hint) text += `; hint: ${pg.hint}`;
  return withoutStatementValues(text, error);
}

export function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}
