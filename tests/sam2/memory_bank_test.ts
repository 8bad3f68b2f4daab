import assert from "node:assert/strict";
import { assertClose } from "../util/compare.ts";
import { assembleMemory, planMemory, pointerSinePe } from "../../src/sam2/memory_bank.ts";

const opts = { numMaskmem: 7, maxObjPtrs: 16, numFrames: 8, reverse: false };

Deno.test("planMemory: the sam2-tiny session's frames (conditioning frames 0 and 3 for object 2)", () => {
  // Frame 1, object 2, forward: both conditioning frames' spatial memories, only frame 0's
  // pointer (frame 3 is in the future), no tracked frames yet.
  let p = planMemory(1, [0, 3], new Set(), opts);
  assert.deepEqual(p.spatial, [{ frame: 0, tPos: 0 }, { frame: 3, tPos: 0 }]);
  assert.deepEqual(p.pointers, [{ frame: 0, pos: 1 }]);
  assert.equal(p.tDiffMax, 7); // min(8 frames, 16) - 1
  // Frame 5 forward after tracking 1, 2, 4, in t_pos order: 3 = frame 1, 4 = 2, 5 = 3 (a
  // conditioning frame, already at t_pos 0: skipped), 6 = 4; pointers: conditioning 0 and 3,
  // then tracked 4, 2, 1 by distance.
  p = planMemory(5, [0, 3], new Set([1, 2, 4]), opts);
  assert.deepEqual(p.spatial, [
    { frame: 0, tPos: 0 },
    { frame: 3, tPos: 0 },
    { frame: 1, tPos: 3 },
    { frame: 2, tPos: 4 },
    { frame: 4, tPos: 6 },
  ]);
  assert.deepEqual(p.pointers, [
    { frame: 0, pos: 5 },
    { frame: 3, pos: 2 },
    { frame: 4, pos: 1 },
    { frame: 2, pos: 3 },
    { frame: 1, pos: 4 },
  ]);
  // Reverse from frame 2 with 4, 6, 7 tracked (3, 5 conditioning), in t_pos order: 2 = frame
  // 7, 3 = 6, 4 = 5 (conditioning: skipped), 5 = 4, 6 = 3 (skipped); pointers: conditioning
  // frames at or after 2 at (2 - t) * -1 (signed, so positive looking back in reverse), then
  // tracked frames after 2.
  p = planMemory(2, [0, 3, 5], new Set([4, 6, 7]), { ...opts, reverse: true });
  assert.deepEqual(p.spatial, [
    { frame: 0, tPos: 0 },
    { frame: 3, tPos: 0 },
    { frame: 5, tPos: 0 },
    { frame: 7, tPos: 2 },
    { frame: 6, tPos: 3 },
    { frame: 4, tPos: 5 },
  ]);
  assert.deepEqual(p.pointers, [
    { frame: 3, pos: 1 },
    { frame: 5, pos: 3 },
    { frame: 4, pos: 2 },
    { frame: 6, pos: 4 },
    { frame: 7, pos: 5 },
  ]);
  // A long video: only the last 6 tracked frames and 15 pointers back.
  const many = new Set(Array.from({ length: 99 }, (_, i) => i + 1));
  p = planMemory(100, [0], many, { ...opts, numFrames: 1000 });
  assert.deepEqual(p.spatial.map((s) => s.frame), [0, 94, 95, 96, 97, 98, 99]);
  assert.deepEqual(p.pointers.map((s) => s.frame), [
    0,
    ...Array.from({ length: 15 }, (_, i) => 99 - i),
  ]);
  assert.equal(p.tDiffMax, 15);
  assert.throws(() => planMemory(1, [], new Set(), opts), /conditioning frame/);
});

Deno.test("pointerSinePe is get_1d_sine_pe(pos / t_diff_max, dim)", () => {
  const dim = 8, pos = [1, -3, 5];
  const got = pointerSinePe(pos, 7, dim);
  const ref: number[] = [];
  for (const p of pos) {
    const row = new Array(dim);
    for (let i = 0; i < dim / 2; i++) {
      const a = p / 7 / 10000 ** ((2 * Math.floor(i / 2)) / (dim / 2));
      row[i] = Math.sin(a);
      row[dim / 2 + i] = Math.cos(a);
    }
    ref.push(...row);
  }
  assertClose(got, ref, { atol: 1e-6, label: "sine pe" });
});

Deno.test("assembleMemory: spatial tokens with their t_pos encodings, then each pointer as C / memDim tokens", () => {
  const C = 4, md = 2, N = 3; // 3 tokens per frame, a pointer = 2 tokens
  const w = {
    maskmemTposEnc: Float32Array.from({ length: 3 * md }, (_, i) => 100 * (i + 1)), // numMaskmem 3
    tposProjW: Float32Array.from({ length: md * C }, (_, i) => i % 3),
    tposProjB: new Float32Array([0.5, -0.5]),
    C,
    memDim: md,
  };
  const plan = {
    spatial: [{ frame: 0, tPos: 0 }, { frame: 4, tPos: 2 }],
    pointers: [{ frame: 0, pos: 4 }],
    tDiffMax: 7,
  };
  const feats = (fr: number) => Float32Array.from({ length: N * md }, (_, i) => fr * 10 + i);
  const pe = () => new Float32Array(N * md).fill(1);
  const ptr = () => new Float32Array([7, 8, 9, 10]);
  const m = assembleMemory(plan, w, feats, pe, ptr);
  assert.equal(m.numObjPtrTokens, 2);
  assert.deepEqual(Array.from(m.memory), [0, 1, 2, 3, 4, 5, 40, 41, 42, 43, 44, 45, 7, 8, 9, 10]);
  // t_pos 0 -> maskmem_tpos_enc[2] = (500, 600); t_pos 2 -> [0] = (100, 200).
  assert.deepEqual(Array.from(m.memoryPos.subarray(0, 12)), [
    501,
    601,
    501,
    601,
    501,
    601,
    101,
    201,
    101,
    201,
    101,
    201,
  ]);
  const sine = pointerSinePe([4], 7, C);
  const proj = [0, 1].map((o) =>
    Math.fround(
      [0, 1, 2, 3].reduce((s, i) => s + sine[i] * w.tposProjW[o * C + i], 0) + w.tposProjB[o],
    )
  );
  assert.deepEqual(Array.from(m.memoryPos.subarray(12)), [...proj, ...proj]);
});
