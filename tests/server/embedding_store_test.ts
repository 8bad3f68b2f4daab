/**
 * The Redis embedding store (src/server/embedding_store.ts) against a real redis-server:
 * round trip with shape, dtype and model beside the bytes; checkpoints never mix; a TTL on
 * every entry; the byte cap evicts the least recently used; a damaged entry is a miss.
 */
import assert from "node:assert/strict";
import { modelIdentity, SharedStore } from "../../src/server/embedding_store.ts";
import { openRedis } from "../../src/server/redis.ts";
import { hasRedisServer, startRedis } from "../util/redis_server.ts";

const ignore = !hasRedisServer();
const MODEL_A = "a".repeat(32);
const MODEL_B = "b".repeat(32);
const SHAPE = [1, 4, 2, 2];

function embedding(seed: number) {
  return { data: Float32Array.from({ length: 16 }, (_, i) => seed + i / 7), shape: SHAPE };
}

Deno.test({
  name: "embedding store: round trip, model isolation, TTL, byte cap, damaged entries",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const server = await startRedis();
    const { redis, ready } = openRedis(server.url, { log: () => {} });
    try {
      assert.equal(await ready, true);
      // Room for two 64-byte embeddings, not three.
      const a = new SharedStore(redis, { model: MODEL_A, ttlS: 60, maxBytes: 150 });
      const b = new SharedStore(redis, { model: MODEL_B, ttlS: 60, maxBytes: 150 });
      await a.put("img1", embedding(1));
      const got = await a.get("img1");
      assert.deepEqual(got?.shape, SHAPE);
      assert.deepEqual([...got!.data], [...embedding(1).data]);
      const key = `wgsam:v1:emb:${MODEL_A}:img1`;
      assert.equal(await redis.hget(key, "dtype"), "<f4");
      assert.equal(await redis.hget(key, "shape"), "1,4,2,2");
      assert.equal(await redis.hget(key, "model"), MODEL_A);
      const ttl = await redis.pttl(key);
      assert.ok(ttl > 50_000 && ttl <= 60_000, `ttl ${ttl}`);

      // Another checkpoint never sees it.
      assert.equal(await b.get("img1"), null);

      // A third entry evicts the least recently used: img1 was just read, so img2 goes.
      await a.put("img2", embedding(2));
      assert.ok(await a.get("img1"));
      await a.put("img3", embedding(3));
      assert.equal(await a.get("img2"), null);
      assert.ok(await a.get("img1"));
      assert.ok(await a.get("img3"));
      assert.equal(Number(await redis.get("wgsam:v1:bytes")), 128);
      assert.equal(a.stats().evicted, 1);

      // Too big for the cap: never stored.
      await a.put("huge", { data: new Float32Array(64), shape: [1, 4, 4, 4] });
      assert.equal(await redis.exists(`wgsam:v1:emb:${MODEL_A}:huge`), 0);

      // Damaged: bytes that do not fit the shape, or a foreign dtype, are misses.
      await redis.hset(key, "shape", "1,4,2,3");
      assert.equal(await a.get("img1"), null);
      await redis.hset(key, "shape", "1,4,2,2", "dtype", "<f2");
      assert.equal(await a.get("img1"), null);

      // Uploads round trip too, and forget removes both.
      await a.putImage("img3", new Uint8Array([1, 2, 3]));
      assert.deepEqual(await a.getImage("img3"), new Uint8Array([1, 2, 3]));
      await a.forget("img3");
      assert.equal(await a.getImage("img3"), null);
      assert.equal(await a.get("img3"), null);
    } finally {
      redis.disconnect();
      await server.stop();
    }
  },
});

Deno.test("embedding store: model identity is the checkpoint's bytes, not its name", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/one.pth`, new Uint8Array([1, 2, 3]));
    await Deno.writeFile(`${dir}/two.pth`, new Uint8Array([1, 2, 3]));
    await Deno.writeFile(`${dir}/three.pth`, new Uint8Array([1, 2, 4]));
    const one = await modelIdentity(`${dir}/one.pth`);
    assert.match(one, /^[0-9a-f]{32}$/);
    assert.equal(await modelIdentity(`${dir}/two.pth`), one);
    assert.notEqual(await modelIdentity(`${dir}/three.pth`), one);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
