export function freePort(): Promise<number>;
export function serverDirectory(prefix: string): string;
export interface ThrowawayServer {
  port: number;
  /** postgres://postgres:PASSWORD@127.0.0.1:PORT, without a database. */
  url: string;
  dir: string;
  stop(): Promise<void>;
}
export function startThrowawayServer(options: {
  prefix: string;
  password: string;
  flags?: string[];
}): Promise<ThrowawayServer>;
