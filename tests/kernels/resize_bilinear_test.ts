import assert from "node:assert/strict";
import { assertClose, randomArray } from "../util/compare.ts";
import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import {
  maskWordsPerPlane,
  resizeBilinear,
  samPostprocess,
} from "../../src/kernels/resize_bilinear.ts";

const f = Math.fround;

/** PyTorch's CPU upsample_bilinear2d (align_corners=False) in float32 arithmetic, one axis. */
function axisRef(nIn: number, nOut: number) {
  const scale = f(f(nIn) / f(nOut));
  const i0 = new Int32Array(nOut), i1 = new Int32Array(nOut);
  const l0 = new Float32Array(nOut), l1 = new Float32Array(nOut);
  for (let d = 0; d < nOut; d++) {
    const src = Math.max(f(f(scale * (d + 0.5)) - 0.5), 0);
    const a = Math.floor(src);
    i0[d] = a;
    i1[d] = a < nIn - 1 ? a + 1 : a;
    l1[d] = f(src - a);
    l0[d] = f(1 - l1[d]);
  }
  return { i0, i1, l0, l1 };
}

/** F.interpolate(x, (outH, outW), mode="bilinear", align_corners=False) on [planes, H, W]. */
export function resizeRef(
  x: Float32Array,
  planes: number,
  h: number,
  w: number,
  outH: number,
  outW: number,
): Float32Array {
  const ay = axisRef(h, outH), ax = axisRef(w, outW);
  const y = new Float32Array(planes * outH * outW);
  for (let p = 0; p < planes; p++) {
    for (let r = 0; r < outH; r++) {
      const r0 = (p * h + ay.i0[r]) * w, r1 = (p * h + ay.i1[r]) * w;
      for (let c = 0; c < outW; c++) {
        const t0 = f(f(x[r0 + ax.i0[c]] * ax.l0[c]) + f(x[r0 + ax.i1[c]] * ax.l1[c]));
        const t1 = f(f(x[r1 + ax.i0[c]] * ax.l0[c]) + f(x[r1 + ax.i1[c]] * ax.l1[c]));
        y[(p * outH + r) * outW + c] = f(f(t0 * ay.l0[r]) + f(t1 * ay.l1[r]));
      }
    }
  }
  return y;
}

/** SAM's postprocess_masks done as PyTorch does it: two resizes and a crop. */
function postprocessRef(
  x: Float32Array,
  planes: number,
  low: number,
  imgSize: number,
  inH: number,
  inW: number,
  outH: number,
  outW: number,
): Float32Array {
  const big = resizeRef(x, planes, low, low, imgSize, imgSize);
  const crop = new Float32Array(planes * inH * inW);
  for (let p = 0; p < planes; p++) {
    for (let r = 0; r < inH; r++) {
      crop.set(
        big.subarray((p * imgSize + r) * imgSize, (p * imgSize + r) * imgSize + inW),
        (p * inH + r) * inW,
      );
    }
  }
  return resizeRef(crop, planes, inH, inW, outH, outW);
}

Deno.test("resizeBilinear matches PyTorch's rule: up, down, non-square, 1-pixel axes", async () => {
  const ctx = await getContext();
  for (
    const [planes, h, w, oh, ow] of [[2, 4, 4, 16, 16], [3, 7, 5, 3, 11], [1, 1, 6, 4, 2], [
      2,
      16,
      16,
      64,
      40,
    ]]
  ) {
    const x = randomArray(planes * h * w, 3 + h, 10);
    const got = await resizeBilinear(ctx, tensorFrom(ctx, x, [planes, h, w]), oh, ow).read();
    // Convex combinations of values up to 10: float32 rounding differences only.
    assertClose(got, resizeRef(x, planes, h, w, oh, ow), {
      atol: 1e-5,
      shape: [planes, oh, ow],
      label: `resize ${h}x${w}->${oh}x${ow}`,
    });
  }
});

Deno.test("samPostprocess equals resize -> crop -> resize, as logits and as packed masks", async () => {
  const ctx = await getContext();
  // sam-tiny's geometry (64 -> 256, crop 171x256, to 107x160) and an upscaling one.
  for (
    const [planes, low, imgSize, inH, inW, outH, outW] of [
      [3, 64, 256, 171, 256, 107, 160],
      [2, 16, 64, 64, 43, 150, 101],
    ]
  ) {
    const x = randomArray(planes * low * low, 5 + low, 20);
    const lowT = tensorFrom(ctx, x, [planes, low, low]);
    const geo = {
      imgSize,
      inputSize: [inH, inW] as [number, number],
      originalSize: [outH, outW] as [number, number],
    };
    const ref = postprocessRef(x, planes, low, imgSize, inH, inW, outH, outW);
    const got = await samPostprocess(ctx, lowT, geo, "logits").read();
    assertClose(got, ref, {
      atol: 5e-5,
      shape: [planes, outH, outW],
      label: `postprocess ${low}->${imgSize}->${inH}x${inW}->${outH}x${outW}`,
    });
    // A plane range reads planes 1.. of the input and writes them from 0.
    const tail = await samPostprocess(ctx, lowT, geo, "logits", undefined, {
      first: 1,
      count: planes - 1,
    }).read();
    assertClose(tail, ref.subarray(outH * outW), { atol: 5e-5, label: "postprocess planes 1.." });
    const bitsT = samPostprocess(ctx, lowT, geo, "bits");
    const words = new Uint32Array(await ctx.read(bitsT.buffer, 0, bitsT.size * 4));
    const perPlane = maskWordsPerPlane([outH, outW]);
    let differ = 0, nearZero = 0;
    for (let p = 0; p < planes; p++) {
      for (let q = 0; q < outH * outW; q++) {
        const bit = (words[p * perPlane + (q >> 5)] >>> (q & 31)) & 1;
        const r = ref[p * outH * outW + q];
        if (bit !== (r > 0 ? 1 : 0)) {
          differ++;
          if (Math.abs(r) < 1e-4) nearZero++;
        }
      }
    }
    assert.equal(differ, nearZero, `${differ} mask pixels differ, only ${nearZero} near 0`);
  }
});

Deno.test("samPostprocess refuses a crop larger than imgSize", async () => {
  const ctx = await getContext();
  const x = tensorFrom(ctx, new Float32Array(16), [1, 4, 4]);
  assert.throws(
    () => samPostprocess(ctx, x, { imgSize: 16, inputSize: [17, 16], originalSize: [4, 4] }),
    /exceeds imgSize/,
  );
});
