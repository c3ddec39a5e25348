/**
 * While a --json command runs, whatever else writes to stdout (a migration's
 * console.log or process.stdout.write) is sent to stderr: stdout carries
 * exactly one JSON document, which Output writes through the handle it took
 * before. Returns the function that gives stdout back its own write.
 */
export function routeStdoutToStderr(): () => void {
  const stdout = process.stdout;
  const own = Object.getOwnPropertyDescriptor(stdout, "write");
  const toStderr = (...args: Parameters<typeof stdout.write>) =>
    (process.stderr.write as (...a: unknown[]) => boolean)(...args);
  // console.log, info, debug, dir and table write through process.stdout.write as it is at the time of the call.
  stdout.write = toStderr as typeof stdout.write;
  return () => {
    if (own) Object.defineProperty(stdout, "write", own);
    else delete (stdout as { write?: unknown }).write;
  };
}
