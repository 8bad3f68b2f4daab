import assert from "node:assert/strict";
import { ByteLru } from "../../src/util/lru.ts";

Deno.test("ByteLru evicts least recently used entries to stay within its byte bound", () => {
  const evicted: string[] = [];
  const lru = new ByteLru<string, number>(10, (_v, k) => evicted.push(k));
  lru.set("a", 1, 4);
  lru.set("b", 2, 4);
  assert.equal(lru.get("a"), 1); // a is now the most recent
  lru.set("c", 3, 4); // 12 bytes > 10: b goes
  assert.deepEqual(evicted, ["b"]);
  assert.deepEqual(lru.keys(), ["a", "c"]);
  assert.equal(lru.bytes, 8);
  lru.set("a", 9, 2); // replacing hands the old value to onEvict too
  assert.deepEqual(evicted, ["b", "a"]);
  assert.equal(lru.bytes, 6);
  assert.equal(lru.set("huge", 0, 11), false);
  assert.equal(lru.has("huge"), false);
  assert.deepEqual(evicted, ["b", "a", "huge"]);
  lru.clear();
  assert.equal(lru.size, 0);
  assert.equal(lru.bytes, 0);
  assert.throws(() => new ByteLru(NaN), /bad byte bound/);
});
