import assert from "node:assert/strict";
import { assertClose, randomArray } from "../util/compare.ts";
import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { maxPool2x2 } from "../../src/kernels/max_pool.ts";

const ctx = await getContext();

/** nn.MaxPool2d(2, 2) (floor mode) over a strided [B, H, W, C] view, in float64. */
function maxPoolRef(
  x: Float32Array,
  B: number,
  H: number,
  W: number,
  C: number,
  offset: number,
  stride: number,
): Float64Array {
  const ho = Math.floor(H / 2), wo = Math.floor(W / 2);
  const out = new Float64Array(B * ho * wo * C);
  const at = (b: number, y: number, xx: number, c: number) =>
    x[offset + ((b * H + y) * W + xx) * stride + c];
  let i = 0;
  for (let b = 0; b < B; b++) {
    for (let oy = 0; oy < ho; oy++) {
      for (let ox = 0; ox < wo; ox++) {
        for (let c = 0; c < C; c++) {
          let m = -Infinity;
          for (const [dy, dx] of [[0, 0], [0, 1], [1, 0], [1, 1]]) {
            const v = at(b, 2 * oy + dy, 2 * ox + dx, c);
            m = Number.isNaN(v) || Number.isNaN(m) ? NaN : Math.max(m, v);
          }
          out[i++] = m;
        }
      }
    }
  }
  return out;
}

Deno.test("maxPool2x2 matches MaxPool2d(2, 2) on contiguous and strided (fused qkv) views", async () => {
  // [B, H, W, C, offset, rowStride]: contiguous vec4; odd sizes (floor mode drops the last
  // row / column); scalar channels; the q slice of a qkv buffer (offset 0, stride 3C) and the
  // k slice (offset C); Hiera's windows (B windows of 8x8 -> 4x4).
  const cases = [
    [1, 4, 6, 8, 0, 8],
    [2, 5, 7, 3, 0, 3],
    [1, 3, 3, 1, 0, 1],
    [4, 8, 8, 16, 0, 48],
    [4, 8, 8, 16, 16, 48],
    [3, 6, 6, 6, 2, 18],
  ];
  for (const [B, H, W, C, offset, stride] of cases) {
    const total = offset + B * H * W * stride;
    const x = randomArray(total, B * 1000 + H * 10 + W);
    const xt = tensorFrom(ctx, x, [total]);
    const y = maxPool2x2(ctx, xt, { batch: B, h: H, w: W, channels: C, offset, rowStride: stride });
    assert.deepEqual(y.shape, [B, Math.floor(H / 2), Math.floor(W / 2), C]);
    // A max selects one input: exact.
    assertClose(await y.read(), maxPoolRef(x, B, H, W, C, offset, stride), {
      atol: 0,
      shape: y.shape,
      label: `maxPool2x2 ${B}x${H}x${W}x${C} offset ${offset} stride ${stride}`,
    });
    xt.destroy();
    y.destroy();
  }
});

Deno.test("maxPool2x2 propagates NaN as torch does, and refuses bad views", async () => {
  const x = new Float32Array([1, NaN, 3, 4, -1, -2, -3, -4]); // [1, 2, 4, 1]: windows {1,NaN,-1,-2}, {3,4,-3,-4}
  const xt = tensorFrom(ctx, x, [1, 2, 4, 1]);
  const y = await maxPool2x2(ctx, xt, { batch: 1, h: 2, w: 4, channels: 1 }).read();
  assert.ok(Number.isNaN(y[0]), `NaN window gave ${y[0]}`);
  assert.equal(y[1], 4);
  assert.throws(() => maxPool2x2(ctx, xt, { batch: 1, h: 4, w: 4, channels: 1 }), /needs 16/);
  assert.throws(() => maxPool2x2(ctx, xt, { batch: 1, h: 1, w: 8, channels: 1 }), /too small/);
  assert.throws(
    () => maxPool2x2(ctx, xt, { batch: 1, h: 2, w: 2, channels: 2, rowStride: 1 }),
    /rowStride/,
  );
  xt.destroy();
});
