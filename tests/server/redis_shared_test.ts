/**
 * Several servers on one Redis (`serve --redis`), each a real process with sam-tiny and a real
 * redis-server: an image uploaded on A is segmented on B with the same masks and without B's
 * encoder running; a Redis that is down at start, or goes away mid-run, is a clear line in the
 * log while the server keeps answering from its own cache.
 */
import assert from "node:assert/strict";
import { FIXTURE_IMAGE, makePng } from "./helpers.ts";
import { metric, request, startServer } from "./server_process.ts";
import { freePort, hasRedisServer, startRedis } from "../util/redis_server.ts";

const ignore = !hasRedisServer();
if (ignore) {
  console.warn("SKIP redis tests: no redis-server on PATH (apt-get install redis-server)");
}

const PROMPT = { points: [[88, 53.5]], labels: [1], multimask: true, format: "rle" };

Deno.test({
  name: "redis: upload on A, segment on B: identical masks, B never encodes",
  ignore,
  sanitizeResources: false,
  fn: async () => {
    const redis = await startRedis();
    const a = await startServer(["--model", "sam-tiny", "--redis", redis.url]);
    let b;
    try {
      b = await startServer(["--model", "sam-tiny"], { WGSAM_REDIS: redis.url });
      const png = await Deno.readFile(FIXTURE_IMAGE);
      const up = await request(a.base, "POST", "/api/images", png);
      assert.equal(up.status, 200, up.text);
      assert.equal(up.json.cached, false);
      const id = up.json.id as string;

      const onB = await request(b.base, "POST", `/api/images/${id}/segment`, PROMPT);
      assert.equal(onB.status, 200, onB.text);
      const onA = await request(a.base, "POST", `/api/images/${id}/segment`, PROMPT);
      assert.equal(onA.status, 200, onA.text);
      const masks = (r: typeof onA) =>
        (r.json.masks as { rle: unknown; score: number }[]).map((m) => [m.rle, m.score]);
      assert.equal((onB.json.masks as unknown[]).length, 3);
      assert.deepEqual(masks(onB), masks(onA));

      const metricsA = (await request(a.base, "GET", "/metrics")).text;
      const metricsB = (await request(b.base, "GET", "/metrics")).text;
      assert.equal(metric(metricsA, "wgsam_encoder_runs_total"), 1);
      assert.equal(metric(metricsB, "wgsam_encoder_runs_total"), 0, metricsB);
      assert.equal(metric(metricsB, 'wgsam_embedding_lookups_total{result="shared_hit"}'), 1);
      assert.equal(metric(metricsB, "wgsam_shared_store_hits_total"), 1);
      assert.equal(metric(metricsB, "wgsam_shared_store_connected"), 1);
      assert.equal(metric(metricsA, "wgsam_shared_store_writes_total"), 2); // file + embedding
      assert.equal(
        metric(
          metricsB,
          'wgsam_http_requests_total{route="/api/images/:id/segment",method="POST",status="200"}',
        ),
        1,
      );
      // The id is known on B for everything else too.
      const info = await request(b.base, "GET", `/api/images/${id}`);
      assert.deepEqual(info.json, { id, width: 160, height: 107, status: "ready" });
      const health = await request(b.base, "GET", "/healthz");
      assert.equal(health.status, 200);
      assert.equal((health.json.redis as { connected: boolean }).connected, true);

      // Deleted on A: gone from Redis, so a host that never saw it answers 404.
      assert.equal((await request(a.base, "DELETE", `/api/images/${id}`)).status, 200);
      const c = await startServer(["--model", "sam-tiny", "--redis", redis.url]);
      try {
        assert.equal((await request(c.base, "GET", `/api/images/${id}`)).status, 404);
      } finally {
        await c.stop();
      }
    } finally {
      await b?.stop();
      await a.stop();
      await redis.stop();
    }
  },
});

Deno.test({
  name: "redis: down at start, then up, then gone mid-run: logged, the server keeps serving",
  ignore,
  sanitizeResources: false,
  fn: async () => {
    const port = freePort(); // nothing listens there yet
    const server = await startServer([
      "--model",
      "sam-tiny",
      "--redis",
      `redis://127.0.0.1:${port}`,
    ]);
    let redis;
    try {
      assert.match(
        server.log(),
        new RegExp(`ERROR redis: redis://127\\.0\\.0\\.1:${port} is unavailable .*own cache`),
      );
      const first = await request(server.base, "POST", "/api/images", await makePng(64, 48, 1));
      assert.equal(first.status, 200, first.text);
      const seg1 = await request(
        server.base,
        "POST",
        `/api/images/${first.json.id}/segment`,
        { points: [[10, 10]], labels: [1] },
      );
      assert.equal(seg1.status, 200, seg1.text);
      const health = await request(server.base, "GET", "/healthz");
      assert.equal(health.status, 200);
      assert.equal((health.json.redis as { connected: boolean }).connected, false);

      // Redis comes up: the server finds it by itself.
      redis = await startRedis(port);
      await server.waitForLog(/redis: connected to/, 20_000);
      const second = await request(server.base, "POST", "/api/images", await makePng(64, 48, 2));
      assert.equal(second.status, 200, second.text);

      // Redis goes away: logged once more, and both images still answer from the local cache.
      await redis.stop();
      await server.waitForLog(/is unavailable[\s\S]*connected to[\s\S]*is unavailable/, 20_000);
      for (const id of [first.json.id, second.json.id]) {
        const seg = await request(server.base, "POST", `/api/images/${id}/segment`, {
          points: [[20, 20]],
          labels: [1],
        });
        assert.equal(seg.status, 200, seg.text);
      }
      const third = await request(server.base, "POST", "/api/images", await makePng(64, 48, 3));
      assert.equal(third.status, 200, third.text);
      assert.doesNotMatch(server.log(), /Uncaught|ERROR (POST|GET)/);
    } finally {
      assert.equal(await server.stop(), 0, server.log());
      await redis?.stop();
    }
  },
});
