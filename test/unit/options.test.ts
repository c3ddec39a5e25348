// The fleet commands' option parsing, without running a command.
import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import { Command, CommanderError, InvalidArgumentError } from "commander";
import { rollbackFlags } from "../../src/cli/commands/rollback.ts";
import {
  addFleetOptions,
  addGlobalOptions,
  type FleetFlags,
  fleetOptionsFrom,
  parseCount,
  parsePositive,
  parseShard,
  RERUN_FLAGS,
  viewOptionsFrom,
} from "../../src/cli/options.ts";
import { checkRehearse } from "../../src/commands/migrate.ts";
import { type RollbackOptions, rollbackTenants } from "../../src/commands/rollback.ts";
import type { Config } from "../../src/core/config.ts";
import { UsageError } from "../../src/core/errors.ts";

/** The InvalidArgumentError `fn` throws, or a failed assertion. */
function invalid(fn: () => unknown): InvalidArgumentError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof InvalidArgumentError, `expected an InvalidArgumentError, got ${String(error)}`);
    return error;
  }
  assert.fail("no InvalidArgumentError was thrown");
}

describe("parseShard", () => {
  it("reads I/N", () => {
    assert.deepEqual(parseShard("2/4"), { index: 2, count: 4 });
    assert.deepEqual(parseShard("1/1"), { index: 1, count: 1 });
    assert.deepEqual(parseShard("4/4"), { index: 4, count: 4 });
    assert.deepEqual(parseShard("03/10"), { index: 3, count: 10 });
  });

  it("refuses an index out of 1..N, a zero count and anything that is not I/N", () => {
    for (const value of [
      "0/4",
      "5/4",
      "1/0",
      "0/0",
      "-1/4",
      "1.5/4",
      "2",
      "2/",
      "/4",
      "a/b",
      " 2/4",
      "2/4 ",
      "2/4/8",
    ]) {
      const error = invalid(() => parseShard(value));
      assert.equal(error.message, "expected I/N with 1 <= I <= N, e.g. 2/4", value);
    }
  });
});

describe("parsePositive and parseCount", () => {
  it("parsePositive takes a whole number of 1 or more", () => {
    const canary = parsePositive("--canary");
    assert.equal(canary("1"), 1);
    assert.equal(canary("25"), 25);
    assert.equal(canary("007"), 7);
    for (const value of ["0", "-1", "1.5", "", "two", "1e3", " 3"]) {
      assert.equal(invalid(() => canary(value)).message, "--canary must be a whole number of 1 or more", value);
    }
  });

  it("parseCount also takes 0", () => {
    const maxFailures = parseCount("--max-failures");
    assert.equal(maxFailures("0"), 0);
    assert.equal(maxFailures("12"), 12);
    for (const value of ["-1", "0.5", "", "none"]) {
      assert.equal(
        invalid(() => maxFailures(value)).message,
        "--max-failures must be a whole number of 0 or more",
        value,
      );
    }
  });
});

describe("addFleetOptions", () => {
  /** A fleet command's options after parsing `args`; commander errors are thrown, not exits. */
  function parse(args: string[], what: { changes?: boolean } = {}): Record<string, unknown> {
    const command = addFleetOptions(new Command("migrate"), what)
      .exitOverride()
      .configureOutput({ writeErr: () => {}, writeOut: () => {} });
    return command.parse(args, { from: "user" }).opts();
  }

  it("parses the flags into typed values, on-error defaulting to continue", () => {
    assert.deepEqual(parse([]), { onError: "continue" });
    assert.deepEqual(
      parse(["--shard", "2/3", "--canary", "5", "--max-failures", "0", "--on-error", "abort", "--dry-run", "--json"]),
      { shard: { index: 2, count: 3 }, canary: 5, maxFailures: 0, onError: "abort", dryRun: true, json: true },
    );
  });

  it("turns a bad value into a commander usage error naming the option", () => {
    for (const [args, pattern] of [
      [["--shard", "3/2"], /option '--shard <i\/n>' argument '3\/2' is invalid\. expected I\/N/],
      [["--canary", "0"], /--canary must be a whole number of 1 or more/],
      [["--on-error", "retry"], /argument 'retry' is invalid\. Allowed choices are continue, abort/],
    ] as const) {
      assert.throws(
        () => parse([...args]),
        (error: unknown) => error instanceof CommanderError && pattern.test(error.message),
      );
    }
  });

  it("leaves out the options about changing tenants for status", () => {
    assert.deepEqual(parse(["--shard", "1/2", "--verbose"], { changes: false }), {
      shard: { index: 1, count: 2 },
      verbose: true,
    });
    for (const flag of ["--canary", "--max-failures", "--on-error", "--dry-run", "--quiet"]) {
      assert.throws(() => parse([flag, "1"], { changes: false }), CommanderError, flag);
    }
  });
});

