import { describeError, TenantSkipped, TenantWorkError } from "./errors.js";
import type {
  EmitEvent,
  FleetResult,
  FleetSummary,
  Tenant,
  TenantOutcome,
  TenantResult,
  TenantResultKind,
} from "./fleet-types.js";
import { redact } from "./redact.js";

export interface TenantWorkContext {
  emit: EmitEvent;
  signal: AbortSignal;
}

export type TenantWork = (tenant: Tenant, context: TenantWorkContext) => Promise<TenantOutcome>;

export interface FleetOptions {
  /** Tenants worked on at once, per server. */
  concurrency: number;
  onError: "continue" | "abort";
  /** Run this many tenants first; if any fails, skip the rest. */
  canary?: number | undefined;
  /** Once more than this many tenants have failed, no new tenant starts (`onError: "abort"` is 0). */
  maxFailures?: number | undefined;
  /** Aborting stops new tenants from starting; those in flight finish. */
  signal?: AbortSignal | undefined;
  onEvent?: EmitEvent | undefined;
  /** Which server a tenant lives on; concurrency holds per server. */
  serverOf?: ((tenant: Tenant) => string) | undefined;
  /** Called with each result as it is final (history). */
  onResult?: ((result: TenantResult) => void) | undefined;
}

/**
 * Runs `work` for every tenant, at most `concurrency` at once per server, and
 * returns one result per tenant in the order given: one failure never hides
 * another tenant's state.
 */
export async function runFleet(tenants: Tenant[], work: TenantWork, options: FleetOptions): Promise<FleetResult> {
  const started = performance.now();
  const emit: EmitEvent = options.onEvent ?? (() => {});
  const signal = options.signal ?? new AbortController().signal;
  const results = new Map<Tenant, TenantResult>();
  /** Set once no new tenant may start: why the rest are skipped. */
  let stopStarting: string | undefined;
  let failures = 0;
  const maxFailures = options.onError === "abort" ? 0 : options.maxFailures;

  emit({ type: "fleet-started", total: tenants.length });

  const finish = (result: TenantResult) => {
    options.onResult?.(result);
    emit({ type: "tenant-finished", result });
  };

  const runOne = async (tenant: Tenant): Promise<void> => {
    if (stopStarting || signal.aborted) {
      const result = { ...baseResult(tenant, "skipped", 0), reason: signal.aborted ? "interrupted" : stopStarting };
      results.set(tenant, result);
      finish(result);
      return;
    }
    emit({ type: "tenant-started", tenant });
    const t0 = performance.now();
    let result: TenantResult;
    try {
      const outcome = await work(tenant, { emit, signal });
      result = {
        ...baseResult(tenant, outcome.result, 0),
        migrations: outcome.migrations,
      };
      if (outcome.recreated) result.recreated = outcome.recreated;
    } catch (error) {
      if (error instanceof TenantSkipped) {
        // Its message names the school; the reason is what schools skipped alike share.
        const reason = error.message.startsWith(`${tenant.database}: `)
          ? error.message.slice(tenant.database.length + 2)
          : error.message;
        result = { ...baseResult(tenant, "skipped", 0), reason };
      } else {
        result = { ...baseResult(tenant, "failed", 0), error: redact(describeError(error)) };
        if (error instanceof TenantWorkError) result.migrations = error.migrations;
        failures++;
        if (maxFailures !== undefined && failures > maxFailures && !stopStarting) {
          stopStarting =
            options.onError === "abort"
              ? "a tenant failed (--on-error abort)"
              : `more than --max-failures ${maxFailures} failed`;
          emit({
            type: "notice",
            message:
              options.onError === "abort"
                ? "a tenant failed and --on-error is abort: no new tenant starts; the rest are skipped"
                : `${failures} tenant${failures === 1 ? "" : "s"} failed, more than --max-failures ${maxFailures}: no new tenant starts; the rest are skipped`,
          });
        }
      }
    }
    result.ms = Math.round(performance.now() - t0);
    results.set(tenant, result);
    finish(result);
  };

  const canary = Math.min(options.canary ?? 0, tenants.length);
  // No signal here: runOne itself turns every tenant left after an interrupt into a `skipped` result.
  const bounds = { concurrency: options.concurrency, serverOf: options.serverOf };
  const first = tenants.slice(0, canary);
  const rest = tenants.slice(canary);
  if (first.length > 0) {
    await runBounded(first, runOne, bounds);
    if (first.some((t) => results.get(t)?.result === "failed")) {
      stopStarting = "a canary tenant failed";
      emit({
        type: "notice",
        message: `a canary tenant failed: skipping the other ${rest.length}`,
      });
    }
  }
  await runBounded(rest, runOne, bounds);

  const ordered = tenants.map((t) => results.get(t) as TenantResult);
  const notRehearsable = ordered.filter((r) => r.result === "not-rehearsable").length;
  const summary: FleetSummary = {
    total: ordered.length,
    succeeded: ordered.filter((r) => !["failed", "skipped", "not-rehearsable"].includes(r.result)).length,
    failed: ordered.filter((r) => r.result === "failed").length,
    skipped: ordered.filter((r) => r.result === "skipped").length,
    ...(notRehearsable > 0 ? { notRehearsable } : {}),
    ms: Math.round(performance.now() - started),
    byResult: countByResult(ordered),
  };
  return {
    ok: summary.failed === 0 && summary.skipped === 0,
    tenants: ordered,
    summary,
    interrupted: signal.aborted,
  };
}

/**
 * Per-server worker pools: `concurrency` workers per server, each taking that
 * server's next item, so no server ever sees more than `concurrency` at once.
 */
export async function runBounded<T>(
  items: T[],
  run: (item: T) => Promise<void>,
  options: {
    concurrency: number;
    serverOf?: ((item: T) => string) | undefined;
    /** Once aborted, no new item starts. */
    signal?: AbortSignal | undefined;
  },
): Promise<void> {
  const queues = new Map<string, T[]>();
  for (const item of items) {
    const key = options.serverOf?.(item) ?? "";
    const queue = queues.get(key) ?? [];
    queue.push(item);
    queues.set(key, queue);
  }
  const workers: Promise<void>[] = [];
  for (const queue of queues.values()) {
    let next = 0;
    const worker = async () => {
      while (next < queue.length && !options.signal?.aborted) {
        const item = queue[next++] as T;
        await run(item);
      }
    };
    for (let i = 0; i < Math.min(options.concurrency, queue.length); i++) workers.push(worker());
  }
  await Promise.all(workers);
}

/** Tenants per result kind, in the order the kinds first occur; generic over kinds. */
export function countByResult(results: { result: string }[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of results) counts[r.result] = (counts[r.result] ?? 0) + 1;
  return counts;
}

function baseResult(tenant: Tenant, result: TenantResultKind, ms: number): TenantResult {
  const base: TenantResult = {
    id: tenant.id,
    name: tenant.name,
    database: tenant.database,
    result,
    migrations: [],
    ms,
  };
  if (tenant.server) base.server = tenant.server;
  return base;
}
