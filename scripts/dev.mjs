// Starts the prebuilt Worker in the local Workers runtime: workerd through
// Miniflare, with the bindings wrangler derives from our wrangler.toml
// (`unstable_getMiniflareWorkerOptions`: D1, R2, both queue consumers with
// their retries and DLQ, vars and .dev.vars). The persist layout is the one
// `wrangler d1 migrations apply --local --persist-to DIR` writes.
//
// Why not `wrangler dev` or `unstable_startWorker`: the first opens one
// inspector socket per ~4 KB the Worker receives and dies on large upstream
// pulls (PLATFORM.md §1). The second keeps an esbuild watch on the bundle
// even with `watch: false`; when it fires, wrangler's proxy pauses every
// request until the runtime has reloaded (and the reload drops the
// in-memory queue). A local run logged such an unprompted reload as the
// 365-day job completed, and a CI run stopped answering at that same point.
// Miniflare serves the built files as they are: nothing watches, rebundles
// or reloads.
//
// With --baseline, a second Worker runs in the same runtime at
// /__baseline?id=ID: plain JS answering with one indexed D1 read of the
// same database, the load benchmark's anchor for what the runtime itself
// costs.
//
// usage: node scripts/dev.mjs --config FILE --port P --persist DIR [--baseline]
// Prints "tsp-dev ready on http://127.0.0.1:P" when it serves.
import { Log, LogLevel, Miniflare } from "miniflare";
import { unstable_getMiniflareWorkerOptions, unstable_readConfig } from "wrangler";
import path from "node:path";

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
}

const configPath = path.resolve(arg("config", "wrangler.toml"));
const port = Number(arg("port", "8787"));
const persist = path.resolve(arg("persist", ".state"));

const config = unstable_readConfig({ config: configPath });
const { workerOptions } = unstable_getMiniflareWorkerOptions(configPath);
const main = path.resolve(path.dirname(configPath), config.main);

const baseline = process.argv.includes("--baseline")
  ? [
      {
        name: "baseline",
        modules: true,
        routes: ["*/__baseline*"],
        d1Databases: workerOptions.d1Databases,
        script: `export default {
          async fetch(req, env) {
            const id = new URL(req.url).searchParams.get("id");
            const row = await env.DB.prepare("SELECT * FROM queue_jobs WHERE id = ?").bind(id).first();
            return Response.json(row ?? {});
          },
        };`,
      },
    ]
  : [];

const mf = new Miniflare({
  host: "127.0.0.1",
  port,
  defaultPersistRoot: path.join(persist, "v3"),
  // `/cdn-cgi/handler/scheduled` runs the cron handler on request.
  unsafeTriggerHandlers: true,
  // The default would fetch `Request.cf` from the internet at start.
  cf: false,
  log: new Log(LogLevel.INFO),
  logRequests: true,
  workers: [
    {
      ...workerOptions,
      name: config.name,
      modules: true,
      scriptPath: main,
      modulesRoot: path.dirname(main),
    },
    ...baseline,
  ],
});
await mf.ready;
console.log(`tsp-dev ready on http://127.0.0.1:${port}`);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  try {
    await mf.dispose();
  } finally {
    process.exit(0);
  }
}
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
