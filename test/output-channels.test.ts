// Where the output goes and what it looks like there: piped (one plain line
// per school, no ANSI), --json (one document on stdout, the human lines on
// stderr), NO_COLOR piped and on a terminal, and a terminal of no width.
import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import {
  ANSI,
  blockFirstMigration,
  type Fleet,
  type FleetJson,
  HAS_SCRIPT,
  parseJson,
  runInTty,
  useFleet,
} from "./helpers.ts";

const ANSI_ALL = new RegExp(ANSI.source, "g");
/** SGR sequences that set a colour or style (cursor movement and erasing are not colour). */
const COLOUR = new RegExp(`${String.fromCharCode(27)}\\[(?:[0-9;]*[1-9][0-9;]*)?m`);

describe("output channels", () => {
  let fleet: Fleet;
  let ok1: string;
  let ok2: string;
  let broken: string;
  useFleet(
    async (f) => {
      fleet = f;
      [ok1, broken, ok2] = fleet.dbs("out_one", "out_broken", "out_two");
      await fleet.addTenants([ok1, broken, ok2]);
      await blockFirstMigration(broken);
    },
    { each: true },
  );

  /** Provisions the two good schools (the broken one fails): where the terminal tests start. */
  async function provision(): Promise<void> {
    const result = await fleet.run(["all"]);
    assert.equal(result.code, 1, result.stderr);
  }

  it("piped: no ANSI codes, one line per tenant naming it, failed lines carry the error", async () => {
    const result = await fleet.run(["all"], { env: { CI: undefined } });
    assert.equal(result.code, 1, result.stderr);
    assert.doesNotMatch(result.stdout, ANSI);
    assert.doesNotMatch(result.stderr, ANSI);
    const lines = result.stdout.trim().split("\n");
    // Result lines start with their mark; the recap after them names the failed school again.
    const results = lines.filter((l) => /^[✔✖·-] /.test(l));
    for (const database of [ok1, ok2, broken]) {
      const mine = results.filter((l) => l.includes(`${database} (id `));
      assert.equal(mine.length, 1, `one line for ${database}:\n${result.stdout}`);
    }
    const failed = results.find((l) => l.includes(broken)) ?? "";
    assert.match(failed, /failed: .*relation "lunch_week" already exists/);
    assert.match(results.find((l) => l.includes(ok1)) ?? "", /provisioned/);
    assert.match(result.stdout, /3 tenants: 2 provisioned · 1 failed \(/);

    const status = await fleet.run(["status", "--verbose"], { env: { CI: undefined } });
    assert.equal(status.code, 0, status.stderr);
    assert.doesNotMatch(status.stdout + status.stderr, ANSI);
    for (const database of [ok1, ok2, broken]) assert.match(status.stdout, new RegExp(`${database} \\(id \\d+\\)`));
  });

  it("--json: stdout is exactly one JSON document; progress and summary go to stderr", async () => {
    const all = await fleet.run(["all", "--json"]);
    assert.equal(all.code, 1);
    const json = parseJson<FleetJson>(all.stdout);
    assert.ok(all.stdout.trimStart().startsWith("{") && all.stdout.trimEnd().endsWith("}"));
    assert.equal(json.tenants.length, 3);
    assert.match(json.tenants.find((t) => t.database === broken)?.error ?? "", /already exists/);
    // The human lines are not lost: they are on stderr, the failure with its error.
    assert.match(all.stderr, /3 tenants: 2 provisioned · 1 failed \(/);
    assert.match(all.stderr, new RegExp(`${broken} \\(id \\d+\\) failed: .*already exists`));
    assert.doesNotMatch(all.stdout + all.stderr, ANSI);

    const idOne = json.tenants.find((t) => t.database === ok1)?.id as string;
    const commands = [
      ["migrate", ok1, ok2, "--json"],
      ["provision", "--missing", "--json"],
      ["rollback", ok1, "--all", "--json", "--dry-run"],
      ["status", "--json"],
      ["tenants", "list", "--json"],
      ["history", idOne, "--json"],
      ["unlock", ok1, "--json"],
      ["catalog", "status", "--json"],
      ["catalog", "migrate", "--json"],
    ];
    for (const args of commands) {
      const result = await fleet.run(args);
      assert.ok(result.code === 0 || result.code === 1, `${args.join(" ")}: ${result.stderr}`);
      const doc = parseJson<Record<string, unknown>>(result.stdout);
      assert.equal(typeof doc, "object", args.join(" "));
      assert.ok(doc !== null && !Array.isArray(doc), args.join(" "));
      assert.doesNotMatch(result.stdout, ANSI, args.join(" "));
    }
  });

  it("NO_COLOR is honoured, piped and in the result lines on a terminal", async (t) => {
    await provision();
    const piped = await fleet.run(["status"], { env: { NO_COLOR: "1", FORCE_COLOR: undefined } });
    assert.equal(piped.code, 0, piped.stderr);
    assert.doesNotMatch(piped.stdout + piped.stderr, ANSI);
    if (!HAS_SCRIPT) return t.skip("no `script` to give the CLI a terminal");

    // On a terminal without NO_COLOR there is colour (so the check below can see it)...
    const coloured = await runInTty(fleet, ["status", "--verbose"], {
      env: { NO_COLOR: undefined, CI: undefined },
      columns: 100,
    });
    assert.equal(coloured.code, 0, coloured.tty);
    assert.match(coloured.tty, COLOUR, "a terminal gets colour");
    assert.match(coloured.tty.replace(ANSI_ALL, ""), new RegExp(`${ok1} \\(id \\d+\\) up to date`));
    // ... and with NO_COLOR there is none.
    const plain = await runInTty(fleet, ["status", "--verbose"], {
      env: { NO_COLOR: "1", CI: undefined },
      columns: 100,
    });
    assert.equal(plain.code, 0, plain.tty);
    assert.doesNotMatch(plain.tty, COLOUR);
    assert.match(plain.tty, new RegExp(`${ok1} \\(id \\d+\\) up to date`));
    // A fleet command's result lines on stdout, with the spinner on stderr kept apart.
    const errFile = path.join(fleet.cwd, "stderr.txt");
    const lines = await runInTty(fleet, ["migrate", ok1, ok2], {
      env: { NO_COLOR: "1", CI: undefined },
      columns: 100,
      stderrFile: errFile,
    });
    assert.equal(lines.code, 0, lines.tty);
    assert.doesNotMatch(lines.tty, COLOUR);
    assert.match(lines.tty, new RegExp(`${ok2} \\(id \\d+\\) up to date`));
  });

  it("NO_COLOR is honoured by the spinner on a terminal", { skip: !HAS_SCRIPT }, async () => {
    await provision();
    const run = await runInTty(fleet, ["migrate", ok1, ok2], { env: { NO_COLOR: "1", CI: undefined }, columns: 100 });
    assert.equal(run.code, 0, run.tty);
    assert.match(run.tty, /\d+\/2 \d+% · \d+ failed/, "the spinner ran");
    assert.equal(run.tty.match(COLOUR)?.[0], undefined, "a colour code with NO_COLOR set");
  });

  it("a terminal that reports no width (script, docker -t) does not hang the run", { skip: !HAS_SCRIPT }, async () => {
    await provision();
    // `script` without a size gives a 0x0 terminal, as some CI runners do.
    const run = await runInTty(fleet, ["migrate", ok1, ok2], {
      env: { NO_COLOR: "1", CI: undefined },
      timeoutMs: 8_000,
    });
    assert.equal(
      run.code,
      0,
      `killed after 8 s; ${run.tty.length} bytes of output, ending ${JSON.stringify(run.tty.slice(-40))}`,
    );
    assert.match(run.tty, /2 tenants: 2 up to date/);
  });
});
