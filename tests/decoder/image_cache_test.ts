/**
 * PinnedImageCache, shared by SAM's and SAM 2's decoders: LRU of at most `capacity` images,
 * an entry pinned by a call outlives its eviction, a dropped or uncached entry is destroyed
 * once unused, release and clear free what is kept. (decoder_reuse_test checks it on the GPU.)
 */
import assert from "node:assert/strict";
import { PinnedImageCache } from "../../src/decoder/image_cache.ts";

Deno.test("PinnedImageCache: LRU eviction, pins outlive eviction, drop, release, clear", () => {
  const destroyed: string[] = [];
  const cache = new PinnedImageCache<string>(2, (e) => destroyed.push(e));
  const key = (n: string) => ({ label: n }) as unknown as GPUBuffer;
  const [a, b, c] = [key("a"), key("b"), key("c")];
  let made = 0;
  const make = (name: string) => () => (made++, name);
  const pa = cache.acquire(a, true, make("A"));
  cache.unpin(pa);
  const pb = cache.acquire(b, true, make("B"));
  // A again: a hit, now most recently used; pinned across the eviction below.
  const pa2 = cache.acquire(a, true, make("A'"));
  assert.equal(pa2.entry, "A");
  assert.equal(made, 2);
  cache.unpin(pb);
  const pc = cache.acquire(c, true, make("C")); // evicts B (least recently used), unpinned
  assert.deepEqual(destroyed, ["B"]);
  assert.equal(cache.size, 2);
  assert.ok(cache.has(a) && cache.has(c) && !cache.has(b));
  // Released while pinned: out of the cache now, destroyed at the last unpin.
  assert.equal(cache.release(a), true);
  assert.equal(cache.release(a), false);
  assert.deepEqual(destroyed, ["B"]);
  cache.unpin(pa2);
  assert.deepEqual(destroyed, ["B", "A"]);
  // A failed call drops its entry; an uncached one goes at its unpin.
  cache.drop(pc);
  cache.unpin(pc);
  assert.deepEqual(destroyed, ["B", "A", "C"]);
  const once = cache.acquire(a, false, make("once"));
  assert.equal(cache.size, 0);
  cache.unpin(once);
  assert.deepEqual(destroyed, ["B", "A", "C", "once"]);
  cache.unpin(cache.acquire(b, true, make("B2")));
  cache.clear();
  assert.deepEqual(destroyed, ["B", "A", "C", "once", "B2"]);
  assert.equal(cache.size, 0);
});
