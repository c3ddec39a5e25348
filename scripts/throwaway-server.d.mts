export function freePort(): Promise<number>;
export function serverDirectory(prefix: string): string;
export interface ThrowawayServer {
  port: number;
  /** postgres://postgres:PASSWORD@127.0.0.1:PORT, without a database. */
  url: string;
  dir: string;
  /** Stops the server (immediate: like pg_ctl -m immediate, a crash; else fast) and starts it again on the same port. */
  restart(options?: { immediate?: boolean; downMs?: number }): Promise<void>;
  stop(): Promise<void>;
}
export function startThrowawayServer(options: {
  prefix: string;
  password: string;
  flags?: string[];
}): Promise<ThrowawayServer>;
