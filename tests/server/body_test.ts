import assert from "node:assert/strict";
import { readBodyLimited } from "../../src/server/body.ts";
import { HttpError } from "../../src/server/errors.ts";

/** A request whose body sends one chunk and then nothing, as a stalled or malicious client. */
function stalledRequest(): Request {
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new Uint8Array([1, 2, 3]));
    },
  });
  return new Request("http://x/api/images", { method: "POST", body });
}

Deno.test("a body that stops arriving is a 408 at the deadline, not a request held forever", async () => {
  const t0 = performance.now();
  await assert.rejects(
    () => readBodyLimited(stalledRequest(), 1000, 200),
    (e) => e instanceof HttpError && e.status === 408 && /within 0.2 s/.test(e.message),
  );
  const ms = performance.now() - t0;
  assert.ok(ms >= 190 && ms < 5000, `gave up after ${ms} ms`);
  // A complete body well within the deadline is read whole.
  const ok = new Request("http://x", { method: "POST", body: new Uint8Array([4, 5, 6]) });
  assert.deepEqual(await readBodyLimited(ok, 1000, 200), new Uint8Array([4, 5, 6]));
});
