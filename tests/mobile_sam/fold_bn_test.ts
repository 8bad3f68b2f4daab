/** Conv2d_BN folding on its own: conv then BatchNorm (eval) on the CPU in float64, against
 * the folded conv with bias; and the state-dict entry point's names and shapes. */
import assert from "node:assert/strict";
import { BN_EPS, foldBatchNorm, foldConvBn } from "../../src/mobile_sam/fold_bn.ts";
import type { HostTensor, StateDict } from "../../src/weights/types.ts";
import { assertClose, randomArray } from "../util/compare.ts";

/** Bias-free conv (groups = `groups`, stride 1, pad k/2) on a CHW input, float64. */
function conv(
  x: Float32Array,
  Cin: number,
  H: number,
  W: number,
  w: Float32Array,
  Cout: number,
  k: number,
  groups: number,
  bias: Float32Array | null,
): Float64Array {
  const pad = (k - 1) / 2, cinG = Cin / groups, coutG = Cout / groups;
  const out = new Float64Array(Cout * H * W);
  for (let o = 0; o < Cout; o++) {
    const g = Math.floor(o / coutG);
    for (let y = 0; y < H; y++) {
      for (let xx = 0; xx < W; xx++) {
        let s = bias ? bias[o] : 0;
        for (let ci = 0; ci < cinG; ci++) {
          for (let ky = 0; ky < k; ky++) {
            for (let kx = 0; kx < k; kx++) {
              const iy = y + ky - pad, ix = xx + kx - pad;
              if (iy < 0 || ix < 0 || iy >= H || ix >= W) continue;
              s += x[((g * cinG + ci) * H + iy) * W + ix] * w[((o * cinG + ci) * k + ky) * k + kx];
            }
          }
        }
        out[(o * H + y) * W + xx] = s;
      }
    }
  }
  return out;
}

Deno.test("foldBatchNorm: the folded conv equals conv then BatchNorm (eval), dense and depthwise", () => {
  for (const [Cin, Cout, k, groups] of [[3, 5, 3, 1], [6, 6, 3, 6], [4, 8, 1, 1]]) {
    const H = 5, W = 4;
    const x = randomArray(Cin * H * W, 1 + Cin, 2);
    const w = randomArray(Cout * (Cin / groups) * k * k, 2 + Cout, 0.7);
    const gamma = randomArray(Cout, 3, 0.5).map((v) => 1 + v);
    const beta = randomArray(Cout, 4, 0.3);
    const mean = randomArray(Cout, 5, 0.4);
    const variance = randomArray(Cout, 6, 0.9).map((v) => Math.exp(v));
    // Reference: y = (conv(x) - mean) / sqrt(var + eps) * gamma + beta.
    const y = conv(x, Cin, H, W, w, Cout, k, groups, null);
    const ref = y.map((v, i) => {
      const o = Math.floor(i / (H * W));
      return (v - mean[o]) / Math.sqrt(variance[o] + BN_EPS) * gamma[o] + beta[o];
    });
    const folded = foldBatchNorm(w, gamma, beta, mean, variance);
    const got = conv(x, Cin, H, W, folded.weight, Cout, k, groups, folded.bias);
    assertClose(got, ref, {
      atol: 1e-5,
      rtol: 1e-5,
      label: `fold ${Cin}->${Cout} k${k} g${groups}`,
    });
    // The running statistics matter (so the check above can fail).
    const unfolded = conv(x, Cin, H, W, w, Cout, k, groups, null);
    assert.ok(unfolded.some((v, i) => Math.abs(v - ref[i]) > 1e-2));
  }
});

Deno.test("foldConvBn reads <prefix>.c.weight and <prefix>.bn.*; mismatched sizes are refused", () => {
  const host = (name: string, shape: number[], data: Float32Array): HostTensor => ({
    name,
    dtype: "float32",
    shape,
    bytes: new Uint8Array(data.buffer),
  });
  const sd: StateDict = new Map();
  const add = (name: string, shape: number[], data: Float32Array) =>
    sd.set(name, host(name, shape, data));
  add("m.c.weight", [2, 1, 1, 1], new Float32Array([2, 3]));
  add("m.bn.weight", [2], new Float32Array([1, 2]));
  add("m.bn.bias", [2], new Float32Array([0.5, -1]));
  add("m.bn.running_mean", [2], new Float32Array([1, 0]));
  add("m.bn.running_var", [2], new Float32Array([3 - BN_EPS, 1 - BN_EPS]));
  const f = foldConvBn(sd, "m");
  assert.deepEqual(f.shape, [2, 1, 1, 1]);
  // channel 0: s = 1/sqrt(3); channel 1: s = 2.
  assertClose(f.weight, [2 / Math.sqrt(3), 6], { atol: 1e-6 });
  assertClose(f.bias, [0.5 - 1 / Math.sqrt(3), -1], { atol: 1e-6 });
  sd.delete("m.bn.running_var");
  assert.throws(() => foldConvBn(sd, "m"), /no tensor 'm.bn.running_var'/);
  assert.throws(
    () =>
      foldBatchNorm(
        new Float32Array(4),
        new Float32Array(2),
        new Float32Array(2),
        new Float32Array(3),
        new Float32Array(2),
      ),
    /do not agree/,
  );
});
