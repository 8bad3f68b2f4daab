/**
 * conv2d (im2col + linear) against a direct-loop TypeScript convolution, on the shapes SAM
 * uses: the patch embedding (16x16 stride 16 from CHW), the neck's 1x1 and 3x3 pad-1 convs
 * (HWC, no bias) and the prompt encoder's 2x2 stride-2 mask downscaling convs. Sums of up to
 * a few hundred float32 products: |gpu - ref| <= 1e-5 + 1e-4 * |ref|.
 */
import assert from "node:assert/strict";
import { getContext } from "../../src/gpu/context.ts";
import { emptyTensor, tensorFrom } from "../../src/gpu/tensor.ts";
import { conv2d } from "../../src/kernels/conv2d.ts";
import { type ConvLayout, convOutSize } from "../../src/kernels/im2col.ts";
import { assertClose, randomArray } from "../util/compare.ts";

/** Direct convolution of CHW x with PyTorch weight [Cout, Cin, kh, kw]; returns HWC. */
function conv2dRef(
  x: Float32Array,
  [cin, h, w]: number[],
  weight: Float32Array,
  [cout, kh, kw]: number[],
  bias: Float32Array | null,
  stride: number,
  padding: number,
): Float32Array {
  const hout = convOutSize(h, kh, stride, padding), wout = convOutSize(w, kw, stride, padding);
  const out = new Float32Array(hout * wout * cout);
  for (let oy = 0; oy < hout; oy++) {
    for (let ox = 0; ox < wout; ox++) {
      for (let o = 0; o < cout; o++) {
        let s = bias ? bias[o] : 0;
        for (let c = 0; c < cin; c++) {
          for (let ky = 0; ky < kh; ky++) {
            const iy = oy * stride - padding + ky;
            if (iy < 0 || iy >= h) continue;
            for (let kx = 0; kx < kw; kx++) {
              const ix = ox * stride - padding + kx;
              if (ix < 0 || ix >= w) continue;
              s += x[(c * h + iy) * w + ix] * weight[((o * cin + c) * kh + ky) * kw + kx];
            }
          }
        }
        out[(oy * wout + ox) * cout + o] = s;
      }
    }
  }
  return out;
}

function chwToHwc(x: Float32Array, c: number, h: number, w: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let k = 0; k < c; k++) {
    for (let p = 0; p < h * w; p++) out[p * c + k] = x[k * h * w + p];
  }
  return out;
}

interface Case {
  name: string;
  layout: ConvLayout;
  cin: number;
  h: number;
  w: number;
  cout: number;
  k: number;
  stride: number;
  padding: number;
  bias: boolean;
}

const CASES: Case[] = [
  {
    name: "patch embed",
    layout: "chw",
    cin: 3,
    h: 64,
    w: 48,
    cout: 24,
    k: 16,
    stride: 16,
    padding: 0,
    bias: true,
  },
  {
    name: "neck 1x1",
    layout: "hwc",
    cin: 40,
    h: 6,
    w: 5,
    cout: 24,
    k: 1,
    stride: 1,
    padding: 0,
    bias: false,
  },
  {
    name: "neck 3x3 pad 1",
    layout: "hwc",
    cin: 24,
    h: 6,
    w: 5,
    cout: 16,
    k: 3,
    stride: 1,
    padding: 1,
    bias: false,
  },
  {
    name: "mask downscale 1",
    layout: "chw",
    cin: 1,
    h: 16,
    w: 14,
    cout: 4,
    k: 2,
    stride: 2,
    padding: 0,
    bias: true,
  },
  {
    name: "mask downscale 2",
    layout: "hwc",
    cin: 4,
    h: 8,
    w: 7,
    cout: 16,
    k: 2,
    stride: 2,
    padding: 0,
    bias: true,
  },
  {
    // SAM 2's Hiera patch embedding: 7x7, stride 4, pad 3 (odd sizes: the last window clips).
    name: "Hiera patch embed 7x7/4 pad 3",
    layout: "chw",
    cin: 3,
    h: 33,
    w: 30,
    cout: 12,
    k: 7,
    stride: 4,
    padding: 3,
    bias: true,
  },
  {
    name: "1x1 from chw",
    layout: "chw",
    cin: 8,
    h: 3,
    w: 4,
    cout: 5,
    k: 1,
    stride: 1,
    padding: 0,
    bias: true,
  },
];