describe("fleetOptionsFrom and viewOptionsFrom", () => {
  const config = { concurrency: 3 } as Config;

  it("carries the flags into the command's options, switches as booleans", () => {
    assert.deepEqual(fleetOptionsFrom({ onError: "continue" }, config, ["1"]), {
      config,
      tenants: ["1"],
      onError: "continue",
      dryRun: false,
      shard: undefined,
      canary: undefined,
      maxFailures: undefined,
      rehearse: false,
    });
    const flags: FleetFlags = {
      onError: "abort",
      dryRun: true,
      shard: { index: 1, count: 2 },
      canary: 2,
      maxFailures: 4,
      rehearse: true,
    };
    assert.deepEqual(fleetOptionsFrom(flags, config, []), {
      config,
      tenants: [],
      onError: "abort",
      dryRun: true,
      shard: { index: 1, count: 2 },
      canary: 2,
      maxFailures: 4,
      rehearse: true,
    });
  });

  it("writes the rerun command with the command's own flags, then --dry-run and --rehearse", () => {
    const plain = viewOptionsFrom({ onError: "continue" }, "migrate");
    assert.equal(plain.rerun?.(["3", "7"]), "tenant-migrate migrate 3 7");
    assert.deepEqual(
      { dryRun: plain.dryRun, rehearse: plain.rehearse, verbose: plain.verbose, quiet: plain.quiet },
      { dryRun: false, rehearse: false, verbose: false, quiet: false },
    );
    const view = viewOptionsFrom(
      { onError: "abort", dryRun: true, rehearse: true, verbose: true, quiet: true },
      "rollback",
      ["--step", "2"],
    );
    assert.equal(view.rerun?.(["5"]), "tenant-migrate rollback 5 --step 2 --dry-run --rehearse");
    assert.equal(view.onError, "abort");
    assert.equal(view.verbose && view.quiet && view.dryRun && view.rehearse, true);
  });
});

describe("the rerun command repeats the settings given on the command line", () => {
  /** `args` parsed as the CLI parses them (global options before or after the command); the fleet command and its flags. */
  function parsed(args: string[]): { command: Command; flags: FleetFlags } {
    const program = addGlobalOptions(new Command("tenant-migrate")).exitOverride();
    let result: { command: Command; flags: FleetFlags } | undefined;
    for (const name of ["migrate", "rollback"]) {
      addFleetOptions(program.command(name).argument("[tenants...]"))
        .option("--rehearse")
        .option("--all-tenants")
        .option("--yes")
        .option("--step <n>")
        .exitOverride()
        .action((_tenants: string[], flags: FleetFlags, command: Command) => {
          result = { command, flags };
        });
    }
    program.parse(args, { from: "user" });
    assert.ok(result, "no command ran");
    return result;
  }
  const rerun = (args: string[], modeFlags: string[] = []) => {
    const { command, flags } = parsed(args);
    return viewOptionsFrom(flags, command.name(), modeFlags, command).rerun?.(["3", "7"]);
  };

  it("every setting the user gave, each one shell word; not the schools' selection, the view or --yes", () => {
    assert.equal(
      rerun([
        "migrate",
        "--app-migrations",
        "./db/tenant",
        "--template",
        "--concurrency",
        "4",
        "--json",
        "--verbose",
        "--shard",
        "1/2",
        "--canary",
        "2",
        "--on-error",
        "abort",
        "school one",
      ]),
      "tenant-migrate migrate 3 7 --app-migrations ./db/tenant --template --concurrency 4 --on-error abort",
    );
    assert.equal(
      rerun(
        [
          "--app-migrations",
          "db/tenant app",
          "--env-file",
          "it's.env",
          "--no-template",
          "--embedded",
          "rollback",
          "--all-tenants",
          "--yes",
          "--step",
          "2",
          "--dry-run",
          "--catalog-migrations",
          "./cm",
          "--app-role",
          "lunch_app",
          "--lock-timeout",
          "90s",
          "--pg-lock-timeout",
          "0",
          "--retries",
          "1",
          "--max-failures",
          "3",
          "--quiet",
        ],
        ["--step", "2"],
      ),
      [
        "tenant-migrate rollback 3 7 --step 2 --dry-run",
        "--app-migrations 'db/tenant app'",
        "--catalog-migrations ./cm",
        "--env-file 'it'\\''s.env'",
        "--embedded",
        "--no-template",
        "--app-role lunch_app",
        "--lock-timeout 90s",
        "--pg-lock-timeout 0",
        "--retries 1",
        "--max-failures 3",
      ].join(" "),
    );
  });

  it("only flags given: no default (--on-error continue), nothing from the environment", () => {
    const saved = process.env.APP_MIGRATIONS_DIR;
    process.env.APP_MIGRATIONS_DIR = "./db/tenant";
    try {
      assert.equal(rerun(["migrate"]), "tenant-migrate migrate 3 7");
    } finally {
      if (saved === undefined) delete process.env.APP_MIGRATIONS_DIR;
      else process.env.APP_MIGRATIONS_DIR = saved;
    }
  });

  it("never prints a password: a --catalog-url with one is left out and named; one without is repeated", () => {
    const withPassword = rerun(["migrate", "--catalog-url", "postgres://admin:s3cret-pw@db.example/catalog"]);
    assert.equal(withPassword, "tenant-migrate migrate 3 7 (with your --catalog-url)");
    assert.doesNotMatch(withPassword ?? "", /s3cret|db\.example/);
    assert.equal(
      rerun([
        "--catalog-url",
        "postgres://db.example/catalog?sslmode=require&password=s3cret-pw",
        "migrate",
        "--retries",
        "2",
      ]),
      "tenant-migrate migrate 3 7 --retries 2 (with your --catalog-url)",
    );
    assert.equal(
      rerun(["migrate", "--catalog-url", "postgres://admin@db.example/catalog"]),
      "tenant-migrate migrate 3 7 --catalog-url postgres://admin@db.example/catalog",
    );
  });

  it("knows every global option (a new one is repeated or left out on purpose)", () => {
    const known = new Set(RERUN_FLAGS.map((f) => f.key));
    for (const option of addGlobalOptions(new Command()).options) {
      assert.ok(known.has(option.attributeName()), `${option.long} is not in RERUN_FLAGS`);
    }
  });
});

