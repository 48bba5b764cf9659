// Times the wasm32 build of tsp-bench under node: load the pages once,
// warm up, then the best of REPS runs of the chunk path over all of them.
// usage: node bench/run-wasm.mjs PKG_DIR PAGES_FILE [REPS]
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';

const [pkgDir, pagesFile, repsArg] = process.argv.slice(2);
const reps = Number(repsArg ?? 10);
const m = createRequire(import.meta.url)(resolve(pkgDir, 'tsp_bench.js'));
m.load(readFileSync(pagesFile));
m.run();
let best = Infinity;
let samples = 0;
for (let i = 0; i < reps; i++) {
  const t = performance.now();
  samples = m.run();
  best = Math.min(best, performance.now() - t);
}
const s = best / 1000;
console.log(JSON.stringify({ samples, best_s: s, msps: samples / s / 1e6, sha256: m.digest() }));
