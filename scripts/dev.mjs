// Starts the three prebuilt Workers (producer, consumer, dead letters) in
// one local Workers runtime: workerd through Miniflare, each with the
// bindings wrangler derives from its own wrangler config
// (`unstable_getMiniflareWorkerOptions`: D1, R2, queue producers and
// consumers with their retries and DLQ, crons, vars and the .dev.vars
// beside the config). They share state as deployed Workers do: one D1
// database, one bucket, the queues by name. The persist layout is the one
// `wrangler d1 migrations apply --local --persist-to DIR` writes.
//
// The first config is the HTTP entry point (the producer) on --port; a
// Worker with crons (the dead-letter Worker) takes `/cdn-cgi/handler/*`, so
// `/cdn-cgi/handler/scheduled` runs its cron handler. (A direct socket of
// its own would not do: Miniflare answers the handler paths only on its
// entry, by route.) --bindings-out FILE writes each Worker's
// binding names (never values), queues consumed and crons, as JSON: what
// the least-privilege test reads.
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
// With --inspector PORT (or TSP_INSPECTOR_PORT in the environment), workerd's
// V8 inspector listens on that port, for CPU profiles (scripts/profile.mjs).
// Off by default (PLATFORM.md §1 on inspector sockets under large pulls).
//
// usage: node scripts/dev.mjs --config FILE [--config FILE...] --port P --persist DIR
//          [--bindings-out FILE] [--baseline] [--inspector PORT]
// Prints "tsp-dev ready on http://127.0.0.1:P" when it serves.
import { Log, LogLevel, Miniflare } from "miniflare";
import { unstable_getMiniflareWorkerOptions, unstable_readConfig } from "wrangler";
import fs from "node:fs";
import path from "node:path";

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
}

function args(name) {
  return process.argv.flatMap((a, i) => (a === `--${name}` ? [process.argv[i + 1]] : []));
}

const configPaths = (args("config").length ? args("config") : ["wrangler.toml"]).map((p) => path.resolve(p));
const port = Number(arg("port", "8787"));
const persist = path.resolve(arg("persist", ".state"));
const inspector = arg("inspector", process.env.TSP_INSPECTOR_PORT);
const bindingsOut = arg("bindings-out");

// One Worker per config, each with its own bindings, its module and the
// crons it declares.
const roles = configPaths.map((configPath) => {
  const config = unstable_readConfig({ config: configPath });
  const { workerOptions } = unstable_getMiniflareWorkerOptions(configPath);
  const main = path.resolve(path.dirname(configPath), config.main);
  const crons = config.triggers?.crons ?? [];
  return { config, workerOptions, main, crons };
});
const { workerOptions } = roles[0];

// The baseline does the status route's work the way a plain JS Worker
// would: the bearer token looked up in the same API_TOKENS table (parsed
// once per isolate), the same owner-scoped indexed read
// (`store::select_owned_job`), 401/404 like the API, and the full row as
// JSON. `/__baseline/plain?id=` is the earlier, cheaper anchor: no auth,
// `WHERE id = ?` only.
const baseline = process.argv.includes("--baseline")
  ? [
      {
        name: "baseline",
        modules: true,
        routes: ["*/__baseline*"],
        d1Databases: workerOptions.d1Databases,
        bindings: { API_TOKENS: workerOptions.bindings?.API_TOKENS ?? "" },
        script: `let owners;
        export default {
          async fetch(req, env) {
            const url = new URL(req.url);
            const id = url.searchParams.get("id");
            if (url.pathname === "/__baseline/plain") {
              const row = await env.DB.prepare("SELECT * FROM queue_jobs WHERE id = ?").bind(id).first();
              return Response.json(row ?? {});
            }
            owners ??= new Map(env.API_TOKENS.split(",").map((p) => p.trim().split("=")).filter((p) => p.length === 2));
            const auth = req.headers.get("authorization") ?? "";
            const owner = auth.startsWith("Bearer ") ? owners.get(auth.slice(7)) : undefined;
            if (owner === undefined) return Response.json({ status: 401 }, { status: 401 });
            const row = await env.DB.prepare("SELECT * FROM queue_jobs WHERE id = ? AND owner = ?").bind(id, owner).first();
            return row ? Response.json(row) : Response.json({ status: 404 }, { status: 404 });
          },
        };`,
      },
    ]
  : [];

// With TSP_VARIANT_MAIN=/path/to/build/index.js, a second copy of the Rust
// Worker (another build) runs in the same runtime on the same D1, R2 and
// queue producer, for requests whose Host is variant.localhost: an A/B of
// two builds under the same load. It consumes no queue (the first does).
const variant = process.env.TSP_VARIANT_MAIN
  ? [
      {
        ...workerOptions,
        queueConsumers: undefined,
        name: "variant",
        routes: ["variant.localhost/*"],
        modules: true,
        scriptPath: path.resolve(process.env.TSP_VARIANT_MAIN),
        modulesRoot: path.dirname(path.resolve(process.env.TSP_VARIANT_MAIN)),
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
  ...(inspector ? { inspectorPort: Number(inspector) } : {}),
  workers: [
    ...roles.map(({ config, workerOptions, main, crons }) => ({
      ...workerOptions,
      name: config.name,
      modules: true,
      scriptPath: main,
      modulesRoot: path.dirname(main),
      ...(crons.length ? { routes: ["*/cdn-cgi/handler/*"] } : {}),
    })),
    ...baseline,
    ...variant,
  ],
});
await mf.ready;
if (bindingsOut) {
  const report = {};
  for (const { config, workerOptions, crons } of roles) {
    const bindings = await mf.getBindings(config.name);
    report[config.name] = {
      bindings: Object.keys(bindings).sort(),
      consumes: (Array.isArray(workerOptions.queueConsumers) ? workerOptions.queueConsumers : Object.keys(workerOptions.queueConsumers ?? {})).sort(),
      crons,
    };
  }
  fs.writeFileSync(bindingsOut, JSON.stringify(report, null, 2));
}
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
