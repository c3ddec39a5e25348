import type { FleetEvent, FleetResult, TenantResult } from "../index.js";
import { describeCause, type FailureCause, failureCause } from "./causes.js";
import { type Output, summaryLine, tenantLine } from "./output.js";
import { safe } from "./safe.js";

/** How a fleet command's run is shown. */
export interface ViewOptions {
  dryRun: boolean;
  /** --rehearse: the catalog is left alone, as with --dry-run. */
  rehearse?: boolean | undefined;
  /** List successes too (on a terminal), and every migration name on a line. */
  verbose?: boolean | undefined;
  /** Off a terminal: print failures only, then the recap. */
  quiet?: boolean | undefined;
  onError?: "continue" | "abort" | undefined;
  /** The command line that retries the given schools, e.g. ids => `tenant-migrate migrate ${ids}`. */
  rerun?: ((ids: string[]) => string) | undefined;
}

/** At most this many schools in flight are named in the live area. */
const IN_FLIGHT_LINES = 4;
/** At most this many schools are named under one cause in the recap. */
const NAMES_PER_CAUSE = 6;
const BAR_WIDTH = 24;

interface InFlight {
  database: string;
  migration?: string;
  since: number;
}

/**
 * Renders a fleet run. On a terminal (the live view): a header, a live area
 * at the bottom (bar, done/total, %, failed, elapsed, ETA, the schools in
 * flight and the migration each is on), failures printed above it as they
 * happen, successes counted. Off a terminal: one plain line per school
 * (failures only with --quiet). Both end with the same recap: summary by
 * result, skipped folded, failures grouped by cause, the rerun command and
 * the run id. Notices that repeat for many schools are folded.
 */
