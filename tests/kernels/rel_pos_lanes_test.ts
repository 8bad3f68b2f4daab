/**
 * rel_pos_lanes.ts against the float64 relH / relW reference, at odd sizes (head dim not a
 * multiple of 4, grids not multiples of the 8 lanes, unequal q / k grids, an unaligned q
 * view) and at sam-mini's windowed shape, scaled down in batch.
 */
import { assertClose, randomArray } from "../util/compare.ts";
import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom, tensorFromF16 } from "../../src/gpu/tensor.ts";
import { relPosBias, type RelPosVariant } from "../../src/kernels/rel_pos.ts";
import assert from "node:assert/strict";
import { relPosBiasRef } from "./rel_pos_ref.ts";

const ctx = await getContext();

const cases = [
  // batch, heads, D, qH, qW, kH, kW, offset, extra stride
  { batch: 2, heads: 3, D: 10, qH: 4, qW: 5, kH: 4, kW: 5, offset: 2, pad: 1 },
  { batch: 1, heads: 2, D: 33, qH: 9, qW: 11, kH: 6, kW: 3, offset: 1, pad: 3 },
  // sam-mini windowed: 14x14 windows, head dim 64, q inside a fused qkv row.
  { batch: 2, heads: 4, D: 64, qH: 14, qW: 14, kH: 14, kW: 14, offset: 0, pad: 0 },
  // Sides over one lanes chunk (8 invocations x 4 rows) and not a multiple of it.
  { batch: 1, heads: 2, D: 16, qH: 37, qW: 41, kH: 5, kW: 7, offset: 0, pad: 2 },
];

for (const variant of ["lanes", "flat"] as RelPosVariant[]) {
  Deno.test(`relPosBias ${variant} matches the float64 reference`, async () => {
    for (const c of cases) {
      const { batch, heads, D, qH, qW, kH, kW, offset } = c;
      const C = heads * D, stride = 3 * C + c.pad, nq = qH * qW;
      const qkv = randomArray(offset + batch * nq * stride, 7 + D);
      const rh = randomArray(qH * kH * D, kH), rw = randomArray(qW * kW * D, kW + 50);
      const ref = relPosBiasRef(qkv, offset, stride, batch, heads, D, qH, qW, rh, rw, kH, kW);
      const label = `${variant} b${batch} h${heads} d${D} q${qH}x${qW} k${kH}x${kW}`;
      const got = relPosBias(
        ctx,
        { tensor: tensorFrom(ctx, qkv, [qkv.length]), offset, rowStride: stride },
        { batch, heads, headDim: D, nq, nk: kH * kW },
        qH,
        qW,
        tensorFrom(ctx, rh, [qH, kH, D]),
        tensorFrom(ctx, rw, [qW, kW, D]),
        kH,
        kW,
        undefined,
        variant,
      );
      assert.deepEqual(got.relH.shape, [batch * heads, nq, kH]);
      // Dot products of up to 64 terms of magnitude <= 1: float32 error well under 1e-4.
      const tol = { atol: 2e-5, rtol: 1e-5 };
      assertClose(await got.relH.read(), ref.relH, { ...tol, label: `relH ${label}` });
      assertClose(await got.relW.read(), ref.relW, { ...tol, label: `relW ${label}` });
    }
  });
}

Deno.test("relPosBias lanes with f16 q matches the reference on the rounded q", async () => {
  if (!ctx.gpu.hasF16) {
    console.log("SKIP: adapter has no shader-f16");
    return;
  }
  const batch = 1, heads = 2, D = 20, qH = 5, qW = 9, kH = 5, kW = 9, stride = 3 * heads * D;
  const nq = qH * qW;
  const qkv = randomArray(batch * nq * stride, 3);
  const qt = tensorFromF16(ctx, qkv, [qkv.length]);
  const rounded = new Float32Array(await qt.read());
  const rh = randomArray(qH * kH * D, 4), rw = randomArray(qW * kW * D, 5);
  const ref = relPosBiasRef(rounded, 0, stride, batch, heads, D, qH, qW, rh, rw, kH, kW);
  const got = relPosBias(
    ctx,
    { tensor: qt, offset: 0, rowStride: stride },
    { batch, heads, headDim: D, nq, nk: kH * kW },
    qH,
    qW,
    tensorFrom(ctx, rh, [qH, kH, D]),
    tensorFrom(ctx, rw, [qW, kW, D]),
    kH,
    kW,
    undefined,
    "lanes",
  );
  const tol = { atol: 2e-5, rtol: 1e-5 };
  assertClose(await got.relH.read(), ref.relH, { ...tol, label: "relH f16 q" });
  assertClose(await got.relW.read(), ref.relW, { ...tol, label: "relW f16 q" });
});
