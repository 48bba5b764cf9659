// Starts the prebuilt Worker in the local Workers runtime (workerd via
// wrangler's programmatic API) without the inspector proxy, which floods
// sockets once a Worker pulls large upstream data (PLATFORM.md §1).
//
// usage: node scripts/dev.mjs --config FILE --port P --persist DIR
// Prints "tsp-dev ready on http://127.0.0.1:P" when it serves.
import { unstable_startWorker } from "wrangler";
import path from "node:path";

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
}

const config = path.resolve(arg("config", "wrangler.toml"));
const port = Number(arg("port", "8787"));
const persist = path.resolve(arg("persist", ".state"));

const worker = await unstable_startWorker({
  config,
  dev: {
    remote: false,
    inspector: false,
    server: { hostname: "127.0.0.1", port },
    persist,
    watch: false,
    liveReload: false,
    logLevel: "log",
  },
});
await worker.ready;
console.log(`tsp-dev ready on http://127.0.0.1:${port}`);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  try {
    await worker.dispose();
  } finally {
    process.exit(0);
  }
}
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