export class FleetView {
  private readonly live: boolean;
  /** The spinner runs on stderr while results go to a file (`> deploy.log`): the terminal gets the summary too. */
  private readonly spinnerOnly: boolean;
  private total = 0;
  private done = 0;
  private failed = 0;
  private started = 0;
  private runId: string | undefined;
  private readonly inFlight = new Map<string, InFlight>();
  private readonly notices = new Map<string, { first: string; more: number }>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly output: Output,
    private readonly options: ViewOptions,
  ) {
    const target = output.resultsTarget();
    // A pipe (`| tee`) may print on the same terminal as the spinner, out of step with it: no spinner then.
    const spin = output.canSpin && target !== "pipe";
    this.live = spin && target === "tty";
    this.spinnerOnly = spin && target === "file";
  }

  readonly onEvent = (event: FleetEvent): void => {
    switch (event.type) {
      case "catalog-migrated": {
        // A rehearsal leaves the catalog alone: it only says what would run there.
        const verb = this.options.dryRun || this.options.rehearse ? "would migrate" : "migrated";
        const names = event.migrations.map(safe).join(", ");
        this.output.line(`catalog: ${event.migrations.length > 0 ? `${verb} ${names}` : "up to date"}`);
        break;
      }
      case "run-started":
        this.runId = event.run;
        this.header(event);
        break;
      case "fleet-started":
        this.total = event.total;
        this.started = performance.now();
        if (this.live || this.spinnerOnly) {
          this.output.startSpinner(this.liveText());
          this.timer = setInterval(() => this.output.spin(this.liveText()), 500);
          this.timer.unref();
        }
        break;
      case "tenant-started":
        this.inFlight.set(event.tenant.id, { database: event.tenant.database, since: performance.now() });
        this.refresh();
        break;
      case "migration-started": {
        const entry = this.inFlight.get(event.tenant.id);
        if (entry) entry.migration = `${event.direction === "down" ? "undoing " : ""}${event.name}`;
        this.refresh();
        break;
      }
      case "tenant-finished":
        this.finished(event.result);
        break;
      case "notice":
        this.notice(event);
        break;
      default:
        break;
    }
  };

  /** Stops the live area and prints the recap (none when the run itself failed: `result` undefined). */
  finish(result: FleetResult | undefined): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.output.stopSpinner();
    if (!result) return;
    const { output } = this;
    const c = output.json ? output.err : output.out;
    for (const { first, more } of this.notices.values()) {
      if (more > 0) output.note(`${output.err.yellow("notice")}: ${more} more like "${first}"`);
    }
    for (const [reason, n] of this.skippedReasons(result)) output.line(c.yellow(`${n} skipped: ${reason}`));
    const summary = summaryLine(output, result, this.options.dryRun);
    output.line(summary);
    const failed = result.tenants.filter((t) => t.result === "failed");
    if (failed.length > 0) {
      output.line(c.red("failed, by cause:"));
      for (const group of groupByCause(failed)) {
        output.line(`  ${c.red(`${group.tenants.length} ×`)} ${describeCause(group.cause)}`);
        const names = group.tenants.slice(0, NAMES_PER_CAUSE).map((t) => `${safe(t.database)} (id ${safe(t.id)})`);
        const more = group.tenants.length - names.length;
        output.line(`      ${names.join(", ")}${more > 0 ? `, and ${more} more` : ""}`);
      }
    }
    const retry = result.tenants.filter((t) => t.result === "failed" || t.result === "skipped");
    if (retry.length > 0 && this.options.rerun) {
      const what = failed.length === retry.length ? "the failed" : "the failed and skipped";
      output.line(`rerun ${what}: ${this.options.rerun(retry.map((t) => shellWord(t.id)))}`);
    }
    const run = result.run ?? this.runId;
    if (run) output.line(c.dim(`details: tenant-migrate history --run ${run.slice(0, 8)}`));
    // `> deploy.log`: the recap went to the file; the terminal still says how it ended.
    if (this.spinnerOnly) output.note(summary);
  }

  private header(event: Extract<FleetEvent, { type: "run-started" }>): void {
    const c = this.output.err;
    const parts = [
      `${event.total} tenant${event.total === 1 ? "" : "s"}`,
      `concurrency ${event.concurrency}`,
      event.run ? `run ${event.run.slice(0, 8)}` : this.options.dryRun ? "dry run" : undefined,
    ].filter(Boolean);
    this.output.note(`${c.bold(`tenant-migrate ${event.command}`)}: ${parts.join(" · ")}`);
    this.output.note(c.dim(`catalog ${safe(event.catalog)}`));
    const files = event.migrations;
    if (files.length > 0) {
      const shown = files.length <= 5 ? files : [...files.slice(0, 2), "…", ...files.slice(-2)];
      this.output.note(c.dim(`migration files (${files.length}): ${shown.map(safe).join(", ")}`));
    }
  }

  private finished(result: TenantResult): void {
    this.done++;
    this.inFlight.delete(result.id);
    if (result.result === "failed") this.failed++;
    const { output, options } = this;
    // A failure, and a school whose database had vanished and was made again, are always named.
    if (result.result === "failed" || result.recreated) {
      output.line(tenantLine(output, this.live ? firstLineOf(result) : result, options.dryRun, options.verbose));
    } else if (this.live || this.spinnerOnly ? options.verbose : !options.quiet) {
      // On a terminal successes are counted, skipped folded; off it, one line per school.
      if (!this.live || result.result !== "skipped")
        output.line(tenantLine(output, result, options.dryRun, options.verbose));
    }
    this.refresh();
  }

  /** The first notice of a kind is printed; the same notice for other schools is counted. */
  private notice(event: Extract<FleetEvent, { type: "notice" }>): void {
    const message = safe(event.message);
    let key = message;
    if (event.tenant) key = key.split(safe(event.tenant.database)).join("\u0000");
    key = key.replace(/\d+/g, "#");
    const seen = this.notices.get(key);
    if (seen) {
      seen.more++;
      return;
    }
    const generic = event.tenant ? message.split(safe(event.tenant.database)).join("<school>") : message;
    this.notices.set(key, { first: generic, more: 0 });
    this.output.note(`${this.output.err.yellow("notice")}: ${message}`);
  }

  private refresh(): void {
    if (this.live || this.spinnerOnly) this.output.spin(this.liveText());
  }

  /** The live area: the bar line, then the schools in flight, longest-running first. */
  liveText(): string {
    const c = this.output.err;
    const now = performance.now();
    const elapsed = now - this.started;
    const share = this.total === 0 ? 1 : this.done / this.total;
    const filled = Math.round(share * BAR_WIDTH);
    const bar = `${"█".repeat(filled)}${"░".repeat(BAR_WIDTH - filled)}`;
    const eta =
      this.done === 0 || this.done >= this.total
        ? "ETA --"
        : `ETA ${clock((elapsed / this.done) * (this.total - this.done))}`;
    const failed = this.failed > 0 ? c.red(`${this.failed} failed`) : "0 failed";
    const lines = [
      `${bar} ${this.done}/${this.total} ${Math.floor(share * 100)}% · ${failed} · ${clock(elapsed)} elapsed · ${eta}`,
    ];
    const running = [...this.inFlight.values()].sort((a, b) => a.since - b.since);
    const shown = running.length > IN_FLIGHT_LINES ? IN_FLIGHT_LINES - 1 : running.length;
    for (const t of running.slice(0, shown)) {
      const on = t.migration ?? "starting";
      lines.push(`  ${safe(t.database)}  ${c.dim(`${on} · ${clock(now - t.since)}`)}`);
    }
    if (running.length > shown) lines.push(c.dim(`  … and ${running.length - shown} more in flight`));
    // A line that wraps would leave a copy of itself behind on every redraw.
    const width = Math.max(20, this.output.columns - 3);
    return lines.map((line) => truncate(line, width)).join("\n");
  }

  private skippedReasons(result: FleetResult): Map<string, number> {
    const reasons = new Map<string, number>();
    for (const t of result.tenants) {
      if (t.result !== "skipped") continue;
      const reason = safe(t.reason ?? "not started");
      reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
    }
    return reasons;
  }
}

