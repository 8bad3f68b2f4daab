import { assertClose, randomArray } from "../util/compare.ts";
import { getContext } from "../../src/gpu/context.ts";
import { Tensor, tensorFrom } from "../../src/gpu/tensor.ts";
import { windowPartition, windowUnpartition } from "../../src/kernels/window.ts";
import assert from "node:assert/strict";

const ctx = await getContext();

/** SAM's window_partition for batch 1, written as the pad + view + permute it is. */
function partitionRef(x: Float32Array, H: number, W: number, C: number, win: number) {
  const Hp = Math.ceil(H / win) * win, Wp = Math.ceil(W / win) * win;
  // F.pad with zeros: [Hp, Wp, C]
  const padded = new Float32Array(Hp * Wp * C);
  for (let y = 0; y < H; y++) {
    padded.set(x.subarray(y * W * C, (y + 1) * W * C), y * Wp * C);
  }
  // view [Hp/win, win, Wp/win, win, C] -> permute(0, 2, 1, 3, 4) -> [nWin, win*win, C]
  const nwy = Hp / win, nwx = Wp / win;
  const out = new Float32Array(Hp * Wp * C);
  let i = 0;
  for (let wy = 0; wy < nwy; wy++) {
    for (let wx = 0; wx < nwx; wx++) {
      for (let iy = 0; iy < win; iy++) {
        for (let ix = 0; ix < win; ix++) {
          const src = ((wy * win + iy) * Wp + wx * win + ix) * C;
          for (let c = 0; c < C; c++) out[i++] = padded[src + c];
        }
      }
    }
  }
  return out;
}

Deno.test("windowPartition matches SAM's pad + view + permute; unpartition inverts it", async () => {
  // [H, W, C, win]: no padding, padding in one or both dims, window larger than the image,
  // SAM's 64x64 grid with window 14 (padded to 70x70: 25 windows).
  // C = 4, 8 take the vec4 path.
  const cases = [[4, 6, 3, 2], [5, 7, 4, 3], [3, 2, 5, 4], [1, 1, 1, 1], [64, 64, 8, 14]];
  for (const [H, W, C, win] of cases) {
    const x = randomArray(H * W * C, H * 100 + W);
    const xt = tensorFrom(ctx, x, [H, W, C]);
    const parts = windowPartition(ctx, xt, win);
    const nWin = Math.ceil(H / win) * Math.ceil(W / win);
    assert.deepEqual(parts.shape, [nWin, win * win, C]);
    // Pure data movement: exact.
    assertClose(await parts.read(), partitionRef(x, H, W, C, win), {
      atol: 0,
      shape: parts.shape,
      label: `windowPartition ${H}x${W}x${C} win ${win}`,
    });
    const back = windowUnpartition(ctx, parts, win, H, W);
    assert.deepEqual(back.shape, [H, W, C]);
    assertClose(await back.read(), x, {
      atol: 0,
      shape: [H, W, C],
      label: `windowUnpartition ${H}x${W}x${C} win ${win}`,
    });
  }
});

Deno.test("windowUnpartition ignores what the attention wrote into padding tokens", async () => {
  // After attention the padded tokens hold non-zero values; SAM crops them away.
  const H = 5, W = 3, C = 2, win = 4;
  // 5x3 pads to 8x4: a 2x1 grid of 4x4 windows.
  const nWin = 2;
  const parts = randomArray(nWin * 16 * C, 9);
  const x = tensorFrom(ctx, parts, [nWin, 16, C]);
  const got = await windowUnpartition(ctx, x, win, H, W).read();
  const ref = new Float32Array(H * W * C);
  for (let y = 0; y < H; y++) {
    for (let xx = 0; xx < W; xx++) {
      const w = Math.floor(y / win), t = (y % win) * win + xx;
      for (let c = 0; c < C; c++) ref[(y * W + xx) * C + c] = parts[(w * 16 + t) * C + c];
    }
  }
  assertClose(got, ref, { atol: 0, shape: [H, W, C], label: "windowUnpartition crop" });
});

Deno.test("window kernels write into a caller's buffer when given one", async () => {
  const H = 5, W = 7, C = 4, win = 3;
  const x = randomArray(H * W * C, 77);
  const xt = tensorFrom(ctx, x, [H, W, C]);
  // Stale contents in the caller's buffers must be fully overwritten (padding included).
  const partsOut = tensorFrom(ctx, new Float32Array(6 * win * win * C).fill(7), [
    6 * win * win * C,
  ]);
  const parts = windowPartition(ctx, xt, win, partsOut);
  assert.equal(parts.buffer, partsOut.buffer);
  assertClose(await parts.read(), partitionRef(x, H, W, C, win), { atol: 0, label: "into out" });
  const backOut = tensorFrom(ctx, new Float32Array(H * W * C).fill(7), [H * W * C]);
  const back = windowUnpartition(ctx, parts, win, H, W, backOut);
  assert.equal(back.buffer, backOut.buffer);
  assertClose(await back.read(), x, { atol: 0, label: "unpartition into out" });
  assert.throws(
    () => windowPartition(ctx, xt, win, tensorFrom(ctx, new Float32Array(5), [5])),
    /out has 5 elements/,
  );
  const aliased = new Tensor(ctx, parts.buffer, [H, W, C]);
  assert.throws(() => windowUnpartition(ctx, parts, win, H, W, aliased), /share x's buffer/);
});

Deno.test("window kernels refuse bad shapes", async () => {
  const t = tensorFrom(ctx, new Float32Array(24), [2, 3, 4]);
  assert.throws(() => windowPartition(ctx, t.reshape([6, 4]), 2), /\[H, W, C\]/);
  assert.throws(() => windowPartition(ctx, t, 0), /positive integer/);
  assert.throws(() => windowUnpartition(ctx, t, 2, 4, 4), /nWin 4, win\*win 4/);
  await ctx.sync();
});
