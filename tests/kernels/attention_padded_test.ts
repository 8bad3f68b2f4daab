/**
 * The padded-tile attention variants (attention_padded.ts): "tiledpad" (padded tiles, serial
 * softmax), "tiledpar" (tree-reduced parallel softmax) and, where the device has
 * `subgroups`, "tiledsg" (subgroup softmax), against a float64 reference row by row at SAM's
 * real shapes (heads scaled down for llvmpipe): ViT windowed attention (25 windows of 14 x 14
 * tokens, head dim 64, rel pos), global attention with rel pos scaled from 4096 to 1024
 * tokens, SAM 2 Hiera's mask-unit windows (head dim 96, with and without a pooled query), and
 * odd sizes (scalar loads, ragged query and key tiles, a non-square rel-pos grid, large
 * scores that make every key tile rescale the running sums).
 *
 * Deno's lavapipe has no `subgroups`: there the test checks that "tiledsg" is neither offered
 * nor accepted. To run the subgroup variant on a CPU host, use Dawn on SwiftShader:
 *   WGSAM_GPU=dawn VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json \
 *     deno test --allow-all tests/kernels/attention_padded_test.ts
 */
import assert from "node:assert/strict";
import { checkAttentionRows } from "./attention_rows_check.ts";
import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import {
  attention,
  ATTENTION_CANDIDATES,
  attentionCandidates,
} from "../../src/kernels/attention.ts";
import {
  paddedRows,
  paddedWorkgroupBytes,
  parsePaddedName,
} from "../../src/kernels/attention_padded.ts";

const ctx = await getContext();
const VARIANTS = ["tiledpad", "tiledpar", ...(ctx.gpu.hasSubgroups ? ["tiledsg"] : [])];
console.log(
  `${ctx.gpu.description} (${ctx.gpu.provider}): subgroups ${
    ctx.gpu.hasSubgroups ? "yes" : "no"
  }; checking ${VARIANTS.join(", ")}`,
);

Deno.test("attention padded tiles: names, candidates, query blocks, subgroup gating", () => {
  assert.equal(parsePaddedName("tiledpad"), "serial");
  assert.equal(parsePaddedName("tiledpar"), "tree");
  assert.equal(parsePaddedName("tiledsg"), "subgroup");
  assert.equal(parsePaddedName("tiled"), null);
  for (const n of ["tiledpad", "tiledpar"]) {
    assert.ok(ATTENTION_CANDIDATES.includes(n));
    assert.ok(attentionCandidates(true).includes(n)); // f16 q, k, v too
  }
  // "tiledsg": offered only with subgroups, and f32 only.
  assert.ok(!ATTENTION_CANDIDATES.includes("tiledsg"));
  assert.ok(!attentionCandidates(false, false).includes("tiledsg"));
  assert.ok(attentionCandidates(false, true).includes("tiledsg"));
  assert.ok(!attentionCandidates(true, true).includes("tiledsg"));
  // Query blocks: ViT windows (196 tokens) 5 x 40 rows, global (4096) 32, decoder tokens 8,
  // Hiera's 7 x 7 windows 4 x 16 = 64 (ties go to the larger block: 2 x 32).
  const d64 = { softmax: "tree" as const, c: 2, keys: 4 };
  assert.equal(paddedRows(196, d64, 32768), 5);
  assert.equal(paddedRows(4096, d64, 32768), 4);
  assert.equal(paddedRows(7, d64, 32768), 1);
  assert.equal(paddedRows(49, d64, 32768), 4);
  // ... within the workgroup-memory limit (head dim 128: 40 rows need more than 32 KB, so
  // 196 tokens take 13 x 16 = 208 rows, the fewest of 16, 24 and 32).
  const d128 = { softmax: "tree" as const, c: 4, keys: 2 };
  assert.ok(paddedWorkgroupBytes({ ...d128, rows: 5 }) > 32768);
  assert.equal(paddedRows(196, d128, 32768), 2);
  assert.throws(() => paddedRows(196, d128, 1024), /workgroup memory/);
});

Deno.test("attention tiledsg: refused with a clear error where the device has no subgroups", () => {
  if (ctx.gpu.hasSubgroups) return; // checked numerically below
  const t = tensorFrom(ctx, new Float32Array(64), [64]);
  const view = { tensor: t, offset: 0, rowStride: 8 };
  const dims = { batch: 1, heads: 2, headDim: 4, nq: 8, nk: 8 };
  assert.throws(
    () => attention(ctx, view, view, view, dims, { variant: "tiledsg" }),
    /tiledsg.*'subgroups'/,
  );
  t.destroy();
});

Deno.test("attention padded: ViT windowed blocks (25 x 196 tokens, head dim 64, rel pos 14x14)", async () => {
  // ViT-B/L's head dim, 1 of their heads; the last query block is 4 padded rows.
  await checkAttentionRows(
    ctx,
    { batch: 25, heads: 1, headDim: 64, nq: 196, nk: 196, rel: { kH: 14, kW: 14 } },
    VARIANTS,
    48,
    20,
  );
});

Deno.test("attention padded: global attention with rel pos (1024 tokens, scaled from 4096)", async () => {
  await checkAttentionRows(
    ctx,
    { batch: 1, heads: 2, headDim: 64, nq: 1024, nk: 1024, rel: { kH: 32, kW: 32 } },
    VARIANTS,
    32,
    30,
  );
});

Deno.test("attention padded: SAM 2 Hiera mask-unit windows (head dim 96, pooled queries)", async () => {
  // Stage-1 windows of 8 x 8 tokens; a stage transition's 2x2-pooled queries (4 x 4 of the
  // 8 x 8 window); stage 4's 7 x 7 windows.
  await checkAttentionRows(
    ctx,
    { batch: 4, heads: 1, headDim: 96, nq: 64, nk: 64 },
    VARIANTS,
    "all",
    40,
  );
  await checkAttentionRows(
    ctx,
    { batch: 4, heads: 2, headDim: 96, nq: 16, nk: 64 },
    VARIANTS,
    "all",
    41,
  );
  await checkAttentionRows(
    ctx,
    { batch: 2, heads: 2, headDim: 96, nq: 49, nk: 49 },
    VARIANTS,
    "all",
    42,
  );
});

Deno.test("attention padded: odd sizes (scalar loads, ragged tiles, 5x7 rel pos, big scores)", async () => {
  await checkAttentionRows(
    ctx,
    { batch: 2, heads: 3, headDim: 14, nq: 37, nk: 23 },
    VARIANTS,
    "all",
    50,
  );
  await checkAttentionRows(
    ctx,
    { batch: 2, heads: 1, headDim: 32, nq: 35, nk: 35, rel: { kH: 5, kW: 7 } },
    VARIANTS,
    "all",
    51,
  );
  // Decoder-sized: 7 queries (one row per thread), 7 keys.
  await checkAttentionRows(
    ctx,
    { batch: 1, heads: 2, headDim: 32, nq: 7, nk: 7 },
    VARIANTS,
    "all",
    52,
  );
  // Scores up to about +-2000: exp overflows without the running max; the maximum rises in
  // later key tiles so the rescale of O and of the sums is exercised.
  await checkAttentionRows(
    ctx,
    { batch: 1, heads: 2, headDim: 32, nq: 20, nk: 150, scale: 30 },
    VARIANTS,
    "all",
    53,
    1e-4,
  );
});
