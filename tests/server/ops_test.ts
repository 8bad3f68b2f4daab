/**
 * GET /healthz, GET /metrics and the drain of a graceful stop (src/server/ops.ts,
 * src/server/metrics.ts), on the fake engine: fast and deterministic.
 */
import assert from "node:assert/strict";
import { createApp } from "../../src/server/app.ts";
import { Metrics, routeOf, timedEngine } from "../../src/server/metrics.ts";
import { withOps } from "../../src/server/ops.ts";
import { FakeEngine } from "./fake_engine.ts";
import { call, makePng } from "./helpers.ts";
import { metric } from "./server_process.ts";

function setup(opts: { gpuUsable?: boolean } = {}) {
  const fake = new FakeEngine();
  const metrics = new Metrics();
  const app = createApp({ engine: timedEngine(fake, metrics), log: () => {} });
  const ops = withOps({
    app,
    metrics,
    model: "fake",
    adapter: "none",
    health: () => ({
      gpuUsable: opts.gpuUsable ?? true,
      gpuError: opts.gpuUsable === false ? "GPU device lost: test" : null,
    }),
  });
  return { fake, metrics, app, ops };
}

Deno.test("ops: route labels are patterns, never raw ids", () => {
  assert.equal(routeOf("/api/images/abc123/segment"), "/api/images/:id/segment");
  assert.equal(routeOf("/api/images/abc123"), "/api/images/:id");
  assert.equal(routeOf("/api/info"), "/api/info");
  assert.equal(routeOf("/wp-admin/x"), "other");
  assert.equal(routeOf("/api/images/a/b/c"), "other");
  assert.equal(routeOf("/api/functions/sam-x"), "/api/functions/:name");
  assert.equal(routeOf("/ls/predict"), "/ls/predict");
});

Deno.test("ops: /healthz reports model, GPU and queue depth; 503 once the GPU is lost", async () => {
  const { fake, ops } = setup();
  const ok = await call(ops, "GET", "/healthz");
  assert.equal(ok.status, 200);
  assert.equal(ok.json.status, "ok");
  assert.deepEqual(ok.json.model, { loaded: true, name: "fake" });
  assert.equal((ok.json.gpu as { usable: boolean }).usable, true);
  assert.equal((ok.json.queue as { depth: number }).depth, 0);
  assert.equal(ok.json.redis, null);

  // Three uploads hold the GPU queue: one runs, two wait.
  fake.delayMs = 200;
  const uploads = [1, 2, 3].map(async (seed) =>
    call(ops, "POST", "/api/images", await makePng(8, 8, seed))
  );
  // Decoding (in a worker, one at a time) comes first: wait until all three reach the queue.
  let busy = await call(ops, "GET", "/healthz");
  for (let i = 0; i < 200 && (busy.json.queue as { depth: number }).depth < 3; i++) {
    await new Promise((r) => setTimeout(r, 10));
    busy = await call(ops, "GET", "/healthz");
  }
  assert.deepEqual(busy.json.queue, { depth: 3, running: true, waiting: 2 });
  for (const u of await Promise.all(uploads)) assert.equal(u.status, 200);
  assert.equal((await call(ops, "POST", "/healthz")).status, 405);

  const lost = setup({ gpuUsable: false });
  const bad = await call(lost.ops, "GET", "/healthz");
  assert.equal(bad.status, 503);
  assert.equal(bad.json.status, "unhealthy");
  assert.match((bad.json.gpu as { error: string }).error, /device lost/);
});

Deno.test("ops: /metrics counts requests by route and status, times decodes, reads gauges", async () => {
  const { ops, metrics } = setup();
  const up = await call(ops, "POST", "/api/images", await makePng(16, 12, 1));
  assert.equal(up.status, 200);
  const id = up.json.id as string;
  for (let i = 0; i < 2; i++) {
    const seg = await call(ops, "POST", `/api/images/${id}/segment`, {
      points: [[3, 3]],
      labels: [1],
    });
    assert.equal(seg.status, 200);
  }
  assert.equal((await call(ops, "GET", "/api/images/nosuch")).status, 404);
  assert.equal((await call(ops, "GET", "/nope/x")).status, 404);
  metrics.embedding({ kind: "encode", ms: 30 });
  metrics.embedding({ kind: "shared-hit", ms: 0 });
  metrics.embedding({ kind: "local-hit", ms: 0 });
  metrics.embedding({ kind: "local-hit", ms: 0 });

  const res = await ops(new Request("http://wgsam.test/metrics"));
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  const seg =
    'wgsam_http_requests_total{route="/api/images/:id/segment",method="POST",status="200"}';
  assert.equal(metric(text, seg), 2);
  assert.equal(
    metric(text, 'wgsam_http_requests_total{route="/api/images/:id",method="GET",status="404"}'),
    1,
  );
  assert.equal(
    metric(text, 'wgsam_http_requests_total{route="other",method="GET",status="404"}'),
    1,
  );
  assert.doesNotMatch(text, new RegExp(id), "no raw id in any label");
  assert.equal(metric(text, "wgsam_decode_seconds_count"), 2);
  assert.equal(metric(text, 'wgsam_decode_seconds_bucket{le="+Inf"}'), 2);
  assert.equal(metric(text, "wgsam_encoder_runs_total"), 1);
  assert.equal(metric(text, 'wgsam_encode_seconds_bucket{le="0.025"}'), 0);
  assert.equal(metric(text, 'wgsam_encode_seconds_bucket{le="0.05"}'), 1);
  assert.equal(metric(text, "wgsam_encode_seconds_sum"), 0.03);
  assert.equal(metric(text, 'wgsam_embedding_lookups_total{result="local_hit"}'), 2);
  assert.equal(metric(text, 'wgsam_embedding_lookups_total{result="shared_hit"}'), 1);
  assert.equal(metric(text, 'wgsam_embedding_lookups_total{result="miss"}'), 1);
  assert.equal(metric(text, "wgsam_queue_depth"), 0);
  assert.equal(
    metric(text, 'wgsam_http_request_duration_seconds_count{route="/api/images/:id/segment"}'),
    2,
  );
  // Every sample line is "name{labels} number" or "name number".
  for (const line of text.trim().split("\n")) {
    if (line.startsWith("#")) continue;
    assert.match(line, /^[a-z_]+(\{[^}]*\})? [0-9.e+-]+$/, line);
  }
});

Deno.test("ops: drain refuses new requests with 503 and lets accepted ones finish", async () => {
  const { fake, ops } = setup();
  const up = await call(ops, "POST", "/api/images", await makePng(16, 12, 1));
  const id = up.json.id as string;
  fake.delayMs = 200;
  const accepted = call(ops, "POST", `/api/images/${id}/segment`, {
    points: [[3, 3]],
    labels: [1],
  });
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(ops.inFlight, 1);
  ops.drain();
  const refused = await call(ops, "GET", "/api/info");
  assert.equal(refused.status, 503);
  assert.equal(refused.headers.get("connection"), "close");
  const health = await call(ops, "GET", "/healthz");
  assert.equal(health.status, 503);
  assert.equal(health.json.status, "draining");
  assert.equal((await accepted).status, 200);
  assert.equal(ops.inFlight, 0);
});
