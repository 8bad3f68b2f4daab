import assert from "node:assert/strict";
import { assertClose, randomArray } from "../util/compare.ts";
import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { upsampleNearest2x } from "../../src/kernels/upsample_nearest.ts";

const ctx = await getContext();

/** F.interpolate(scale_factor=2.0, mode="nearest") on [H, W, C] tokens: src = floor(dst * 0.5). */
function upsampleRef(x: Float32Array, H: number, W: number, C: number, addend?: Float32Array) {
  const out = new Float32Array(4 * H * W * C);
  for (let y = 0; y < 2 * H; y++) {
    for (let xx = 0; xx < 2 * W; xx++) {
      for (let c = 0; c < C; c++) {
        const i = (y * 2 * W + xx) * C + c;
        const v = x[(Math.floor(y * 0.5) * W + Math.floor(xx * 0.5)) * C + c];
        out[i] = addend ? Math.fround(addend[i] + v) : v;
      }
    }
  }
  return out;
}

Deno.test("upsampleNearest2x matches torch's nearest 2x, with and without the fused add", async () => {
  // [H, W, C]: vec4 channels, scalar channels, non-square, SAM 2's 32 -> 64 level at width 32.
  for (const [H, W, C] of [[2, 3, 4], [3, 2, 3], [1, 1, 1], [32, 32, 32]]) {
    const x = randomArray(H * W * C, H * 7 + W * 3 + C);
    const addend = randomArray(4 * H * W * C, 99 + C);
    const xt = tensorFrom(ctx, x, [H, W, C]);
    const at = tensorFrom(ctx, addend, [2 * H, 2 * W, C]);
    const up = upsampleNearest2x(ctx, xt);
    assert.deepEqual(up.shape, [2 * H, 2 * W, C]);
    assertClose(await up.read(), upsampleRef(x, H, W, C), {
      atol: 0,
      shape: up.shape,
      label: `upsample ${H}x${W}x${C}`,
    });
    // One float32 add, as torch's lateral + top_down: exact.
    const sum = upsampleNearest2x(ctx, xt, { addend: at });
    assertClose(await sum.read(), upsampleRef(x, H, W, C, addend), {
      atol: 0,
      shape: sum.shape,
      label: `upsample+add ${H}x${W}x${C}`,
    });
    assert.throws(() => upsampleNearest2x(ctx, xt, { addend: xt }), /addend has/);
    for (const t of [xt, at, up, sum]) t.destroy();
  }
});
