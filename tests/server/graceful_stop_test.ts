/**
 * SIGTERM on a real server process (sam-tiny): it stops accepting connections, the requests it
 * had accepted (one running on the GPU, one queued behind it) still get their answers, and it
 * exits 0; with a --drain-s too short for them it exits 1 and says how many it dropped.
 */
import assert from "node:assert/strict";
import { FIXTURE_IMAGE } from "./helpers.ts";
import { request, startServer } from "./server_process.ts";

/** Slow enough on llvmpipe to still be running when the signal comes. */
const SLOW = { points_per_side: 6, pred_iou_thresh: 0, stability_score_thresh: 0 };

async function startSlowWork(base: string) {
  const up = await request(base, "POST", "/api/images", await Deno.readFile(FIXTURE_IMAGE));
  assert.equal(up.status, 200, up.text);
  const id = up.json.id as string;
  const work = [0, 1].map(() => request(base, "POST", `/api/images/${id}/everything`, SLOW));
  // Until one runs and one waits.
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const h = await request(base, "GET", "/healthz");
    if ((h.json.queue as { depth: number }).depth === 2) return work;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error("the two requests never reached the GPU queue");
}

Deno.test({
  name: "graceful stop: SIGTERM finishes the accepted requests, refuses new ones, exits 0",
  sanitizeResources: false,
  fn: async () => {
    const server = await startServer(["--model", "sam-tiny", "--drain-s", "120"]);
    let code = -1;
    try {
      const work = await startSlowWork(server.base);
      const exited = server.stop("SIGTERM");
      await server.waitForLog(/shutting down: finishing 2 accepted requests within 120 s/);
      // No new connection is accepted from now on.
      await assert.rejects(fetch(`${server.base}/api/info`));
      for (const r of await Promise.all(work)) {
        assert.equal(r.status, 200, r.text);
        assert.ok((r.json.count as number) > 0);
      }
      code = await exited;
    } finally {
      if (code === -1) code = await server.stop("SIGKILL");
    }
    assert.equal(code, 0, server.log());
    assert.match(server.log(), /stopped: every accepted request answered/);
  },
});

Deno.test({
  name: "graceful stop: past --drain-s the server exits 1 and says what it dropped",
  sanitizeResources: false,
  fn: async () => {
    const server = await startServer(["--model", "sam-tiny", "--drain-s", "0.2"]);
    const settled = Promise.allSettled(await startSlowWork(server.base));
    const code = await server.stop("SIGTERM");
    assert.equal(code, 1, server.log());
    assert.match(server.log(), /ERROR shutdown: 2 requests still unfinished after 0\.2 s/);
    for (const r of await settled) assert.equal(r.status, "rejected");
  },
});
