import assert from "node:assert/strict";
import { assertClose, randomArray } from "../util/compare.ts";
import { getContext } from "../../src/gpu/context.ts";
import { emptyTensor, tensorFrom } from "../../src/gpu/tensor.ts";
import {
  defaultLayerNormVariant,
  layerNorm,
  type LayerNormVariant,
} from "../../src/kernels/layer_norm.ts";

const VARIANTS: LayerNormVariant[] = ["warp", "rows"];

/** torch nn.LayerNorm in float64: two-pass mean and biased variance. */
function layerNormRef(
  x: Float32Array,
  w: Float32Array,
  b: Float32Array,
  C: number,
  eps: number,
): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / C; r++) {
    let s = 0;
    for (let c = 0; c < C; c++) s += x[r * C + c];
    const mean = s / C;
    let q = 0;
    for (let c = 0; c < C; c++) q += (x[r * C + c] - mean) ** 2;
    const sd = Math.sqrt(q / C + eps);
    for (let c = 0; c < C; c++) out[r * C + c] = ((x[r * C + c] - mean) / sd) * w[c] + b[c];
  }
  return out;
}

async function check(
  rows: number,
  C: number,
  eps: number,
  offset: number,
  seed: number,
  variant?: LayerNormVariant,
) {
  const ctx = await getContext();
  // offset shifts every value: a one-pass E[x^2] - E[x]^2 variance fails at offset 100.
  const x = randomArray(rows * C, seed).map((v) => v + offset);
  const w = randomArray(C, seed + 1), b = randomArray(C, seed + 2);
  const y = layerNorm(
    ctx,
    tensorFrom(ctx, x, [rows, C]),
    tensorFrom(ctx, w, [C]),
    tensorFrom(ctx, b, [C]),
    eps,
    undefined,
    variant,
  );
  const got = await y.read();
  y.destroy();
  // Tolerance: |gpu - ref| <= 2e-5 + 1e-5 |ref| (normalised values are O(1); the offset-100
  // rows lose ~log2(100) bits to float32 inputs centred far from 0).
  assertClose(got, layerNormRef(x, w, b, C, eps), {
    atol: 2e-5,
    rtol: 1e-5,
    shape: [rows, C],
    label: `layerNorm ${variant ?? "default"} rows=${rows} C=${C} eps=${eps} offset=${offset}`,
  });
}

for (const variant of VARIANTS) {
  Deno.test(`layerNorm ${variant} matches float64 torch semantics on awkward and SAM widths`, async () => {
    const cases: [number, number, number, number][] = [
      [1, 1, 1e-5, 0], // a single value normalises to the bias
      [3, 7, 1e-5, 0], // (C % 16 != 0: the scalar "rows" kernel; 32, 256, ...: its vec4 one)
      [9, 32, 1e-6, 0], // sam-tiny width; 9 rows: a ragged 8-row workgroup
      [7, 256, 1e-5, 100], // decoder width, large mean
      [65, 257, 1e-6, 0], // just over 8 values per thread; rows past one 64-row group
      [33, 768, 1e-6, 0], // ViT-B
      [5, 1024, 1e-6, 100], // ViT-L, large mean
      [17, 1280, 1e-6, 0], // ViT-H
      [3, 1281, 1e-6, 0], // just over the 32-thread rows
      [2, 8192, 1e-6, 0], // the widest supported
      [130, 1280, 1e-6, 100], // ViT-H, large mean, a ragged last 64-row group
    ];
    let seed = 1;
    for (const [rows, C, eps, offset] of cases) await check(rows, C, eps, offset, seed++, variant);
  });
}

Deno.test("layerNorm: rows variant by default on software adapters only", async () => {
  const ctx = await getContext();
  assert.equal(defaultLayerNormVariant(true), "rows");
  assert.equal(defaultLayerNormVariant(false), "warp");
  // The default path (no variant given) on this adapter, whichever it is.
  await check(67, 256, 1e-5, 100, 40);
  console.log(
    `adapter software=${ctx.gpu.software}: default ${defaultLayerNormVariant(ctx.gpu.software)}`,
  );
});

Deno.test("layerNorm: eps is applied (constant rows give bias), 4096 tokens x 256", async () => {
  const ctx = await getContext();
  const C = 256, rows = 4096;
  for (const variant of VARIANTS) await check(rows, C, 1e-5, 0, 11, variant);
  // Constant rows: zero variance, so y = 0 / sqrt(eps) * w + b = b exactly.
  const x = new Float32Array(2 * C).fill(3);
  const w = randomArray(C, 11), b = randomArray(C, 12);
  const y = layerNorm(
    ctx,
    tensorFrom(ctx, x, [2, C]),
    tensorFrom(ctx, w, [C]),
    tensorFrom(ctx, b, [C]),
    1e-6,
  );
  assertClose(await y.read(), [...b, ...b], { atol: 0, label: "constant rows" });
  assert.throws(
    () => layerNorm(ctx, y, emptyTensor(ctx, [3]), emptyTensor(ctx, [C]), 1e-6),
    /need C=256/,
  );
  assert.throws(
    () =>
      layerNorm(
        ctx,
        emptyTensor(ctx, [1, 9000]),
        emptyTensor(ctx, [9000]),
        emptyTensor(ctx, [9000]),
        1e-6,
      ),
    /over the supported/,
  );
});
