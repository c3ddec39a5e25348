import { loadTenants, selectTenants, withCatalog } from "../core/catalog.js";
import { UsageError } from "../core/errors.js";
import { type HistoryEntry, type RunEntry, readHistory, readRuns } from "../core/history.js";
import type { CommandOptions } from "./options.js";

/** History entries `tenantHistory` returns when no limit is given (every one of a run named by `runId`). */
export const DEFAULT_HISTORY_LIMIT = 50;
/** Runs `historyRuns` returns when no limit is given. */
export const DEFAULT_RUNS_LIMIT = 20;

/** Past runs per tenant, newest first; `runId` (or a prefix of it) narrows to one run, `failed` to failures. */
export async function tenantHistory(
  options: CommandOptions & {
    /** school_id, school_database or school_name values. @default [] (every tenant) */
    tenants?: string[];
    /** At most this many entries. @default DEFAULT_HISTORY_LIMIT (50); every entry of the run with runId */
    limit?: number;
    /** One run's entries: its id or a prefix of it. @default undefined (every run) */
    runId?: string;
    /** Only the failures. @default false */
    failed?: boolean;
  },
): Promise<HistoryEntry[]> {
  return withCatalog(options.config, async (catalog) => {
    let ids: string[] | null = null;
    if (options.tenants && options.tenants.length > 0) {
      ids = selectTenants(await loadTenants(catalog), options.tenants).map((t) => t.id);
    }
    let runId = options.runId;
    if (runId !== undefined) runId = (await findRun(catalog, runId)).runId;
    // One run's details are all of its schools, however many.
    const limit = options.limit ?? (runId !== undefined ? 1_000_000 : DEFAULT_HISTORY_LIMIT);
    return readHistory(catalog, ids, limit, { runId, failed: options.failed });
  });
}

/** Runs, newest first, one entry each with its schools counted by result; or the one run `runId` names. */
export async function historyRuns(
  options: CommandOptions & {
    /** At most this many runs. @default DEFAULT_RUNS_LIMIT (20) */
    limit?: number;
    /** Only this run: its id or a prefix of it. @default undefined (the newest runs) */
    runId?: string;
  },
): Promise<RunEntry[]> {
  return withCatalog(options.config, async (catalog) =>
    options.runId !== undefined
      ? [await findRun(catalog, options.runId)]
      : readRuns(catalog, options.limit ?? DEFAULT_RUNS_LIMIT),
  );
}

/** The run a full id or an unambiguous prefix names (exit 2 otherwise). */
async function findRun(catalog: Parameters<typeof readRuns>[0], id: string): Promise<RunEntry> {
  if (!/^[0-9a-f-]{4,36}$/i.test(id)) throw new UsageError(`--run: "${id}" is not a run id (4 or more hex digits)`);
  const runs = await readRuns(catalog, 2, id);
  if (runs.length === 0) throw new UsageError(`--run: no run with id ${id} (see \`tenant-migrate history --runs\`)`);
  if (runs.length > 1) throw new UsageError(`--run: ${id} is the start of several run ids; give more of it`);
  return runs[0] as RunEntry;
}
