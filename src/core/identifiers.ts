const DATABASE_NAME = /^[a-z_][a-z0-9_]*$/;
const MAX_IDENTIFIER_BYTES = 63;

/** Why `name` cannot be a tenant database name, or undefined when it can. */
export function databaseNameProblem(name: unknown): string | undefined {
  if (typeof name !== "string" || name.length === 0) return "database name is empty";
  // PostgreSQL silently truncates longer names, so two rows could meet in one database.
  const bytes = Buffer.byteLength(name, "utf8");
  if (bytes > MAX_IDENTIFIER_BYTES) {
    return `database name ${JSON.stringify(name)} is ${bytes} bytes long; PostgreSQL allows at most ${MAX_IDENTIFIER_BYTES}`;
  }
  if (!DATABASE_NAME.test(name)) {
    return `database name ${JSON.stringify(name)} is not a lower-case PostgreSQL name (^[a-z_][a-z0-9_]*$)`;
  }
  return undefined;
}

/** The one way an identifier reaches SQL. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** A database name derived from a school name: "Lincoln High" -> "lincoln_high". */
export function databaseNameFrom(name: string): string {
  const base = name
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, "_")
    .replace(/^_+|_+$/g, "")
    .slice(0, MAX_IDENTIFIER_BYTES);
  return /^[0-9]/.test(base) ? `_${base}`.slice(0, MAX_IDENTIFIER_BYTES) : base;
}
