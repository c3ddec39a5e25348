import type { Command } from "commander";
import {
  DEFAULT_APP_MIGRATIONS_DIR,
  DEFAULT_CONCURRENCY,
  DEFAULT_LOCK_TIMEOUT_MS,
  DEFAULT_PG_LOCK_TIMEOUT_MS,
  DEFAULT_RETRIES,
} from "../index.js";

/** A default duration as the flags take it: 60_000 → "60s". */
export function formatSeconds(ms: number): string {
  return `${ms / 1000}s`;
}

/** Examples shown under each command's --help, by command path ("tenants add"). */
const EXAMPLES: Record<string, string[]> = {
  all: [
    "tenant-migrate all                          the deploy job: catalog, new schools, every school to latest",
    "tenant-migrate all --dry-run                say what would run, change nothing",
    "tenant-migrate all --canary 5 --json > deploy.json",
    "tenant-migrate all --shard 2/4              this machine's quarter of the fleet",
  ],
  provision: [
    "tenant-migrate provision lincoln_high       create and migrate one school's database",
    "tenant-migrate provision --missing          every school whose database does not exist yet",
  ],
  migrate: [
    "tenant-migrate migrate                      every school to the latest migration",
    'tenant-migrate migrate 12 47 "Lincoln High" schools by school_id, school_database or school_name',
    "tenant-migrate migrate --quiet | tee deploy.log   only failures and the recap in the log",
  ],
  rollback: [
    "tenant-migrate rollback lincoln_high        undo that school's last batch",
    "tenant-migrate rollback 12 --step 2         undo its last two batches",
    "tenant-migrate rollback 12 --to 20240101000001_create_lunch_day.js",
    "tenant-migrate rollback --all-tenants --dry-run",
  ],
  status: [
    "tenant-migrate status                       counts per state; the schools not up to date",
    "tenant-migrate status --verbose             every school",
    "tenant-migrate status --check               exit 1 unless every school is up to date (CI gate)",
  ],
  make: ["tenant-migrate make add_menu              app_migrations/<timestamp>_add_menu.js"],
  unlock: ["tenant-migrate unlock lincoln_high          clear a knex lock left by a killed run"],
  drop: ["tenant-migrate drop lincoln_high --yes      drop its database (the catalog row stays)"],
  "tenants list": ["tenant-migrate tenants list"],
  "tenants add": [
    'tenant-migrate tenants add "Lincoln High"               database lincoln_high',
    'tenant-migrate tenants add "Lincoln High" --provision   and create and migrate it now',
  ],
  history: [],
  "catalog migrate": ["tenant-migrate catalog migrate"],
  "catalog rollback": ["tenant-migrate catalog rollback"],
  "catalog status": ["tenant-migrate catalog status --json"],
};

const ENVIRONMENT = `
Environment (flag > environment > .env file > default):
  CATALOG_DATABASE_URL         catalog connection (or PGHOST, PGPORT, PGUSER, PGPASSWORD with CATALOG_DB)
  APP_MIGRATIONS_DIR           app (tenant) migrations folder (default ./${DEFAULT_APP_MIGRATIONS_DIR})
  CATALOG_MIGRATIONS_DIR       catalog migrations folder
  TENANT_SERVERS               JSON object: server name -> URL without database
  TENANT_MIGRATE_CONCURRENCY   tenants at once, per server (default ${DEFAULT_CONCURRENCY})
  TENANT_MIGRATE_LOCK_TIMEOUT  wait for another run on a tenant (default ${formatSeconds(DEFAULT_LOCK_TIMEOUT_MS)})
  TENANT_MIGRATE_PG_LOCK_TIMEOUT  PostgreSQL lock_timeout of each school's migration session (default ${formatSeconds(DEFAULT_PG_LOCK_TIMEOUT_MS)}, 0 off)
  TENANT_MIGRATE_RETRIES       retries of a transient fault per tenant (default ${DEFAULT_RETRIES})
  TENANT_MIGRATE_APP_ROLE      role granted CONNECT and TEMP on new tenant databases
  TENANT_MIGRATE_EMBEDDED=1    run on an embedded PostgreSQL
  TENANT_MIGRATE_TEMPLATE=1    provision new tenants by copying a template database
  TENANT_MIGRATE_ENV_FILE      read settings from this file instead of ./.env
  NO_COLOR                     no colours

Exit codes:
  0    every selected tenant succeeded, or there was nothing to do
  1    at least one tenant failed (status --check: one is not up to date)
  2    usage, configuration or catalog error: nothing was changed
  130  interrupted (SIGINT/SIGTERM): tenants in flight finished or rolled back
`;

/**
 * Help for people at a terminal: every command lists the global flags and
 * has examples; the top level lists the environment and the exit codes.
 * Call before the commands are added (help settings are inherited then).
 */
export function configureProgramHelp(program: Command): void {
  program.configureHelp({ showGlobalOptions: true, sortSubcommands: false });
  program.addHelpText("after", ENVIRONMENT);
}

/** Adds the examples to every command, once they are all registered. */
export function addExamples(program: Command): void {
  const visit = (command: Command, path: string[]) => {
    const key = path.join(" ");
    const examples = EXAMPLES[key];
    if (examples && examples.length > 0) {
      command.addHelpText("after", `\nExamples:\n${examples.map((e) => `  ${e}`).join("\n")}`);
    }
    for (const sub of command.commands) visit(sub, [...path, sub.name()]);
  };
  for (const command of program.commands) visit(command, [command.name()]);
}
