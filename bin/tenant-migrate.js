#!/usr/bin/env -S node --optimize-for-size --
// --optimize-for-size: V8 collects garbage sooner instead of growing the heap;
// a fleet run makes much short-lived garbage (a connection per school), and
// with it peak RSS stays flat from 200 to 2,000 schools at the same speed
// (see README, "Scale and speed"). "--" ends node's own options: Node 20 would
// otherwise take our --env-file for its own.
// The CLI is compiled to dist/ by `npm run build` (run by npm ci through `prepare`).
import { main } from "../dist/cli/main.js";

await main(process.argv);
