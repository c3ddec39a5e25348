import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type pg from "pg";
import { isTransient } from "./db.js";
import { describeError, errorCode } from "./errors.js";
import type { RecreatedDatabase, Tenant, TenantResult } from "./fleet-types.js";
import { HISTORY_LOCK_KEY } from "./lock-keys.js";
import { redact } from "./redact.js";

/** How many new connections a history write is tried on after a lost one, when the UPDATE itself is cut again. */
const UPDATES_ON_NEW_CONNECTIONS = 3;

/** Creates the tool's bookkeeping table in the catalog, safely when several runs start at once. */
export async function ensureHistoryTable(client: pg.Client): Promise<void> {
  await client.query("begin");
  try {
    await client.query("select pg_advisory_xact_lock($1)", [HISTORY_LOCK_KEY]);
    await client.query(`
      create table if not exists tenant_migrate_history (
        id bigserial primary key,
        run_id uuid not null,
        command text not null,
        school_id text not null,
        school_database text not null,
        result text not null,
        migrations jsonb not null default '[]',
        error text,
        host text,
        started_at timestamptz not null default now(),
        finished_at timestamptz
      )`);
    await client.query(
      "create index if not exists tenant_migrate_history_school on tenant_migrate_history (school_id, id desc)",
    );
    await client.query("commit");
  } catch (error) {
    await client.query("rollback").catch(() => {});
    throw error;
  }
}

interface FinalRow {
  id: string;
  result: string;
  migrations: string;
  error: string | null;
  ms: number;
  /** performance.now() when the tenant finished. */
  finishedAt: number;
}

/**
 * Writes one run's history: a row per tenant at the start ("running"), so a
 * run killed mid-way leaves rows that say it never finished, then the result
 * as each tenant ends.
 */
export class HistoryRecorder {
  readonly runId = randomUUID();
  /** Each tenant's row, by school_id. */
  private readonly rowIds = new Map<string, string>();
  /** Final rows not written yet. */
  private pending: FinalRow[] = [];
  private writing: Promise<void> | undefined;
  /** The connection rows are written on: the run's catalog connection, or one opened after it was lost. */
  private client: pg.Client;
  private reconnected: pg.Client | undefined;
  /** Set once reconnecting gave up: later rows are counted as not recorded without trying. */
  private gaveUp = false;
  /** Final rows that could not be written, and why. */
  notRecorded = 0;
  lastError: string | undefined;

  private constructor(
    client: pg.Client,
    private readonly reconnect?: () => Promise<pg.Client>,
  ) {
    this.client = client;
  }

  /**
   * `reconnect` opens a new catalog connection (retrying transient faults
   * itself): used when the run's catalog connection is lost mid-run.
   */
  static async start(
    client: pg.Client,
    command: string,
    tenants: Tenant[],
    reconnect?: () => Promise<pg.Client>,
  ): Promise<HistoryRecorder> {
    await ensureHistoryTable(client);
    // History is bookkeeping: it need not wait for the disk on every row.
    await client.query("set synchronous_commit = off");
    const recorder = new HistoryRecorder(client, reconnect);
    if (tenants.length > 0) {
      const { rows } = await client.query<{ id: string; school_id: string }>(
        `insert into tenant_migrate_history (run_id, command, school_id, school_database, result, host)
         select $1, $2, id, db, 'running', $5 from unnest($3::text[], $4::text[]) as t(id, db)
         returning id::text, school_id`,
        [recorder.runId, command, tenants.map((t) => t.id), tenants.map((t) => t.database), hostname()],
      );
      for (const row of rows) recorder.rowIds.set(row.school_id, row.id);
    }
    return recorder;
  }

  /**
   * Queues the tenant's final row. Rows are written on the run's one catalog
   * connection, every row queued meanwhile in one UPDATE by primary key: a
   * fleet of thousands costs a few statements, however long the history grows.
   */
  record(result: TenantResult): void {
    const id = this.rowIds.get(result.id);
    if (id === undefined) return;
    this.pending.push({
      id,
      result: result.result,
      migrations: JSON.stringify(result.migrations),
      // A text column takes no NUL byte, whatever a migration's error says.
      error: result.error === undefined ? null : redact(result.error).replaceAll("\0", ""),
      ms: result.ms,
      finishedAt: performance.now(),
    });
    this.writing ??= this.writePending();
  }