Deno.test("conv2d matches a direct convolution on SAM's conv shapes", async () => {
  const ctx = await getContext();
  for (const c of CASES) {
    const x = randomArray(c.cin * c.h * c.w, c.cin + 3 * c.h);
    const weight = randomArray(c.cout * c.cin * c.k * c.k, 11 + c.cout, 0.2);
    const bias = c.bias ? randomArray(c.cout, 5) : null;
    const ref = conv2dRef(
      x,
      [c.cin, c.h, c.w],
      weight,
      [c.cout, c.k, c.k],
      bias,
      c.stride,
      c.padding,
    );
    const xData = c.layout === "chw" ? x : chwToHwc(x, c.cin, c.h, c.w);
    const xt = tensorFrom(ctx, xData, c.layout === "chw" ? [c.cin, c.h, c.w] : [c.h, c.w, c.cin]);
    const wt = tensorFrom(ctx, weight, [c.cout, c.cin, c.k, c.k]);
    const bt = bias ? tensorFrom(ctx, bias, [c.cout]) : null;
    const y = conv2d(ctx, xt, c.layout, wt, bt, { stride: c.stride, padding: c.padding });
    const hout = convOutSize(c.h, c.k, c.stride, c.padding);
    const wout = convOutSize(c.w, c.k, c.stride, c.padding);
    assert.deepEqual(y.shape, [hout, wout, c.cout], c.name);
    assertClose(await y.read(), ref, { atol: 1e-5, rtol: 1e-4, shape: y.shape, label: c.name });
    for (const t of [xt, wt, bt, y]) t?.destroy();
  }
});

Deno.test("conv2d writes into given out and scratch buffers", async () => {
  const ctx = await getContext();
  const [cin, h, w, cout] = [6, 5, 5, 7];
  const x = randomArray(cin * h * w, 1);
  const weight = randomArray(cout * cin * 9, 2, 0.3);
  const ref = conv2dRef(x, [cin, h, w], weight, [cout, 3, 3], null, 1, 1);
  const out = emptyTensor(ctx, [h * w * cout]);
  const scratch = emptyTensor(ctx, [h * w * cin * 9 + 100]);
  const xt = tensorFrom(ctx, x, [1, cin, h, w]);
  const y = conv2d(ctx, xt, "chw", tensorFrom(ctx, weight, [cout, cin, 3, 3]), null, {
    stride: 1,
    padding: 1,
    out,
    scratch,
  });
  assert.equal(y.buffer, out.buffer);
  assertClose(await out.read(), ref, { atol: 1e-5, rtol: 1e-4, label: "out buffer" });
});

Deno.test("conv2d refuses mismatched weights", async () => {
  const ctx = await getContext();
  const x = tensorFrom(ctx, new Float32Array(3 * 8 * 8), [3, 8, 8]);
  const w = tensorFrom(ctx, new Float32Array(4 * 2 * 4), [4, 2, 2, 2]);
  assert.throws(() => conv2d(ctx, x, "chw", w, null, { stride: 2, padding: 0 }), /expects 2/);
  const w3 = tensorFrom(ctx, new Float32Array(4 * 3 * 4), [4, 3, 2, 2]);
  const b = tensorFrom(ctx, new Float32Array(3), [3]);
  assert.throws(
    () => conv2d(ctx, x, "chw", w3, b, { stride: 2, padding: 0 }),
    /bias must be \[4\]/,
  );
  assert.throws(
    () => conv2d(ctx, x, "chw", w3.reshape([4, 12]), null, { stride: 2, padding: 0 }),
    /weight must be/,
  );
});
