import { type Command, InvalidArgumentError, Option } from "commander";
import {
  type Config,
  type ConfigFlags,
  DEFAULT_APP_MIGRATIONS_DIR,
  DEFAULT_CONCURRENCY,
  DEFAULT_LOCK_TIMEOUT_MS,
  DEFAULT_PG_LOCK_TIMEOUT_MS,
  DEFAULT_RETRIES,
  type FleetCommandOptions,
  redact,
  resolveConfig,
  retryWaitMs,
} from "../index.js";
import { formatSeconds } from "./help.js";
import { shellWord, type ViewOptions } from "./ops-view.js";

/** Options every command understands (they may stand before or after the command name). */
export function addGlobalOptions(program: Command): Command {
  return program
    .option("--catalog-url <url>", "catalog connection URL (env CATALOG_DATABASE_URL)")
    .option(
      "--app-migrations <dir>",
      `app (tenant) migrations folder (env APP_MIGRATIONS_DIR; default ./${DEFAULT_APP_MIGRATIONS_DIR})`,
    )
    .option("--catalog-migrations <dir>", "catalog migrations folder (env CATALOG_MIGRATIONS_DIR)")
    .option(
      "--concurrency <n>",
      `tenants at once, per server (env TENANT_MIGRATE_CONCURRENCY; default ${DEFAULT_CONCURRENCY})`,
    )
    .option(
      "--lock-timeout <duration>",
      `how long to wait for another run on a tenant, e.g. 60s (env TENANT_MIGRATE_LOCK_TIMEOUT; default ${formatSeconds(DEFAULT_LOCK_TIMEOUT_MS)})`,
    )
    .option(
      "--pg-lock-timeout <duration>",
      `PostgreSQL lock_timeout of each school's migration session, 0 off (env TENANT_MIGRATE_PG_LOCK_TIMEOUT; default ${formatSeconds(DEFAULT_PG_LOCK_TIMEOUT_MS)})`,
    )

    .option(
      "--retries <n>",
      `retries of a transient fault per tenant (env TENANT_MIGRATE_RETRIES; default ${DEFAULT_RETRIES}, about ${Math.floor(retryWaitMs(DEFAULT_RETRIES) / 1000)} s in all)`,
    )
    .option("--app-role <role>", "role granted CONNECT and TEMP on new tenant databases (env TENANT_MIGRATE_APP_ROLE)")
    .option("--embedded", "run on an embedded PostgreSQL kept under .tenant-migrate/ (env TENANT_MIGRATE_EMBEDDED=1)")
    .option("--env-file <path>", "read settings from this file instead of ./.env (env TENANT_MIGRATE_ENV_FILE)")
    .option(
      "--template",
      "provision new tenants by copying a template database with every migration applied (env TENANT_MIGRATE_TEMPLATE=1)",
    )
    .option("--no-template", "provision new tenants by running every migration in them (the default)");
}

/** Options of the fleet commands. */
/** Options of the fleet commands; `changes: false` (status) leaves out those about changing tenants. */
export function addFleetOptions(command: Command, what: { changes?: boolean } = {}): Command {
  command
    .option("--json", "print one JSON document on stdout")
    .option("--shard <i/n>", "take only the i-th of n stable, disjoint slices of the tenants", parseShard);
  addViewOptions(command, what);
  if (what.changes === false) return command;
  return command
    .addOption(
      new Option("--on-error <mode>", "after a tenant fails: continue with the others, or abort")
        .choices(["continue", "abort"])
        .default("continue"),
    )
    .option("--canary <n>", "run n tenants first; if one fails, skip the rest", parsePositive("--canary"))
    .option(
      "--max-failures <n>",
      "once more than n tenants have failed, start no new one (the rest are skipped)",
      parseCount("--max-failures"),
    )
    .option("--dry-run", "say what would run; change nothing");
}

/** How much a fleet command prints (the ops view). */
function addViewOptions(command: Command, what: { changes?: boolean }): void {
  if (what.changes === false) {
    command.option("--verbose", "list every tenant, also those up to date");
    return;
  }
  command
    .option("--verbose", "list every tenant's result on a terminal too, with every migration name")
    .option("--quiet", "off a terminal, print only failures (then the summary)");
}

export function parseShard(value: string): { index: number; count: number } {
  const match = /^(\d+)\/(\d+)$/.exec(value);
  const index = Number(match?.[1]);
  const count = Number(match?.[2]);
  if (!match || count < 1 || index < 1 || index > count) {
    throw new InvalidArgumentError("expected I/N with 1 <= I <= N, e.g. 2/4");
  }
  return { index, count };
}

export function parsePositive(name: string): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value) || Number(value) < 1)
      throw new InvalidArgumentError(`${name} must be a whole number of 1 or more`);
    return Number(value);
  };
}

