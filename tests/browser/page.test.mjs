// Browser test of the status page served at `GET /`.
//
//   TSP_URL=http://127.0.0.1:8787 TSP_TOKEN=... TSP_SIM_URL=http://127.0.0.1:9100 \
//     node tests/browser/page.test.mjs
//
// The caller starts the stack (scripts/stack.sh tsp_up); tests/browser/run.sh
// installs what is missing and runs this file. Exits non-zero on any failed
// assertion; the screenshot is tests/browser/artifacts/status-page.png
// (failure.png when a step fails).

import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const BASE = (process.env.TSP_URL || "").replace(/\/+$/, "");
const TOKEN = process.env.TSP_TOKEN || "";
const SIM = (process.env.TSP_SIM_URL || "").replace(/\/+$/, "");
assert.ok(BASE, "TSP_URL is not set");
assert.ok(TOKEN, "TSP_TOKEN is not set");
assert.ok(SIM, "TSP_SIM_URL is not set");

const ARTIFACTS = path.join(path.dirname(fileURLToPath(import.meta.url)), "artifacts");
const TERMINAL = new Set(["completed", "failed_permanent", "cancelled"]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const t0 = Date.now();
const log = (msg) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s] ${msg}`);

async function api(method, p, body) {
  const res = await fetch(BASE + p, {
    method,
    headers: {
      authorization: `Bearer ${TOKEN}`,
      ...(body ? { "content-type": "application/json" } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json, text };
}

async function submit(body) {
  const r = await api("POST", "/v1/jobs", body);
  assert.ok([200, 202].includes(r.status), `POST /v1/jobs ${body.site}: ${r.status} ${r.text}`);
  return r.json;
}

async function waitForStatus(id, want, timeoutMs = 90_000) {
  const end = Date.now() + timeoutMs;
  let job;
  while (Date.now() < end) {
    const r = await api("GET", `/v1/jobs/${id}`);
    assert.equal(r.status, 200, `GET /v1/jobs/${id}: ${r.text}`);
    job = r.json;
    if (job.status === want) return job;
    assert.ok(!TERMINAL.has(job.status), `job ${id} ended ${job.status} (wanted ${want}): ${job.last_error}`);
    await sleep(300);
  }
  assert.fail(`job ${id} still ${job?.status} after ${timeoutMs} ms (wanted ${want})`);
}

// The site's catalogue, as the simulator lists it (ACE's configured_points):
// its first 75 % report, the rest never do.
async function catalogue(site) {
  const res = await fetch(`${SIM}/sites/${site}/configured_points?per_page=100`, {
    headers: { authorization: "Bearer dev-token" },
  });
  assert.equal(res.status, 200, `configured_points of ${site}`);
  const page = await res.json();
  const names = page.items.map((p) => p.name);
  const reporting = page.total - Math.floor(page.total / 4);
  return { reporting: names.slice(0, reporting), silent: names.slice(reporting) };
}

// ---- 1. the two jobs, through the API ----
// Two points that report and one that never does: the page shows it
// among the points without data.
const cat = await catalogue("browser-ok");
const reporting = cat.reporting.slice(0, 2);
const silent = cat.silent[cat.silent.length - 1];
const okJob = await submit({
  site: "browser-ok",
  points: [...reporting, silent],
  start: "2025-10-01T00:00:00Z",
  end: "2025-10-04T00:00:00Z",
});
// A site ACE does not know answers 403: the job dies at once. Its point
// name never reaches a timeseries endpoint.
const deadJob = await submit({
  site: "unknown-browser",
  points: ["p1"],
  start: "2025-10-01T00:00:00Z",
  end: "2025-10-02T00:00:00Z",
});
log(`submitted ${okJob.job_id} (browser-ok) and ${deadJob.job_id} (unknown-browser)`);
const [okDone, deadDone] = await Promise.all([
  waitForStatus(okJob.job_id, "completed"),
  waitForStatus(deadJob.job_id, "failed_permanent"),
]);
log(`API: ${okDone.job_id} completed (${okDone.progress.samples} samples, ${okDone.upstream.plan} plan), ${deadDone.job_id} failed_permanent (${deadDone.last_error})`);
assert.equal(okDone.progress.samples, 2 * 3 * 288, "two reporting points, three days of 5-minute samples");
assert.deepEqual(okDone.points_without_data, [silent], "the silent point has no data");
assert.ok(["site", "point"].includes(okDone.upstream.plan), `plan ${okDone.upstream.plan}`);

// ---- 2. the page ----
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"],
});
await mkdir(ARTIFACTS, { recursive: true });
const context = await browser.newContext({ viewport: { width: 1360, height: 1000 } });
const page = await context.newPage();
page.setDefaultTimeout(20_000);
const pageErrors = [];
page.on("pageerror", (e) => pageErrors.push(String(e)));
page.on("console", (m) => {
  if (m.type() === "error" && /Content Security Policy|Refused to/i.test(m.text())) pageErrors.push(m.text());
});

try {
  const resp = await page.goto(BASE + "/");
  assert.equal(resp.status(), 200, "GET / status");
  assert.match(resp.headers()["content-security-policy"] || "", /default-src 'self'/, "CSP header");
  assert.equal(await page.title(), "timeseries-pipeline · status");
  assert.equal(await page.locator("#conn").textContent(), "Not connected");

  // A wrong token shows the API's problem+json in the error area.
  await page.getByLabel("API token").fill("not-a-token");
  await page.getByRole("button", { name: "Connect" }).click();
  await page.locator("#errors .error-item").filter({ hasText: "Unauthorized: missing or invalid bearer token" }).waitFor();
  log("wrong token: error area shows the 401 problem");

  // The right token.
  await page.getByLabel("API token").fill(TOKEN);
  await page.getByRole("button", { name: "Connect" }).click();
  await page.locator("#conn.on").waitFor();
  assert.equal(await page.evaluate(() => localStorage.getItem("tsp.token")), TOKEN, "token stored in localStorage");
  assert.ok(await page.locator("#errors").isHidden(), "error area cleared after connecting");

  const okRow = page.locator(`#jobs tbody tr[data-job-id="${okJob.job_id}"]`);
  await okRow.locator(".status", { hasText: /^completed$/ }).waitFor();
  const okText = await okRow.innerText();
  assert.match(okText, /browser-ok/);
  const chunks = okDone.progress.chunks_total;
  assert.ok(chunks >= 1, `chunks_total ${chunks}`);
  assert.ok(okText.includes(`100% · ${chunks}/${chunks} chunks · 1,728 samples`), `progress text of the completed job: ${okText}`);
  assert.equal(await okRow.locator('[role="progressbar"]').getAttribute("aria-valuenow"), "100");
  log("jobs list shows the completed job at 100%");

  // The new job fields: the points without data and the upstream plan.
  assert.equal(await okRow.locator(".points").innerText(), "3 points · 1 without data");
  assert.equal(await okRow.locator(".nodata").getAttribute("title"), `No data over the range:\n${silent}`);
  const up = okRow.locator(".upstream");
  assert.equal(await up.getAttribute("data-plan"), okDone.upstream.plan);
  const label = { site: "site walk", point: "per point" }[okDone.upstream.plan];
  const n = okDone.upstream.requests;
  assert.match(await up.innerText(), new RegExp(`^${label} · ${n.toLocaleString("en-US")} requests? · [\\d.]+ (B|kB|MB)$`));
  assert.match(await up.getAttribute("title"), new RegExp(`asked auto\\); ${n.toLocaleString("en-US")} requests, ${okDone.upstream.bytes.toLocaleString("en-US")} bytes$`));
  log(`jobs list shows the plan (${await up.innerText()}) and the point without data`);

  // Stats figures.
  await page.locator("#stat-completed dd").waitFor();
  const completedCount = Number((await page.locator("#stat-completed dd").innerText()).replace(/[^0-9]/g, ""));
  assert.ok(completedCount >= 1, `completed count ${completedCount}`);
  for (const id of ["queued", "processing", "failed", "failed_permanent", "cancelled", "throughput", "failure_rate", "dead_24h", "p50", "p95"]) {
    assert.ok(await page.locator(`#stat-${id}`).isVisible(), `stat card ${id}`);
  }
  for (const id of ["p50", "p95"]) {
    assert.match(await page.locator(`#stat-${id} dd`).innerText(), /^\d.* (ms|s|m|h)$/m, `${id} duration shown`);
  }

  // ---- chart of the completed job ----
  await okRow.getByRole("button", { name: `Show the chart of job ${okJob.job_id}` }).click();
  await page.waitForFunction(
    (id) => document.querySelector("#chart")?.getAttribute("data-job-id") === id && document.querySelectorAll("#chart path.line").length > 0,
    okJob.job_id,
  );
  const paths = await page.$$eval("#chart path.line", (ps) =>
    ps.map((p) => ({ point: p.dataset.point, d: p.getAttribute("d") || "" })),
  );
  assert.equal(paths.length, 3, "a line per point, drawn from /v1/series");
  assert.deepEqual(paths.map((p) => p.point).sort(), [...reporting, silent].sort());
  const width = await page.$eval("#chart", (c) => Math.max(360, Math.round(c.getBoundingClientRect().width)));
  for (const p of paths) {
    if (p.point === silent) assert.equal(p.d, "", "the silent point's line is empty");
    else {
      assert.match(p.d, /^M[-\d.]+,[-\d.]+L/, `line of ${p.point} has data: "${p.d.slice(0, 40)}"`);
      const vertices = p.d.split(/[ML]/).filter(Boolean).length;
      assert.ok(vertices >= 3 && vertices <= 2 * width, `${p.point}: ${vertices} vertices for ${width} px`);
    }
  }
  const legend = await page.locator("#chart-legend li").allInnerTexts();
  assert.equal(legend.length, 3, `legend: ${legend}`);
  for (const p of reporting) assert.ok(legend.includes(p), `legend lists ${p}: ${legend}`);
  assert.ok(legend.includes(`${silent} (no data)`), `legend marks the silent point: ${legend}`);
  log("chart rendered from /v1/series: 2 lines with data, the silent point marked (no data)");

  // ---- dead letter and retry ----
  const deadItem = page.locator(`#dead-letters li[data-job-id="${deadJob.job_id}"]`);
  await deadItem.waitFor();
  assert.match(await deadItem.innerText(), /403/, "dead letter shows the last error");
  const before = (await api("GET", `/v1/jobs/${deadJob.job_id}`)).json;
  assert.equal(before.status, "failed_permanent");
  const retryResponse = page.waitForResponse(
    (r) => r.url().endsWith(`/v1/jobs/${deadJob.job_id}/retry`) && r.request().method() === "POST",
  );
  await deadItem.getByRole("button", { name: `Retry job ${deadJob.job_id}` }).click();
  const rr = await retryResponse;
  assert.equal(rr.status(), 202, "retry answers 202");
  const retried = await rr.json();
  assert.ok(["queued", "processing"].includes(retried.status), `retry response status ${retried.status}`);
  // The page drops the dead letter and shows the job queued (or already
  // processing) until the consumer picks it up.
  const pageState = await page.waitForFunction((id) => {
    const gone = !document.querySelector(`#dead-letters li[data-job-id="${id}"]`);
    const st = document.querySelector(`#jobs tr[data-job-id="${id}"] .status`)?.textContent;
    return (gone || st === "queued" || st === "processing") && { gone, st };
  }, deadJob.job_id);
  const { gone, st } = await pageState.jsonValue();
  assert.match(await page.locator("#notice").innerText(), new RegExp(`${deadJob.job_id.slice(0, 8)} re-queued at`));
  log(`page after retry: dead letter ${gone ? "removed" : "still listed"}, job row ${st}`);
  // The API: no longer failed_permanent, or (the simulator answers 403 again
  // within about a second) already re-run and dead again with one more attempt.
  const after = (await api("GET", `/v1/jobs/${deadJob.job_id}`)).json;
  assert.ok(
    after.status !== "failed_permanent" || after.attempts > before.attempts,
    `after retry: status ${after.status}, attempts ${before.attempts} -> ${after.attempts}`,
  );
  log(`API after retry: retry answered ${retried.status}; now ${after.status}, attempts ${before.attempts} -> ${after.attempts}`);

  // The simulator still answers 403, so the re-run dies again; the live
  // refresh brings the dead letter back with one more attempt.
  await page
    .locator(`#dead-letters li[data-job-id="${deadJob.job_id}"]`, { hasText: `${before.attempts + 1} attempts` })
    .waitFor({ timeout: 60_000 });
  assert.equal(await page.locator(`#jobs tr[data-job-id="${deadJob.job_id}"] .status`).innerText(), "failed_permanent");
  log(`live refresh: the re-run died again and is back in the dead letters (${before.attempts + 1} attempts)`);

  assert.deepEqual(pageErrors, [], "no page errors or CSP violations");

  // ---- 4. screenshot ----
  const shot = path.join(ARTIFACTS, "status-page.png");
  await page.screenshot({ path: shot, fullPage: true });
  log(`screenshot: ${path.relative(process.cwd(), shot)}`);
  log("PASS");
} catch (e) {
  await page.screenshot({ path: path.join(ARTIFACTS, "failure.png"), fullPage: true }).catch(() => {});
  throw e;
} finally {
  await browser.close();
}
