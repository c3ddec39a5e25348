#!/usr/bin/env node
// The CLI is compiled to dist/ by `npm run build` (run by npm ci through `prepare`).
import { main } from "../dist/cli/main.js";

await main(process.argv);