describe("a command's own checks, before any connection", () => {
  const config = { appMigrationsDir: path.resolve("app_migrations") } as Config;
  it("rollback's mode flags for the rerun line, --to as one shell word", () => {
    assert.deepEqual(rollbackFlags({ all: true }), ["--all"]);
    assert.deepEqual(rollbackFlags({ step: 2 }), ["--step", "2"]);
    assert.deepEqual(rollbackFlags({ to: "20240101_init.js" }), ["--to", "20240101_init.js"]);
    assert.deepEqual(rollbackFlags({ to: "002 add it's.js" }), ["--to", "'002 add it'\\''s.js'"]);
    assert.deepEqual(rollbackFlags({}), []);
  });

  /** rollbackTenants refuses these options at once with this UsageError (it never reaches the catalog). */
  const refuses = (options: Partial<RollbackOptions>, message: string) =>
    assert.throws(
      () => rollbackTenants({ config, ...options }),
      (error: unknown) => error instanceof UsageError && error.message === message,
      message,
    );

  it("rollback needs tenant names or --all-tenants, and --yes for the whole fleet", () => {
    refuses({}, "rollback needs tenant names or --all-tenants (it never rolls back the whole fleet by default)");
    refuses({ tenants: ["1"], allTenants: true }, "name tenants or use --all-tenants, not both");
    assert.throws(
      () => rollbackTenants({ config, allTenants: true }),
      /^UsageError: refusing to roll back every tenant without --yes: /,
    );
  });

  it("rollback takes one of --step, --all and --to; --step of 1 or more; --to naming a file of the folder", () => {
    for (const [options, message] of [
      [{ step: 2, all: true }, "use only one of --step, --all and --to"],
      [{ all: true, to: "x.js" }, "use only one of --step, --all and --to"],
      [{ step: 0 }, "--step must be a whole number of 1 or more"],
      [{ step: 1.5 }, "--step must be a whole number of 1 or more"],
      [{ to: "nope.js" }, `--to: no migration file named nope.js in ${config.appMigrationsDir}`],
    ] as [Partial<RollbackOptions>, string][]) {
      refuses({ tenants: ["1"], ...options }, message);
    }
  });

  it("--rehearse and --dry-run exclude each other", () => {
    assert.throws(() => checkRehearse({ config, rehearse: true, dryRun: true }), {
      message: "use --rehearse or --dry-run, not both",
    });
    assert.doesNotThrow(() => checkRehearse({ config, rehearse: true }));
    assert.doesNotThrow(() => checkRehearse({ config, dryRun: true }));
  });
});
