/**
 * DELETE /api/images/:id while the GPU queue is full: all of it happens (the image, its
 * low_res_handles and, in its turn on the queue, its cached embedding) and the answer is a 200,
 * never a 503 after the image is already gone.
 */
import assert from "node:assert/strict";
import { createApp } from "../../src/server/app.ts";
import { WorkQueue } from "../../src/server/queue.ts";
import { FakeEngine } from "./fake_engine.ts";
import { call, makePng } from "./helpers.ts";

/** The stand-in engine with an embedding cache that DELETE can empty, calls logged in order. */
class ForgettingEngine extends FakeEngine {
  readonly order: string[] = [];
  forget(id: string): boolean {
    this.order.push(`forget ${id.slice(0, 8)}`);
    return true;
  }
  override predict(...args: Parameters<FakeEngine["predict"]>) {
    this.order.push("predict");
    return super.predict(...args);
  }
}

Deno.test("DELETE on a full GPU queue: 200, image, handles and embedding all gone", async () => {
  const engine = new ForgettingEngine();
  const app = createApp({ engine, log: () => {}, limits: { maxQueue: 1 } });
  const ids: string[] = [];
  for (let k = 0; k < 2; k++) {
    const r = await call(app, "POST", "/api/images", await makePng(40, 30, k), {
      "content-type": "image/png",
    });
    assert.equal(r.status, 200);
    ids.push(r.json.id as string);
  }
  const first = await call(app, "POST", `/api/images/${ids[0]}/segment`, {
    points: [[5, 5]],
    multimask: true,
  });
  assert.equal(first.status, 200);
  const handleCount =
    () => ((call(app, "GET", "/api/info")).then((r) =>
      (r.json.cache as { low_res_handles: { count: number } }).low_res_handles.count
    ));
  assert.equal(await handleCount(), 3);

  // One job running, one waiting: the queue is full (a third GPU request is a 503).
  engine.delayMs = 150;
  const busy = [
    call(app, "POST", `/api/images/${ids[1]}/segment`, { points: [[5, 5]] }),
    call(app, "POST", `/api/images/${ids[1]}/segment`, { points: [[6, 6]] }),
  ];
  await new Promise((r) => setTimeout(r, 20));
  const refused = await call(app, "POST", `/api/images/${ids[1]}/segment`, { points: [[5, 5]] });
  assert.equal(refused.status, 503, "the queue is full");

  const t0 = performance.now();
  const del = await call(app, "DELETE", `/api/images/${ids[0]}`);
  assert.equal(del.status, 200, JSON.stringify(del.json));
  assert.deepEqual(del.json, { deleted: ids[0] });
  assert.ok(performance.now() - t0 < 100, "DELETE does not wait for the GPU queue");
  assert.equal((await call(app, "GET", `/api/images/${ids[0]}`)).status, 404);
  assert.equal(await handleCount(), 0, "its low_res_handles are gone");
  assert.ok(!engine.order.includes(`forget ${ids[0].slice(0, 8)}`), "not yet: GPU queue busy");

  for (const r of await Promise.all(busy)) assert.equal(r.status, 200);
  await new Promise((r) => setTimeout(r, 20));
  // The embedding was forgotten in its turn: after the two jobs that were already waiting.
  assert.deepEqual(engine.order.slice(-3), ["predict", "predict", `forget ${ids[0].slice(0, 8)}`]);
  assert.equal(engine.maxActive, 1, "never overlapping GPU work");
  // A second DELETE of the same id: 404, nothing else changes.
  assert.equal((await call(app, "DELETE", `/api/images/${ids[0]}`)).status, 404);
  assert.equal((await call(app, "GET", `/api/images/${ids[1]}`)).status, 200);
});

Deno.test("WorkQueue.always: never refused, no time limit, in arrival order", async () => {
  const q = new WorkQueue(0);
  const order: string[] = [];
  const slow = q.run(async () => {
    await new Promise((r) => setTimeout(r, 60));
    order.push("slow");
  }, { timeoutMs: 1000 });
  await assert.rejects(q.run(() => Promise.resolve(), { timeoutMs: 1000 }), /server busy/);
  const kept = q.always(() => {
    order.push("always");
    return 7;
  });
  assert.equal(await kept, 7);
  await slow;
  assert.deepEqual(order, ["slow", "always"]);
  // Idle: it starts at once, synchronously.
  let ran = false;
  const now = q.always(() => {
    ran = true;
  });
  assert.ok(ran);
  await now;
  // A failing job rejects its promise, and the queue goes on.
  await assert.rejects(
    q.always(() => {
      throw new Error("boom");
    }),
    /boom/,
  );
  assert.equal(await q.run(() => Promise.resolve(1), { timeoutMs: 100 }), 1);
  assert.equal(q.stats().running, false);
});

Deno.test("a segment job that finishes after its image was deleted leaves no handles behind", async () => {
  const engine = new ForgettingEngine();
  const app = createApp({ engine, log: () => {}, limits: { maxQueue: 4 } });
  const up = await call(app, "POST", "/api/images", await makePng(40, 30, 7), {
    "content-type": "image/png",
  });
  const id = up.json.id as string;
  engine.delayMs = 100;
  const pending = call(app, "POST", `/api/images/${id}/segment`, {
    points: [[5, 5]],
    multimask: true,
  });
  await new Promise((r) => setTimeout(r, 20)); // the job is on the GPU queue
  assert.equal((await call(app, "DELETE", `/api/images/${id}`)).status, 200);
  const late = await pending;
  // The job had its pixels already; its answer stands, without handles to a deleted image.
  assert.equal(late.status, 200, JSON.stringify(late.json));
  assert.equal(late.json.low_res_handle, null);
  const info = await call(app, "GET", "/api/info");
  const cache = info.json.cache as { low_res_handles: { count: number } };
  assert.equal(cache.low_res_handles.count, 0);
});

Deno.test("WorkQueue: waiting `always` jobs take no request's place", async () => {
  const q = new WorkQueue(1);
  let release = () => {};
  const running = q.run(() => new Promise<void>((r) => release = r), { timeoutMs: 1000 });
  const forgets = [q.always(() => 1), q.always(() => 2)];
  // Two bookkeeping jobs wait; the one request place is still free.
  const request = q.run(() => Promise.resolve("served"), { timeoutMs: 1000 });
  await assert.rejects(q.run(() => Promise.resolve(), { timeoutMs: 1000 }), /1 requests/);
  release();
  await running;
  assert.deepEqual(await Promise.all(forgets), [1, 2]);
  assert.equal(await request, "served");
});
