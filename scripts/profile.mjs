// Samples a CPU profile of one Worker in the local runtime through workerd's
// V8 inspector (dev.mjs --inspector PORT), while a load runs elsewhere, and
// prints the functions with the most self time.
//
// usage: node scripts/profile.mjs PORT WORKER_NAME SECONDS [OUT.cpuprofile]
import WebSocket from "ws";
import fs from "node:fs";

const [port, name, seconds, out] = process.argv.slice(2);
const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
const target = targets.find((t) => t.id === `core:user:${name}`) ?? targets.find((t) => t.id?.includes(name));
if (!target) { console.error(`no worker ${name} in ${targets.map((t) => t.id).join(", ")}`); process.exit(1); }
console.error(`profiling ${target.title ?? target.id} (${targets.map((t) => t.title ?? t.id).join(", ")})`);
const ws = new WebSocket(target.webSocketDebuggerUrl ?? `ws://127.0.0.1:${port}/${target.id}`);
await new Promise((ok, err) => { ws.once("open", ok); ws.once("error", err); });
let next = 1;
const pending = new Map();
ws.on("message", (m) => {
  const msg = JSON.parse(m);
  if (msg.id && pending.has(msg.id)) { pending.get(msg.id)(msg); pending.delete(msg.id); }
});
const call = (method, params = {}) => new Promise((ok) => {
  const id = next++;
  pending.set(id, ok);
  ws.send(JSON.stringify({ id, method, params }));
});
await call("Profiler.enable");
await call("Profiler.setSamplingInterval", { interval: 100 });
await call("Profiler.start");
await new Promise((r) => setTimeout(r, Number(seconds) * 1000));
const { result, error } = await call("Profiler.stop");
if (error) { console.error(error); process.exit(1); }
const profile = result.profile;
if (out) fs.writeFileSync(out, JSON.stringify(profile));
const dt = new Map();
const ts = profile.timeDeltas;
const counts = new Map();
profile.samples.forEach((id, i) => counts.set(id, (counts.get(id) ?? 0) + (ts[i] ?? 0)));
let total = 0;
for (const n of profile.nodes) {
  const us = counts.get(n.id) ?? 0;
  total += us;
  const f = n.callFrame;
  const key = `${f.functionName || "(anon)"} ${f.url ? f.url.split("/").pop() : ""}:${f.lineNumber}:${f.columnNumber}`;
  dt.set(key, (dt.get(key) ?? 0) + us);
}
const rows = [...dt].sort((a, b) => b[1] - a[1]).slice(0, Number(process.env.TOP ?? 60));
console.log(`total sampled ${(total / 1000).toFixed(0)} ms`);
for (const [k, us] of rows) console.log(`${(us / 1000).toFixed(1).padStart(8)} ms ${(100 * us / total).toFixed(1).padStart(5)}%  ${k}`);
ws.close();
