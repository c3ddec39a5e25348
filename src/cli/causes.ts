import type { TenantResult } from "../core/fleet-types.js";
import { safe } from "./safe.js";

/** Why a tenant failed, split the way failures are grouped: migration, SQLSTATE, message. */
export interface FailureCause {
  migration?: string | undefined;
  sqlstate?: string | undefined;
  /** The message, one line, escaped. */
  message: string;
}

/**
 * Splits a tenant's error ("migration X failed: msg (SQLSTATE 42P07); detail: …")
 * into its parts. `generic` replaces the tenant's own name and id in the
 * message, so that the same cause on many schools reads the same.
 */
export function failureCause(
  result: TenantResult,
  options: { generic?: boolean; firstLineOnly?: boolean; withStatement?: boolean } = {},
): FailureCause {
  let text = result.error ?? "unknown error";
  let migration: string | undefined;
  const where = /^(?:migration|rollback of) (\S+) failed: ([\s\S]*)$/.exec(text);
  if (where) {
    migration = where[1];
    text = where[2] ?? "";
  }
  let sqlstate: string | undefined;
  text = text.replace(/ \(SQLSTATE ([0-9A-Z]{5})\)/, (_all, code: string) => {
    sqlstate = code;
    return "";
  });
  // knex puts the failed statement before the server's message ("create table … - relation … exists").
  if (!options.withStatement) {
    const statement =
      /^\s*(?:select|insert|update|delete|create|alter|drop|grant|revoke|comment|with|truncate|do)\b[\s\S]* - /i;
    const cut = statement.exec(text);
    if (cut) text = text.slice(text.lastIndexOf(" - ") + 3);
  }
  if (options.firstLineOnly) text = text.split(/\r?\n/, 1)[0] ?? "";
  if (options.generic) {
    text = text.replace(new RegExp(`^school ${escapeRegExp(result.id)}: `), "");
    if (result.database.length > 0) text = text.split(result.database).join("<school>");
    text = text.replace(/provision \S+`/g, "provision <id>`");
  }
  return { migration: migration === undefined ? undefined : safe(migration), sqlstate, message: safe(text) };
}

/** "create_lunch_week.js · SQLSTATE 42P07 · relation … already exists" */
export function describeCause(cause: FailureCause): string {
  return [cause.migration, cause.sqlstate && `SQLSTATE ${cause.sqlstate}`, cause.message].filter(Boolean).join(" · ");
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