export function parseCount(name: string): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`${name} must be a whole number of 0 or more`);
    return Number(value);
  };
}

/** The command's settings: flags > environment > .env > defaults, validated once. */
export function configFrom(command: Command, needs: { catalog?: boolean } = {}): Config {
  const flags = command.optsWithGlobals() as ConfigFlags;
  return resolveConfig(
    {
      catalogUrl: flags.catalogUrl,
      appMigrations: flags.appMigrations,
      catalogMigrations: flags.catalogMigrations,
      concurrency: flags.concurrency,
      lockTimeout: flags.lockTimeout,
      pgLockTimeout: flags.pgLockTimeout,
      retries: flags.retries,
      appRole: flags.appRole,
      embedded: flags.embedded,
      envFile: flags.envFile,
      template: flags.template,
    },
    process.env,
    process.cwd(),
    needs,
  );
}

export interface FleetFlags {
  onError: "continue" | "abort";
  verbose?: boolean;
  quiet?: boolean;
  json?: boolean;
  dryRun?: boolean;
  shard?: { index: number; count: number };
  canary?: number;
  maxFailures?: number;
  /** migrate and all only. */
  rehearse?: boolean;
}

export function fleetOptionsFrom(flags: FleetFlags, config: Config, tenants: string[]): FleetCommandOptions {
  return {
    config,
    tenants,
    onError: flags.onError,
    dryRun: flags.dryRun === true,
    shard: flags.shard,
    canary: flags.canary,
    maxFailures: flags.maxFailures,
    rehearse: flags.rehearse === true,
  };
}

/**
 * The flags a rerun repeats when the user gave them: what runs and where. Not
 * those that choose the schools (the ids replace them), nor how much is
 * printed, nor --yes (rollback needs it only with --all-tenants).
 */
export const RERUN_FLAGS: readonly { key: string; flag: string }[] = [
  { key: "catalogUrl", flag: "--catalog-url" },
  { key: "appMigrations", flag: "--app-migrations" },
  { key: "catalogMigrations", flag: "--catalog-migrations" },
  { key: "envFile", flag: "--env-file" },
  { key: "embedded", flag: "--embedded" },
  { key: "template", flag: "--template" },
  { key: "appRole", flag: "--app-role" },
  { key: "concurrency", flag: "--concurrency" },
  { key: "lockTimeout", flag: "--lock-timeout" },
  { key: "pgLockTimeout", flag: "--pg-lock-timeout" },
  { key: "retries", flag: "--retries" },
  { key: "onError", flag: "--on-error" },
  { key: "maxFailures", flag: "--max-failures" },
];

/**
 * The RERUN_FLAGS the user gave on the command line (not defaults, not the
 * environment: that is still there on a rerun), each value one shell word. A
 * value that output would mask (a URL's password) is never printed: the flag
 * is left out and named in a hint, which also keeps the line from running as
 * pasted (with another catalog the ids would be other schools).
 */
export function givenFlags(command: Command): string[] {
  const values = command.optsWithGlobals() as Record<string, unknown>;
  const words: string[] = [];
  const withheld: string[] = [];
  for (const { key, flag } of RERUN_FLAGS) {
    if (command.getOptionValueSourceWithGlobals(key) !== "cli") continue;
    const value = values[key];
    if (value === true) words.push(flag);
    else if (value === false) words.push(flag.replace(/^--/, "--no-"));
    else if (value !== undefined && redact(String(value)) !== String(value)) withheld.push(flag);
    else if (value !== undefined) words.push(flag, shellWord(String(value)));
  }
  return withheld.length > 0 ? [...words, `(with your ${withheld.join(", ")})`] : words;
}

/**
 * How a fleet command's run is shown; `rerun` names the command that retries
 * failed schools, `rerunFlags` its own mode flags (rollback's), and `command`
 * the parsed command line, whose given settings the rerun repeats (givenFlags).
 */
export function viewOptionsFrom(
  flags: FleetFlags,
  rerun: string,
  rerunFlags: string[] = [],
  command?: Command,
): ViewOptions {
  const dryRun = flags.dryRun === true;
  const rehearse = flags.rehearse === true;
  const tail = [
    ...rerunFlags,
    ...(dryRun ? ["--dry-run"] : []),
    ...(rehearse ? ["--rehearse"] : []),
    ...(command ? givenFlags(command) : []),
  ];
  return {
    dryRun,
    rehearse,
    verbose: flags.verbose === true,
    quiet: flags.quiet === true,
    onError: flags.onError,
    rerun: (ids) => ["tenant-migrate", rerun, ...ids, ...tail].join(" "),
  };
}
