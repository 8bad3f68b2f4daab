/**
 * The attention variants added for issue #15 at SAM's real shapes (heads scaled down for
 * llvmpipe), against a float64 reference row by row: split-KV ("splitkv4", "splitkv8") where
 * it is meant to run (the decoder's 7 prompt tokens attending 4096 image tokens, every row
 * compared) and on ViT windowed / global attention with rel pos (sampled rows), and
 * "rows16w8", the CPU-adapter default. Awkward shapes of every variant are in
 * attention_test.ts ("every named variant").
 */
import assert from "node:assert/strict";
import { checkAttentionRows } from "./attention_rows_check.ts";
import { getContext } from "../../src/gpu/context.ts";
import { ATTENTION_CANDIDATES, defaultAttentionVariant } from "../../src/kernels/attention.ts";
import { parseSplitKvName } from "../../src/kernels/attention_splitkv.ts";

const ctx = await getContext();

Deno.test("attention split-KV: names, candidates, and the CPU default", () => {
  assert.equal(parseSplitKvName("splitkv4"), 4);
  assert.equal(parseSplitKvName("splitkv8"), 8);
  assert.equal(parseSplitKvName("splitkv5"), null);
  for (const n of ["splitkv4", "splitkv8", "rows16w8"]) assert.ok(ATTENTION_CANDIDATES.includes(n));
  assert.equal(defaultAttentionVariant(true), "rows16w8");
  // Scalar access: 4 rows (the scalar 16-row kernel compiles for minutes on llvmpipe).
  assert.equal(defaultAttentionVariant(true, false), "rows4w8");
  assert.equal(defaultAttentionVariant(false), "tiled");
});

Deno.test("attention split-KV: decoder token-to-image (7 queries x 4096 keys), every row", async () => {
  await checkAttentionRows(
    ctx,
    { batch: 1, heads: 8, headDim: 32, nq: 7, nk: 4096 },
    ["splitkv4", "splitkv8"],
    "all",
    10,
  );
});

Deno.test("attention split-KV / rows16w8: ViT windowed blocks (25 x 196 tokens, rel pos 14x14)", async () => {
  // ViT-B's head dim (64); 1 of its 12 heads.
  await checkAttentionRows(
    ctx,
    { batch: 25, heads: 1, headDim: 64, nq: 196, nk: 196, rel: { kH: 14, kW: 14 } },
    ["splitkv8", "rows16w8"],
    48,
    20,
  );
});

Deno.test("attention split-KV / rows16w8: global attention with rel pos (1024 tokens, scaled from 4096)", async () => {
  await checkAttentionRows(
    ctx,
    { batch: 1, heads: 2, headDim: 64, nq: 1024, nk: 1024, rel: { kH: 32, kW: 32 } },
    ["splitkv4", "rows16w8"],
    32,
    30,
  );
});
