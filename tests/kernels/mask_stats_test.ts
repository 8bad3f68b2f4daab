/**
 * mask_stats against the CPU reference of the generator (`logitMaskStats`, `thresholdMask`
 * in src/amg/utils.ts): counts, stability and boxes must be bit-identical (atol 0).
 */
import assert from "node:assert/strict";
import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import {
  createMaskStatsBuffer,
  maskStats,
  packMasks,
  readMaskStats,
  readPackedMasks,
} from "../../src/kernels/mask_stats.ts";
import { logitMaskStats, thresholdMask } from "../../src/amg/utils.ts";
import { randomArray } from "../util/compare.ts";

/** The reference for n masks of (h, w) logits. */
function reference(
  logits: Float32Array,
  n: number,
  h: number,
  w: number,
  thr: number,
  off: number,
) {
  const stability = new Float32Array(n);
  const boxes = new Int32Array(n * 4);
  for (let i = 0; i < n; i++) {
    const s = logitMaskStats(logits, i * h * w, h, w, thr, off);
    stability[i] = s.stability;
    boxes.set(s.box, i * 4);
  }
  return { stability, boxes };
}

async function check(
  logits: Float32Array,
  n: number,
  h: number,
  w: number,
  thr: number,
  off: number,
  label: string,
) {
  const ctx = await getContext();
  const t = tensorFrom(ctx, logits, [n, h, w], label);
  const got = await readMaskStats(
    ctx,
    maskStats(ctx, t, { maskThreshold: thr, stabilityOffset: off }),
    h,
    w,
  );
  const ref = reference(logits, n, h, w, thr, off);
  // Same float32 bits, NaN included (0/0 for an empty union).
  assert.deepEqual(Array.from(got.stability), Array.from(ref.stability), `${label}: stability`);
  assert.deepEqual(Array.from(got.boxes), Array.from(ref.boxes), `${label}: boxes`);
  t.destroy();
  return got;
}

Deno.test("mask_stats: random logits, widths below, at and above the workgroup's 128 threads", async () => {
  const cases: [number, number, number][] = [[3, 7, 5], [5, 33, 128], [4, 107, 160], [2, 61, 301]];
  for (const [n, h, w] of cases) {
    const logits = randomArray(n * h * w, n * 1000 + w, 3);
    await check(logits, n, h, w, 0, 1, `random ${n}x${h}x${w}`);
    await check(logits, n, h, w, 0.25, 0.5, `random ${n}x${h}x${w} thr 0.25 off 0.5`);
  }
});

Deno.test("mask_stats: empty, full, single pixel, values exactly at the thresholds", async () => {
  const h = 9, w = 13, plane = h * w;
  const masks: Float32Array[] = [];
  masks.push(new Float32Array(plane).fill(-5)); // empty: stability 0/0 = NaN, box zeros
  masks.push(new Float32Array(plane).fill(5)); // full: stability 1, box the whole plane
  const single = new Float32Array(plane).fill(-5);
  single[4 * w + 11] = 0.5; // above thr and lo only: stability 0/1
  masks.push(single);
  const corner = new Float32Array(plane).fill(-5);
  corner[plane - 1] = 3; // the last pixel: box [12, 8, 12, 8]
  masks.push(corner);
  // Exactly at each threshold (strict >: not counted) and one float32 step above.
  const exact = new Float32Array(plane).fill(-5);
  const up = (x: number) => {
    const f = new Float32Array([x]);
    const u = new Int32Array(f.buffer);
    u[0] += x >= 0 ? 1 : -1;
    return f[0];
  };
  // 1e-30 rather than the float32 step above 0 (a subnormal some adapters flush to zero).
  exact.set([0, 1, -1, 1e-30, up(1), up(-1), -0], 2 * w);
  exact[5 * w + 3] = 1e-30;
  masks.push(exact);
  const atZero = new Float32Array(plane).fill(0); // every pixel at the mask threshold: empty box
  masks.push(atZero);
  const logits = new Float32Array(masks.length * plane);
  masks.forEach((m, i) => logits.set(m, i * plane));
  const got = await check(logits, masks.length, h, w, 0, 1, "edge cases");
  assert.ok(Number.isNaN(got.stability[0]), "empty mask: NaN stability");
  assert.deepEqual(Array.from(got.boxes.subarray(4, 8)), [0, 0, w - 1, h - 1]);
  assert.deepEqual(Array.from(got.boxes.subarray(8, 12)), [11, 4, 11, 4]);
  assert.deepEqual(Array.from(got.boxes.subarray(12, 16)), [12, 8, 12, 8]);
  assert.equal(got.stability[2], 0);
  assert.deepEqual([got.intersections[4], got.unions[4]], [1, 7], "at-threshold counts");
  assert.deepEqual(Array.from(got.boxes.subarray(16, 20)), [1, 2, 4, 5]);
  assert.deepEqual(Array.from(got.boxes.subarray(20, 24)), [0, 0, 0, 0]);
});

