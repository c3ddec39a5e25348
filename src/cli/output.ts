import { fstatSync } from "node:fs";
import { Chalk, type ChalkInstance } from "chalk";
import type { Ora } from "ora";
import { countByResult, type FleetEvent, type FleetResult, redact, type TenantResult } from "../index.js";
import { describeCause, failureCause } from "./causes.js";
import { safe } from "./safe.js";

/**
 * Where and how the CLI writes. Results go to stdout, progress and notices to
 * stderr; with --json, stdout carries exactly one JSON document. Colour only
 * on a TTY and without NO_COLOR; the spinner only on a TTY stderr.
 */
export class Output {
  readonly out: ChalkInstance;
  readonly err: ChalkInstance;
  private spinner: Ora | undefined;
  private makeSpinner: ((text: string) => Ora) | undefined;
  /** The streams' own write, taken before a --json run routes process.stdout.write to stderr. */
  private readonly writers = new Map<NodeJS.WriteStream, (text: string) => boolean>();
  /** Streams closed under us (EPIPE: `| head`, quitting less): nothing more is written to them. */
  private readonly closed = new Set<NodeJS.WriteStream>();

  constructor(
    readonly json: boolean,
    private readonly stdout: NodeJS.WriteStream = process.stdout,
    private readonly stderr: NodeJS.WriteStream = process.stderr,
  ) {
    const noColor = process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== "";
    this.out = new Chalk({ level: stdout.isTTY && !noColor ? 1 : 0 });
    this.err = new Chalk({ level: stderr.isTTY && !noColor ? 1 : 0 });
    for (const stream of [stdout, stderr]) this.writers.set(stream, stream.write.bind(stream));
  }

  /** A result line (stdout; stderr under --json). */
  line(text: string): void {
    this.above(() => {
      this.write(this.json ? this.stderr : this.stdout, `${redact(text)}\n`);
    });
  }

  /** Progress or a notice (always stderr). */
  note(text: string): void {
    this.above(() => this.write(this.stderr, `${redact(text)}\n`));
  }

  /** The one JSON document of a --json run. */
  document(value: unknown): void {
    // Masked value by value: a secret escaped inside JSON text would no longer match.
    const text = JSON.stringify(value, (_key, v) => (typeof v === "string" ? redact(v) : v), 2);
    this.write(this.stdout, `${text}\n`);
  }

  /**
   * Calls `onClose` the first time stdout or stderr is closed under us (a write
   * fails with EPIPE: `| head -1`, quitting less, `| grep -q`); from then on
   * nothing is written to that stream, and its error never becomes a crash.
   */
  watchStreams(onClose: (stream: "stdout" | "stderr") => void): void {
    for (const [name, stream] of [
      ["stdout", this.stdout],
      ["stderr", this.stderr],
    ] as const) {
      stream.on("error", () => {
        if (this.closed.has(stream)) return;
        this.closed.add(stream);
        if (stream === this.stderr) this.stopSpinner();
        onClose(name);
      });
    }
  }

  private write(stream: NodeJS.WriteStream, text: string): void {
    if (this.closed.has(stream) || stream.destroyed) return;
    const write = this.writers.get(stream) ?? stream.write.bind(stream);
    try {
      write(text);
    } catch {
      // A stream that cannot be written to is treated as closed; its error event says so.
      this.closed.add(stream);
    }
  }

  /** Loads ora only when a spinner will show: pipelines never pay for it. */
  async prepareSpinner(): Promise<void> {
    // A terminal that reports no width would make ora's line clearing loop forever.
    if (!this.stderr.isTTY || process.env.CI || !this.stderr.columns) return;
    const { default: ora } = await import("ora");
    const color = this.err.level > 0 ? "cyan" : false;
    this.makeSpinner = (text) => ora({ text, stream: this.stderr, discardStdin: false, color }).start();
  }

  /** Whether a spinner can show (stderr is a terminal with a width). */
  get canSpin(): boolean {
    return this.makeSpinner !== undefined;
  }

  /** The terminal's width for the live area (stderr), 80 when unknown. */
  get columns(): number {
    return this.stderr.columns || 80;
  }

  /**
   * Where result lines go: a terminal, a regular file (`> deploy.log`) or a
   * pipe (`| tee`, whose output may reach the same terminal as the spinner).
   */
  resultsTarget(): "tty" | "file" | "pipe" {
    const stream = this.json ? this.stderr : this.stdout;
    if (stream.isTTY) return "tty";
    const fd = (stream as { fd?: unknown }).fd;
    try {
      if (typeof fd === "number" && fstatSync(fd).isFile()) return "file";
    } catch {
      // not a file descriptor we can ask about
    }
    return "pipe";
  }

  startSpinner(text: string): void {
    this.spinner = this.makeSpinner?.(text);
  }

  spin(text: string): void {
    if (this.spinner) this.spinner.text = text;
  }

  stopSpinner(): void {
    this.spinner?.stop();
    this.spinner = undefined;
  }

  /** Writes a line above the spinner, which keeps running below it. */
  private above(write: () => void): void {
    if (!this.spinner) {
      write();
      return;
    }
    this.spinner.clear();
    write();
    this.spinner.render();
  }
}

