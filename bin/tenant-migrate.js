#!/usr/bin/env -S node --
// "--" ends node's own options: Node 20 would otherwise take our --env-file for its own.
// The CLI is compiled to dist/ by `npm run build` (run by npm ci through `prepare`).
import { main } from "../dist/cli/main.js";

await main(process.argv);
