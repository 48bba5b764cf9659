// Cold start in the local runtime (issue 22): a fresh workerd running one
// Worker module, until it has answered its first request, alternating the
// modules given, ROUNDS times each (side by side in one run: this machine
// is shared and noisy). Each round reports the runtime's start-up (to
// `ready`), the first request (the isolate loads and instantiates the
// module) and a second, warm one.
//
// usage: node scripts/bench-cold.mjs CONFIG ROUNDS NAME=MODULE_JS...
// (CONFIG gives the bindings, e.g. the stack's producer/wrangler.toml)
import { Log, LogLevel, Miniflare } from "miniflare";
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import path from "node:path";

const [configPath, rounds, ...variants] = process.argv.slice(2);
const { workerOptions } = unstable_getMiniflareWorkerOptions(path.resolve(configPath));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function once(main) {
  const t0 = performance.now();
  const mf = new Miniflare({
    host: "127.0.0.1",
    port: 0,
    cf: false,
    log: new Log(LogLevel.WARN),
    workers: [
      {
        ...workerOptions,
        queueConsumers: undefined,
        name: "cold",
        modules: true,
        scriptPath: main,
        modulesRoot: path.dirname(main),
      },
    ],
  });
  await mf.ready;
  const t1 = performance.now();
  const first = await mf.dispatchFetch("http://localhost/healthz");
  await first.text();
  const t2 = performance.now();
  const second = await mf.dispatchFetch("http://localhost/healthz");
  await second.text();
  const t3 = performance.now();
  await mf.dispose();
  if (first.status !== 200) throw new Error(`${main}: /healthz answered ${first.status}`);
  return { ready: t1 - t0, first: t2 - t1, warm: t3 - t2 };
}

const results = Object.fromEntries(variants.map((v) => [v.split("=")[0], []]));
for (let r = 0; r < Number(rounds); r++) {
  for (const v of variants) {
    const [name, main] = v.split("=");
    results[name].push(await once(path.resolve(main)));
  }
}
for (const [name, rs] of Object.entries(results)) {
  const m = (k) => median(rs.map((x) => x[k])).toFixed(1);
  console.log(
    `${name}: median of ${rs.length}: start-up ${m("ready")} ms, first request ${m("first")} ms, warm ${m("warm")} ms; ` +
      `first requests ${rs.map((x) => x.first.toFixed(0)).join(", ")} ms`,
  );
}
