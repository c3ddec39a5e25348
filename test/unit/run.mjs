// `npm run test:unit`: the unit tests of pure logic, every test/unit/*.test.ts,
// with no database and no build (tsx compiles src/*.ts on import). One
// process imports every file: a process per file would cost more than the
// tests themselves. Run it as `node --import tsx --test-reporter=spec test/unit/run.mjs`
// (package.json's test:unit); node:test sets a failing exit code.
import { readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const files = readdirSync(here)
  .filter((f) => f.endsWith(".test.ts"))
  .sort();
for (const file of files) await import(pathToFileURL(path.join(here, file)).href);
