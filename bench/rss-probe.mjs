// Preloaded into every benchmarked child with `node --import`: at exit it writes
// the process's peak resident set size (getrusage maxRSS, kilobytes) and its CPU
// time (microseconds) to the file named by BENCH_RSS_FILE, as JSON. The measured
// program itself runs unchanged.
import { writeFileSync } from "node:fs";

const file = process.env.BENCH_RSS_FILE;
if (file) {
  process.on("exit", () => {
    const usage = process.resourceUsage();
    writeFileSync(file, JSON.stringify({ maxRSS: usage.maxRSS, cpu: usage.userCPUTime + usage.systemCPUTime }));
  });
}