  private async writePending(): Promise<void> {
    while (this.pending.length > 0) {
      const rows = this.pending;
      this.pending = [];
      // History must never fail a migration. A batch that fails is tried row
      // by row, so that one bad row loses only itself.
      if (!(await this.write(rows))) {
        for (const row of rows) {
          if (!(await this.write([row]))) this.notRecorded++;
        }
      }
    }
    this.writing = undefined;
  }

  /**
   * One UPDATE for `rows`, on a new connection when the catalog connection
   * was lost (a server restart, a terminated backend). False when it failed.
   */
  private async write(rows: FinalRow[]): Promise<boolean> {
    if (this.gaveUp) return false;
    try {
      await this.update(rows);
      return true;
    } catch (error) {
      this.lastError = describeError(error);
      if (!this.reconnect || !isTransient(error)) return false;
    }
    // A connection opened while the server was still going down can be cut
    // too: the UPDATE is tried on a fresh one a few times. A reconnect that
    // failed has used up its own retries already: then history gives up.
    for (let attempt = 1; ; attempt++) {
      let client: pg.Client;
      try {
        client = await this.reconnect();
      } catch (error) {
        this.lastError = describeError(error);
        this.gaveUp = true;
        return false;
      }
      try {
        await this.reconnected?.end().catch(() => {});
        this.client = this.reconnected = client;
        await client.query("set synchronous_commit = off");
        await this.update(rows);
        return true;
      } catch (error) {
        this.lastError = describeError(error);
        if (attempt >= UPDATES_ON_NEW_CONNECTIONS || !isTransient(error)) {
          this.gaveUp = true;
          return false;
        }
      }
    }
  }

  /** The UPDATE; times on the server's clock, as the rows' start was. */
  private async update(rows: FinalRow[]): Promise<void> {
    const now = performance.now();
    await this.client.query(
      `update tenant_migrate_history h
            set result = u.result, migrations = u.migrations::jsonb, error = u.error,
                finished_at = clock_timestamp() - make_interval(secs => u.ago_ms / 1000),
                started_at = clock_timestamp() - make_interval(secs => (u.ago_ms + u.ms) / 1000)
           from unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::float8[])
                as u(id, result, migrations, error, ms, ago_ms)
          where h.id = u.id`,
      [
        rows.map((r) => r.id),
        rows.map((r) => r.result),
        rows.map((r) => r.migrations),
        rows.map((r) => r.error),
        rows.map((r) => r.ms),
        rows.map((r) => now - r.finishedAt),
      ],
    );
  }

  /** Waits for every queued row; closes a connection opened to replace the run's. */
  async flush(): Promise<void> {
    await this.writing;
    await this.reconnected?.end().catch(() => {});
    this.reconnected = undefined;
  }
}

/**
 * The tenants whose database earlier runs saw (a result that needs the
 * database: not failed, skipped or unfinished), with when: one query for
 * every tenant given. A row counts only for the same school_id and database.
 */
export async function databasesSeenBefore(
  client: pg.Client,
  tenants: Tenant[],
  exceptRunId?: string,
): Promise<Map<string, RecreatedDatabase>> {
  try {
    const { rows } = await client.query<{ school_id: string; first_seen: Date; last_seen: Date }>(
      `select h.school_id, min(coalesce(h.finished_at, h.started_at)) as first_seen,
              max(coalesce(h.finished_at, h.started_at)) as last_seen
         from tenant_migrate_history h
         join unnest($1::text[], $2::text[]) as t(id, db) on h.school_id = t.id and h.school_database = t.db
        where h.result in ('provisioned', 'migrated', 'up-to-date', 'rolled-back', 'nothing-to-roll-back')
          and h.run_id is distinct from $3::uuid
        group by h.school_id`,
      [tenants.map((t) => t.id), tenants.map((t) => t.database), exceptRunId ?? null],
    );
    return new Map(
      rows.map((r) => [
        r.school_id,
        { firstSeen: new Date(r.first_seen).toISOString(), lastSeen: new Date(r.last_seen).toISOString() },
      ]),
    );
  } catch (error) {
    // No history table yet: no run has seen anything.
    if (errorCode(error) === "42P01") return new Map();
    throw error;
  }
}

