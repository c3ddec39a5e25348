import { Chalk, type ChalkInstance } from "chalk";
import type { Ora } from "ora";
import type { FleetEvent, FleetResult, TenantResult } from "../core/fleet.js";
import { redact } from "../core/redact.js";

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

/** One line per tenant result: the same facts on a TTY and off it, colour aside. */
export function tenantLine(output: Output, result: TenantResult, dryRun: boolean): string {
  const c = output.json ? output.err : output.out;
  const who = `${result.database} (id ${result.id}${result.server ? `, server ${result.server}` : ""})`;
  const word = SUCCESS_WORDS[result.result] ?? result.result;
  const verb = dryRun && result.result !== "failed" && result.result !== "skipped" ? `would be ${word}` : word;
  const what = result.migrations.length > 0 ? `: ${result.migrations.join(", ")}` : "";
  const time = c.dim(` (${formatMs(result.ms)})`);
  switch (result.result) {
    case "failed":
      return `${c.red("✖")} ${who} ${c.red("failed")}: ${result.error ?? "unknown error"}${time}`;
    case "skipped":
      return `${c.yellow("-")} ${who} ${c.yellow("skipped")}`;
    case "not-rehearsable":
      return `${c.yellow("-")} ${who} ${c.yellow(word)} (a pending migration runs outside a transaction)${what}${time}`;
    case "up-to-date":
    case "nothing-to-roll-back":
      return `${c.dim("·")} ${who} ${c.dim(verb)}${time}`;
    default:
      return `${c.green("✔")} ${who} ${c.green(verb)}${what}${time}`;
  }
}

export function summaryLine(output: Output, result: FleetResult): string {
  const c = output.json ? output.err : output.out;
  const s = result.summary;
  const counts = [
    c.green(`${s.succeeded} succeeded`),
    s.failed > 0 ? c.red(`${s.failed} failed`) : `${s.failed} failed`,
    s.skipped > 0 ? c.yellow(`${s.skipped} skipped`) : `${s.skipped} skipped`,
    ...(s.notRehearsable ? [c.yellow(`${s.notRehearsable} not rehearsable`)] : []),
  ];
  return `${s.total} tenant${s.total === 1 ? "" : "s"}: ${counts.join(", ")}${c.dim(` in ${formatMs(s.ms)}`)}${result.interrupted ? c.yellow(" (interrupted)") : ""}`;
}

/**
 * Renders fleet events: each finished tenant as a line, notices on stderr,
 * and live counts (done / failed / left) on the spinner.
 */
export function fleetRenderer(
  output: Output,
  options: { dryRun: boolean; verb: string; rehearse?: boolean },
): (event: FleetEvent) => void {
  let total = 0;
  let done = 0;
  let failed = 0;
  const counts = () => `${options.verb}: ${done} done, ${failed} failed, ${total - done} left`;
  const printNotices = noticesTo(output);
  return (event) => {
    switch (event.type) {
      case "catalog-migrated": {
        // A rehearsal leaves the catalog alone: it only says what would run there.
        const verb = options.dryRun || options.rehearse ? "would migrate" : "migrated";
        output.line(
          `catalog: ${event.migrations.length > 0 ? `${verb} ${event.migrations.join(", ")}` : "up to date"}`,
        );
        break;
      }
      case "fleet-started":
        total = event.total;
        output.startSpinner(counts());
        break;
      case "tenant-finished":
        done++;
        if (event.result.result === "failed") failed++;
        output.line(tenantLine(output, event.result, options.dryRun));
        output.spin(counts());
        break;
      case "notice":
        printNotices(event);
        break;
      default:
        break;
    }
  };
}

/** Renders only the notice events (on stderr): for the commands with no fleet. */
export function noticesTo(output: Output): (event: FleetEvent) => void {
  return (event) => {
    if (event.type === "notice") output.note(`${output.err.yellow("notice")}: ${event.message}`);
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
      const text = t.result === "failed" ? `${c.red("failed")}: ${t.error ?? ""}` : t.result.replace(/-/g, " ");
      output.line(`${t.database} (id ${t.id}) ${text}`);
    }
  }
  return result.ok ? 0 : 1;
}
