// node run.mjs MODULE.wasm OBJECT: converts the object inside the wasm
// module (CPU and wall time of the call), prints one JSON line.
import fs from "node:fs";
const [wasmPath, objPath] = process.argv.slice(2);
const mod = await WebAssembly.compile(fs.readFileSync(wasmPath));
const imports = {};
for (const i of WebAssembly.Module.imports(mod)) {
  (imports[i.module] ??= {})[i.name] = () => { throw new Error(`import ${i.module}.${i.name} called`); };
}
const { exports: x } = await WebAssembly.instantiate(mod, imports);
const obj = fs.readFileSync(objPath);
const ptr = x.alloc(obj.length);
new Uint8Array(x.memory.buffer, ptr, obj.length).set(obj);
const before = x.memory.buffer.byteLength;
const c0 = process.cpuUsage(), w0 = performance.now();
const out = x.convert(ptr, obj.length);
const cpu = process.cpuUsage(c0), wall = performance.now() - w0;
const rows = Number(x.rows());
console.log(JSON.stringify({
  imports: WebAssembly.Module.imports(mod).map(i => `${i.module}.${i.name}`),
  object_bytes: obj.length, parquet_bytes: out, rows,
  wall_ms: Math.round(wall), cpu_ms: Math.round((cpu.user + cpu.system) / 1000),
  cpu_ms_per_object_mb: +(((cpu.user + cpu.system) / 1000) / (obj.length / 1e6)).toFixed(1),
  cpu_ms_per_million_samples: +(((cpu.user + cpu.system) / 1000) / (rows / 1e6)).toFixed(1),
  memory_before_mib: +(before / 2 ** 20).toFixed(1),
  memory_after_mib: +(x.memory.buffer.byteLength / 2 ** 20).toFixed(1),
}));