const SUCCESS_WORDS: Record<string, string> = {
  provisioned: "provisioned",
  migrated: "migrated",
  "up-to-date": "up to date",
  "rolled-back": "rolled back",
  "nothing-to-roll-back": "nothing to roll back",
  rehearsed: "rehearsed",
  "not-rehearsable": "not rehearsable",
  failed: "failed",
  skipped: "skipped",
};

/** Rows of cells padded into aligned columns. */
export function alignColumns(rows: string[][]): string[] {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  return rows.map((row) =>
    row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join("  "),
  );
}

export function formatMs(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** The migrations of a result line: their names when few (or `verbose`), else how many and the last. */
export function describeMigrations(migrations: string[], verbose = false): string {
  if (migrations.length === 0) return "";
  if (verbose || migrations.length <= 2) return `: ${migrations.map(safe).join(", ")}`;
  return `: ${migrations.length} migrations, up to ${safe(migrations[migrations.length - 1] ?? "")}`;
}

/** One line per tenant result: the same facts on a TTY and off it, colour aside. Values are escaped. */
export function tenantLine(output: Output, result: TenantResult, dryRun: boolean, verbose = false): string {
  const c = output.json ? output.err : output.out;
  const who = `${safe(result.database)} (id ${safe(result.id)}${result.server ? `, server ${safe(result.server)}` : ""})`;
  const word = resultWord(result.result);
  const verb = dryRun && wouldBe(result.result) ? `would be ${word}` : word;
  const what = describeMigrations(result.migrations, verbose);
  const time = c.dim(` (${formatMs(result.ms)})`);
  switch (result.result) {
    case "failed":
      return `${c.red("✖")} ${who} ${c.red("failed")}: ${describeCause(failureCause(result, { withStatement: verbose }))}${time}`;
    case "skipped":
      return `${c.yellow("-")} ${who} ${c.yellow("skipped")}`;
    case "not-rehearsable":
      return `${c.yellow("-")} ${who} ${c.yellow(word)} (a pending migration runs outside a transaction)${what}${time}`;
    case "up-to-date":
    case "nothing-to-roll-back":
      return `${c.dim("·")} ${who} ${c.dim(verb)}${time}`;
    default: {
      const recreated = result.recreated ? c.yellow(" (its database had vanished: created again, empty)") : "";
      return `${c.green("✔")} ${who} ${c.green(verb)}${what}${recreated}${time}`;
    }
  }
}

/** A result kind in words ("up-to-date" → "up to date"), for kinds this file does not know too. */
export function resultWord(kind: string): string {
  return SUCCESS_WORDS[kind] ?? kind.replace(/-/g, " ");
}

/** Result kinds in the order a summary lists them; kinds not listed here follow, as they occur. */
/** Whether a dry run says "would be" of this result: not of what it already found (failed, skipped, up to date). */
function wouldBe(kind: string): boolean {
  return kind !== "failed" && kind !== "skipped" && kind !== "up-to-date";
}

const KIND_ORDER = [
  "provisioned",
  "migrated",
  "rehearsed",
  "rolled-back",
  "up-to-date",
  "nothing-to-roll-back",
  "not-rehearsable",
  "failed",
  "skipped",
];

/** "300 tenants: 1 provisioned · 290 migrated · 5 up to date · 4 failed (31.2 s)", generic over result kinds. */
export function summaryLine(output: Output, result: FleetResult, dryRun = false): string {
  const c = output.json ? output.err : output.out;
  const s = result.summary;
  const byResult = s.byResult ?? countByResult(result.tenants);
  const kinds = Object.keys(byResult).sort((a, b) => rank(a) - rank(b));
  const parts = kinds.map((kind) => {
    const n = byResult[kind] ?? 0;
    const would = dryRun && wouldBe(kind) ? "would be " : "";
    const text = `${n} ${would}${resultWord(kind)}`;
    if (kind === "failed") return c.red(text);
    if (kind === "skipped") return c.yellow(text);
    return kind === "up-to-date" || kind === "nothing-to-roll-back" ? text : c.green(text);
  });
  const what = parts.length > 0 ? parts.join(" · ") : "nothing to do";
  const tenants = `${s.total} tenant${s.total === 1 ? "" : "s"}${dryRun ? " (dry run)" : ""}`;
  return `${tenants}: ${what}${c.dim(` (${formatMs(s.ms)})`)}${result.interrupted ? c.yellow(" (interrupted)") : ""}`;
}

function rank(kind: string): number {
  const index = KIND_ORDER.indexOf(kind);
  return index < 0 ? KIND_ORDER.length - 2 : index;
}

/** Renders only the notice events (on stderr): for the commands with no fleet. */
export function noticesTo(output: Output): (event: FleetEvent) => void {
  return (event) => {
    if (event.type === "notice") output.note(`${output.err.yellow("notice")}: ${safe(event.message)}`);
  };
}

/** unlock and drop: a line per tenant, or one JSON document; exit 1 if any failed. */
export function printSimpleResult(
  result: {
    ok: boolean;
    tenants: { id: string; database: string; result: string; error?: string }[];
  },
  output: Output,
): number {
  if (output.json) output.document(result);
  else {
    for (const t of result.tenants) {
      const c = output.out;
      const text = t.result === "failed" ? `${c.red("failed")}: ${safe(t.error ?? "")}` : t.result.replace(/-/g, " ");
      output.line(`${safe(t.database)} (id ${safe(t.id)}) ${text}`);
    }
  }
  return result.ok ? 0 : 1;
}
