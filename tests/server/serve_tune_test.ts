/**
 * `serve --tune`: at first start the server times the kernel variants for the shapes of its
 * model that the tune cache lacks on this adapter, writes the winners to tune-cache.json in
 * the weights folder, then serves; a second start finds every shape there and tunes nothing.
 * sam-tiny with a small time budget per variant keeps it short on a software adapter.
 */
import assert from "node:assert/strict";
import { parseConfig } from "../../src/server/config.ts";
import { request, startServer } from "./server_process.ts";

Deno.test("serve --tune: tunes at first start, writes the cache, then serves; a second start reuses it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgsam-tune-" });
  const env = { WGSAM_WEIGHTS_DIR: dir, WGSAM_TUNE: "" };
  const path = `${dir}/tune-cache.json`;
  try {
    // Tuning before listening takes over a minute on a busy llvmpipe host: wait up to 8.
    const first = await startServer(
      ["--model", "sam-tiny", "--tune", "--tune-min-ms", "1"],
      env,
      480_000,
    );
    let cache: Record<string, Record<string, string>>;
    try {
      const log = first.log();
      assert.match(log, /tune: \d+ of \d+ shapes of sam-tiny are not in .*tune-cache\.json/);
      assert.match(log, /tune: tuned \d+ shapes in [\d.]+ s; wrote /);
      // Tuned before listening: the engine loaded after it read the new cache.
      assert.ok(log.indexOf("tune: tuned") < log.indexOf("listening on"), log);
      cache = JSON.parse(await Deno.readTextFile(path));
      const tables = Object.values(cache);
      assert.equal(tables.length, 1, `one adapter table: ${Object.keys(cache)}`);
      const entries = Object.entries(tables[0]);
      const tuned = Number(/tune: tuned (\d+) shapes/.exec(log)![1]);
      assert.equal(entries.length, tuned);
      for (const [key, variant] of entries) {
        assert.match(key, /^(gemm|attention)\|/);
        assert.match(variant, /^[a-z]/);
      }
      const info = await request(first.base, "GET", "/api/info");
      assert.equal(info.status, 200);
    } finally {
      assert.equal(await first.stop(), 0);
    }

    const again = await startServer(
      ["--model", "sam-tiny", "--tune", "--tune-min-ms", "1"],
      env,
      480_000,
    );
    try {
      assert.match(again.log(), /tune: .*tune-cache\.json has all \d+ shapes of sam-tiny/);
      assert.doesNotMatch(again.log(), /tune: tuned/);
      assert.deepEqual(JSON.parse(await Deno.readTextFile(path)), cache);
    } finally {
      assert.equal(await again.stop(), 0);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve --tune: WGSAM_TUNE=off wins (nothing timed, no cache written)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgsam-tune-off-" });
  try {
    const s = await startServer(["--model", "sam-tiny", "--tune"], {
      WGSAM_WEIGHTS_DIR: dir,
      WGSAM_TUNE: "off",
    });
    try {
      assert.match(s.log(), /tune: WGSAM_TUNE=off, --tune ignored/);
      await assert.rejects(Deno.stat(`${dir}/tune-cache.json`), Deno.errors.NotFound);
    } finally {
      assert.equal(await s.stop(), 0);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve config: --tune and --tune-min-ms", () => {
  const env = () => undefined;
  assert.equal(parseConfig([], env).tune, false);
  assert.equal(parseConfig([], env).tuneMinMs, 200);
  const c = parseConfig(["--tune", "--tune-min-ms", "20"], env);
  assert.equal(c.tune, true);
  assert.equal(c.tuneMinMs, 20);
  assert.equal(parseConfig([], (n) => (n === "WGSAM_TUNE_MIN_MS" ? "7" : undefined)).tuneMinMs, 7);
  assert.throws(() => parseConfig(["--tune-min-ms", "0"], env), /--tune-min-ms must be a positive/);
  assert.throws(() => parseConfig(["--tune=yes"], env));
});