/** Failures that share a cause (migration, SQLSTATE, message), biggest group first. */
export function groupByCause(failed: TenantResult[]): { cause: FailureCause; tenants: TenantResult[] }[] {
  const groups = new Map<string, { cause: FailureCause; tenants: TenantResult[] }>();
  for (const t of failed) {
    const cause = failureCause(t, { generic: true, firstLineOnly: true });
    const key = describeCause(cause);
    const group = groups.get(key) ?? { cause, tenants: [] };
    group.tenants.push(t);
    groups.set(key, group);
  }
  return [...groups.values()].sort((a, b) => b.tenants.length - a.tenants.length);
}

function firstLineOf(result: TenantResult): TenantResult {
  return result.error === undefined ? result : { ...result, error: result.error.split(/\r?\n/, 1)[0] ?? "" };
}

/** m:ss (or h:mm:ss). */
function clock(ms: number): string {
  const total = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

/** Cuts a line to `width` visible characters (colour codes kept, not counted). */
function truncate(line: string, width: number): string {
  let visible = 0;
  let out = "";
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the tool's own colour codes are kept, not counted
  const parts = line.split(/(\u001b\[[0-9;]*m)/);
  for (const part of parts) {
    if (part.startsWith("\u001b[")) {
      out += part;
      continue;
    }
    for (const char of part) {
      if (visible >= width) return `${out}…${out.includes("\u001b[") ? "\u001b[0m" : ""}`;
      out += char;
      visible++;
    }
  }
  return out;
}

/** A school id (or a flag's value) as one shell word (ids are digits in the bundled catalog; a user's own may hold anything). */
export function shellWord(id: string): string {
  return /^[\w.@%+=:,/-]+$/.test(id) ? id : `'${safe(id).replace(/'/g, "'\\''")}'`;
}
