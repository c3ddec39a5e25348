// dotenv reads an unquoted "#" as the start of a comment, also inside a value:
// `CATALOG_DATABASE_URL=postgres://app:pa#ss@db/catalog` becomes
// `postgres://app:pa`. These helpers find such values, to say so.

/** The settings whose value a "#" in a .env file usually cuts by mistake. */
const WATCHED = ["CATALOG_DATABASE_URL", "TENANT_SERVERS", "PGPASSWORD"];

/**
 * Keys of a .env text whose unquoted value has a "#" (dotenv cut the value
 * there), each with whether the "#" is glued to the value (no space before it:
 * surely meant as part of the value, not as a comment).
 */
export function valuesCutAtHash(text: string): Map<string, { glued: boolean }> {
  const cut = new Map<string, { glued: boolean }>();
  for (const line of text.split(/\r?\n/)) {
    const match = /^\s*(?:export\s+)?([\w.-]+)\s*=[ \t]*(.*)$/.exec(line);
    if (!match) continue;
    const [, key = "", value = ""] = match;
    if (/^['"`]/.test(value)) continue;
    const at = value.indexOf("#");
    if (at === -1) continue;
    cut.set(key, { glued: at === 0 || !/\s/.test(value[at - 1] ?? "") });
  }
  return cut;
}

/**
 * Problems to report for watched settings that came from the .env file cut
 * at a "#": when the "#" is glued to the value, or when the setting was found
 * wrong anyway (a problem starts with its name). `ignore`: settings taken
 * from elsewhere (a flag, the environment) or not used.
 */
export function hashProblems(
  cut: Map<string, { glued: boolean }>,
  file: string,
  problems: string[],
  ignore: (key: string) => boolean,
): string[] {
  const found: string[] = [];
  for (const key of WATCHED) {
    const entry = cut.get(key);
    if (!entry || ignore(key)) continue;
    if (!entry.glued && !problems.some((p) => p.startsWith(key))) continue;
    const url = key === "PGPASSWORD" ? "" : ` (in a URL, write a "#" of a password as %23)`;
    found.push(`${key} in ${file} is cut at "#": quote the value: # starts a comment in .env, e.g. ${key}="…"${url}`);
  }
  return found;
}