export interface HistoryEntry {
  runId: string;
  id: string;
  database: string;
  command: string;
  /** A fleet result, or "unfinished" for a run that died (or is still going). */
  result: string;
  migrations: string[];
  error: string | null;
  host: string | null;
  startedAt: string;
  finishedAt: string | null;
}

/** Narrows history: one run (its id or a prefix of it), only failures. */
export interface HistoryFilter {
  runId?: string | undefined;
  failed?: boolean | undefined;
}

/** Past runs per tenant, newest first. */
export async function readHistory(
  client: pg.Client,
  schoolIds: string[] | null,
  limit: number,
  filter: HistoryFilter = {},
): Promise<HistoryEntry[]> {
  if (!(await historyTableExists(client))) return [];
  const { rows } = await client.query(
    `select run_id, school_id, school_database, command, result, migrations, error, host, started_at, finished_at
       from tenant_migrate_history
      where ($1::text[] is null or school_id = any($1::text[]))
        and ($3::text is null or run_id::text like $3 || '%')
        and (not $4 or result = 'failed')
      order by id desc
      limit $2`,
    [schoolIds, limit, filter.runId?.toLowerCase() ?? null, filter.failed === true],
  );
  return rows.map((r) => ({
    runId: r.run_id,
    id: r.school_id,
    database: r.school_database,
    command: r.command,
    result: r.result === "running" && r.finished_at === null ? "unfinished" : r.result,
    migrations: r.migrations,
    error: r.error,
    host: r.host,
    startedAt: new Date(r.started_at).toISOString(),
    finishedAt: r.finished_at ? new Date(r.finished_at).toISOString() : null,
  }));
}

async function historyTableExists(client: pg.Client): Promise<boolean> {
  const { rows } = await client.query("select to_regclass('tenant_migrate_history') is not null as ok");
  return rows[0]?.ok === true;
}

/** One run of a fleet command, as `history --runs` lists it. */
export interface RunEntry {
  runId: string;
  command: string;
  host: string | null;
  startedAt: string;
  /** Null while a tenant of it has not finished (a run going on, or one that died). */
  finishedAt: string | null;
  /** Tenants per result ("unfinished" for rows never finished). */
  byResult: Record<string, number>;
}

/** Runs, newest first, each with its tenants counted by result. */
export async function readRuns(client: pg.Client, limit: number, runIdPrefix?: string): Promise<RunEntry[]> {
  if (!(await historyTableExists(client))) return [];
  const { rows } = await client.query(
    `with counts as (
       select run_id,
              case when result = 'running' and finished_at is null then 'unfinished' else result end as result,
              count(*)::int as n, min(command) as command, min(host) as host, min(started_at) as started_at,
              max(finished_at) as finished_at, bool_and(finished_at is not null) as finished, min(id) as first_id
         from tenant_migrate_history
        where $2::text is null or run_id::text like $2 || '%'
        group by 1, 2)
     select run_id::text as run_id, min(command) as command, min(host) as host, min(started_at) as started_at,
            case when bool_and(finished) then max(finished_at) end as finished_at,
            jsonb_object_agg(result, n) as by_result
       from counts
      group by run_id
      order by min(first_id) desc
      limit $1`,
    [limit, runIdPrefix?.toLowerCase() ?? null],
  );
  return rows.map((r) => ({
    runId: r.run_id,
    command: r.command,
    host: r.host,
    startedAt: new Date(r.started_at).toISOString(),
    finishedAt: r.finished_at ? new Date(r.finished_at).toISOString() : null,
    byResult: r.by_result,
  }));
}
