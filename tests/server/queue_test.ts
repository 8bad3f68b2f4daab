/** The work queue on its own (the LRU is src/util/lru.ts, tested in tests/util/lru_test.ts). */
import assert from "node:assert/strict";
import { HttpError } from "../../src/server/errors.ts";
import { WorkQueue } from "../../src/server/queue.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("queue: FIFO, one at a time, errors do not jam it, abort while waiting", async () => {
  const q = new WorkQueue(10);
  const order: number[] = [];
  let active = 0, maxActive = 0;
  const job = (i: number, fail = false) => async () => {
    active++;
    maxActive = Math.max(maxActive, active);
    await sleep(5);
    order.push(i);
    active--;
    if (fail) throw new Error(`job ${i}`);
    return i;
  };
  const results = await Promise.allSettled(
    [0, 1, 2, 3, 4].map((i) => q.run(job(i, i === 2), { timeoutMs: 5000 })),
  );
  assert.deepEqual(order, [0, 1, 2, 3, 4]);
  assert.equal(maxActive, 1);
  assert.equal(results[2].status, "rejected");
  assert.deepEqual(
    results.filter((r) => r.status === "fulfilled").map((r) =>
      (r as PromiseFulfilledResult<number>).value
    ),
    [0, 1, 3, 4],
  );
  // A synchronous throw is a failure of that job only.
  await assert.rejects(
    q.run(() => {
      throw new Error("sync");
    }, { timeoutMs: 1000 }),
    /sync/,
  );

  const ctl = new AbortController();
  const running = q.run(job(10), { timeoutMs: 5000 });
  const waiting = q.run(job(11), { timeoutMs: 5000, signal: ctl.signal });
  ctl.abort();
  await assert.rejects(waiting, (e) => e instanceof HttpError && e.status === 499);
  assert.equal(await running, 10);
  assert.equal(order.includes(11), false);
  const s = q.stats();
  assert.deepEqual([s.running, s.waiting, s.failed], [false, 0, 2]);
});
