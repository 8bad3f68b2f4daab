import assert from "node:assert/strict";
import { assertClose, randomArray } from "../util/compare.ts";
import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { addLayerNorm } from "../../src/kernels/add_layer_norm.ts";
import type { LayerNormVariant } from "../../src/kernels/layer_norm.ts";

/**
 * Float64 reference: y = LayerNorm(x + r) (two-pass mean and biased variance, as torch's
 * nn.LayerNorm), yPe = y + pe; r and pe repeat over x's leading dims (element i reads
 * r[i % r.length]).
 */
function addLayerNormRef(
  x: Float32Array,
  r: Float32Array | null,
  w: Float32Array,
  b: Float32Array,
  pe: Float32Array | null,
  C: number,
  eps: number,
): { y: Float64Array; yPe: Float64Array | null } {
  const y = new Float64Array(x.length);
  const v = new Float64Array(C);
  for (let row = 0; row < x.length / C; row++) {
    const base = row * C;
    let s = 0;
    for (let c = 0; c < C; c++) {
      v[c] = x[base + c] + (r ? r[(base + c) % r.length] : 0);
      s += v[c];
    }
    const mean = s / C;
    let q = 0;
    for (let c = 0; c < C; c++) q += (v[c] - mean) ** 2;
    const sd = Math.sqrt(q / C + eps);
    for (let c = 0; c < C; c++) y[base + c] = ((v[c] - mean) / sd) * w[c] + b[c];
  }
  const yPe = pe ? y.map((val, i) => val + pe[i % pe.length]) : null;
  return { y, yPe };
}

async function check(
  shape: number[],
  opts: { residualRows?: number; peRows?: number; offset?: number },
  seed: number,
  variant?: LayerNormVariant,
) {
  const ctx = await getContext();
  const C = shape[shape.length - 1];
  const n = shape.reduce((a, b) => a * b, 1);
  const eps = 1e-5;
  const x = randomArray(n, seed).map((v) => v + (opts.offset ?? 0));
  const r = opts.residualRows ? randomArray(opts.residualRows * C, seed + 1) : null;
  const pe = opts.peRows ? randomArray(opts.peRows * C, seed + 2) : null;
  const w = randomArray(C, seed + 3), b = randomArray(C, seed + 4);
  const up = (a: Float32Array, s: number[]) => tensorFrom(ctx, a, s);
  const tensors = {
    x: up(x, shape),
    r: r ? up(r, [opts.residualRows!, C]) : undefined,
    pe: pe ? up(pe, [opts.peRows!, C]) : undefined,
    w: up(w, [C]),
    b: up(b, [C]),
  };
  const out = addLayerNorm(ctx, tensors.x, tensors.w, tensors.b, eps, {
    residual: tensors.r,
    pe: tensors.pe,
    variant,
  });
  const ref = addLayerNormRef(x, r, w, b, pe, C, eps);
  const label = `addLayerNorm ${variant ?? "default"} [${shape}] residual rows ${
    opts.residualRows ?? "-"
  } pe rows ${opts.peRows ?? "-"}`;
  // Normalised values are O(1): |gpu - ref| <= 2e-5 + 1e-5 |ref|, as layerNorm's test.
  assertClose(await out.y.read(), ref.y, { atol: 2e-5, rtol: 1e-5, shape, label: `${label} y` });
  assert.equal(out.yPe === null, pe === null, `${label}: yPe exactly when pe is given`);
  if (out.yPe) {
    assertClose(await out.yPe.read(), ref.yPe!, {
      atol: 2e-5,
      rtol: 1e-5,
      shape,
      label: `${label} y + pe`,
    });
  }
  for (const t of [...Object.values(tensors), out.y, out.yPe]) t?.destroy();
}

for (const variant of ["warp", "rows"] as const) {
  Deno.test(`addLayerNorm ${variant} matches float64 LayerNorm(x + residual) and + pe, broadcast over leading dims`, async () => {
    // Decoder token chains: (B, Nt, D) with query_pe of the same shape.
    await check([1, 7, 256], { peRows: 7 }, 1, variant);
    await check([3, 9, 32], { peRows: 27 }, 2, variant); // sam-tiny width, a batch of 3
    // Image side: key_pe (HW, D) broadcast over a batch, and the shared src as the residual.
    await check([2, 64, 256], { residualRows: 64, peRows: 64, offset: 100 }, 3, variant);
    await check([1, 16, 32], { residualRows: 16 }, 4, variant); // residual, no pe
    await check([5, 3], {}, 5, variant); // plain LayerNorm, a ragged width
    await check([4, 257], { peRows: 4 }, 6, variant); // past 8 values per thread
    await check([2, 1280], { residualRows: 1, peRows: 2 }, 7, variant); // the widest supported
    // Rows not a multiple of either variant's workgroup (8 or 64 rows), ViT widths.
    await check([67, 768], { residualRows: 67, offset: 100 }, 8, variant);
    await check([131, 1280], { peRows: 131 }, 9, variant);
    await check([1, 1], { peRows: 1 }, 10, variant); // one value: y = bias
  });
}

Deno.test("addLayerNorm: bad widths and broadcasts are refused with the shapes", async () => {
  const ctx = await getContext();
  const x = tensorFrom(ctx, new Float32Array(12), [4, 3]);
  const w = tensorFrom(ctx, new Float32Array(3), [3]);
  const pe = tensorFrom(ctx, new Float32Array(5), [5]);
  const wide = tensorFrom(ctx, new Float32Array(1281), [1, 1281]);
  try {
    assert.throws(
      () => addLayerNorm(ctx, x, w, w, 1e-5, { pe }),
      /pe \[5\] has 5 elements, which do not divide x's 12/,
    );
    assert.throws(() => addLayerNorm(ctx, x, pe, w, 1e-5), /need C=3/);
    assert.throws(() => addLayerNorm(ctx, wide, w, w, 1e-5), /C=1281 is over the supported 1280/);
  } finally {
    for (const t of [x, w, pe, wide]) t.destroy();
  }
});
