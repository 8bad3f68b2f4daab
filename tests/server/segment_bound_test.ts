/**
 * POST /api/images/:id/segment is bounded in answer size: prompts x masks per prompt x W x H
 * full-size mask pixels at most (limits.maxMaskPixels, --max-mask-pixels). Over it: a 400
 * naming the limit, before any GPU work; at it: answered.
 */
import assert from "node:assert/strict";
import { createApp } from "../../src/server/app.ts";
import { DEFAULT_LIMITS } from "../../src/server/limits.ts";
import { DEFAULT_CONFIG, parseConfig } from "../../src/server/config.ts";
import { FakeEngine } from "./fake_engine.ts";
import { call, makePng } from "./helpers.ts";

const boxes = (n: number) => Array.from({ length: n }, (_, i) => [i % 30, 0, 39, 29]);

Deno.test("segment: more mask pixels than the limit is a 400 naming it, before the GPU", async () => {
  const engine = new FakeEngine();
  // A 40x30 image: 1200 pixels a mask. 4 boxes x 3 candidates = 14400 pixels.
  const app = createApp({ engine, log: () => {}, limits: { maxMaskPixels: 4 * 1200 } });
  const up = await call(app, "POST", "/api/images", await makePng(40, 30), {
    "content-type": "image/png",
  });
  assert.equal(up.status, 200);
  const calls = engine.calls;
  const seg = (body: Record<string, unknown>) =>
    call(app, "POST", `/api/images/${up.json.id}/segment`, body);

  const over = await seg({ boxes: boxes(4), multimask: true, format: "rle" });
  assert.equal(over.status, 400, JSON.stringify(over.json));
  assert.match(
    String(over.json.error),
    /4 prompt\(s\) x 3 mask\(s\) of 40x30 pixels = 14400 mask pixels, over the limit of 4800 .*--max-mask-pixels/,
  );
  const fiveBoxes = await seg({ boxes: boxes(5), format: "rle" }); // one mask each: 6000
  assert.equal(fiveBoxes.status, 400);
  assert.match(String(fiveBoxes.json.error), /5 prompt\(s\) x 1 mask\(s\)/);
  // One click defaults to three candidates: 3600, under the limit.
  assert.equal(engine.calls, calls, "no GPU work for a refused request");
  const click = await seg({ points: [[5, 5]] });
  assert.equal(click.status, 200, JSON.stringify(click.json));
  // Exactly at the limit: four single-mask boxes.
  const atLimit = await seg({ boxes: boxes(4), format: "rle" });
  assert.equal(atLimit.status, 200, JSON.stringify(atLimit.json));
  assert.equal((atLimit.json.results as unknown[]).length, 4);

  const info = await call(app, "GET", "/api/info");
  assert.equal((info.json.limits as { max_mask_pixels: number }).max_mask_pixels, 4800);
});

Deno.test("segment: the default bound refuses 64 boxes x 3 masks of 4096x4096", () => {
  // 64 * 3 * 4096 * 4096 mask pixels is ~3.2e9 (gigabytes of answer); the default allows
  // 64 single-mask boxes on a 2048x2048 image.
  assert.ok(64 * 3 * 4096 * 4096 > DEFAULT_LIMITS.maxMaskPixels);
  assert.ok(64 * 1 * 2048 * 2048 <= DEFAULT_LIMITS.maxMaskPixels);
  assert.equal(DEFAULT_CONFIG.maxMaskPixels, DEFAULT_LIMITS.maxMaskPixels);
  const none = () => undefined;
  assert.equal(parseConfig(["--max-mask-pixels", "1000000"], none).maxMaskPixels, 1_000_000);
  assert.equal(
    parseConfig([], (n) => (n === "WGSAM_MAX_MASK_PIXELS" ? "5000" : undefined)).maxMaskPixels,
    5000,
  );
  assert.throws(() => parseConfig(["--max-mask-pixels", "1.5"], none), /--max-mask-pixels/);
});