Deno.test("mask_stats: rows wider than 32767 wrap through int16 as the official sums", async () => {
  const h = 2, w = 40000;
  const logits = new Float32Array(h * w).fill(2);
  const got = await check(logits, 1, h, w, 0, 1, "wide rows");
  // Each row: 40000 - 65536 = -25536; two rows: -51072 for both counts -> ratio 1.
  assert.equal(got.intersections[0], -51072);
});

Deno.test("mask_stats: chunks into slots of one buffer; bad shapes refused", async () => {
  const ctx = await getContext();
  const h = 11, w = 17;
  const a = randomArray(3 * h * w, 7, 2), b = randomArray(2 * h * w, 8, 2);
  const stats = createMaskStatsBuffer(ctx, 5);
  const ta = tensorFrom(ctx, a, [3, h, w]), tb = tensorFrom(ctx, b, [2, h, w]);
  maskStats(ctx, tb, { maskThreshold: 0, stabilityOffset: 1, out: stats, firstSlot: 3 });
  maskStats(ctx, ta, { maskThreshold: 0, stabilityOffset: 1, out: stats, firstSlot: 0 });
  const got = await readMaskStats(ctx, stats, h, w);
  const all = new Float32Array(5 * h * w);
  all.set(a);
  all.set(b, 3 * h * w);
  const ref = reference(all, 5, h, w, 0, 1);
  assert.deepEqual(Array.from(got.stability), Array.from(ref.stability));
  assert.deepEqual(Array.from(got.boxes), Array.from(ref.boxes));
  const tail = await readMaskStats(ctx, stats, h, w, 3, 2);
  assert.deepEqual(Array.from(tail.boxes), Array.from(ref.boxes.subarray(12)));
  assert.throws(
    () => maskStats(ctx, ta, { maskThreshold: 0, stabilityOffset: 1, out: stats, firstSlot: 3 }),
    /do not fit/,
  );
  assert.throws(
    () => maskStats(ctx, ta.reshape([3 * h, w]), { maskThreshold: 0, stabilityOffset: 1 }),
    /\(N, h, w\)/,
  );
  ta.destroy();
  tb.destroy();
  stats.buffer.destroy();
});

Deno.test("packMasks: chosen masks only, in the order asked, planes not a multiple of 32", async () => {
  const ctx = await getContext();
  const n = 6, h = 13, w = 21, plane = h * w; // 273 pixels: 9 words, the last partly used
  const logits = randomArray(n * plane, 11, 1);
  logits[2 * plane + 5] = 0; // at the threshold: not in the mask
  const t = tensorFrom(ctx, logits, [n, h, w]);
  const indices = [4, 0, 4, 2];
  const got = await readPackedMasks(ctx, packMasks(ctx, t, indices, 0));
  assert.equal(got.length, indices.length);
  indices.forEach((i, k) => {
    assert.deepEqual(got[k], thresholdMask(logits, i * plane, plane, 0), `mask ${i}`);
  });
  assert.deepEqual(await readPackedMasks(ctx, packMasks(ctx, t, [], 0)), []);
  assert.throws(() => packMasks(ctx, t, [6], 0), /outside/);
  t.destroy();
});
