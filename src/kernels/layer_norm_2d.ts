/**
 * SAM's LayerNorm2d on NCHW: for every pixel, normalise the C channel values with their mean
 * and biased variance (two passes, as the official u = x.mean(1); s = (x - u)^2.mean(1)),
 * then y = weight[c] * (x - u) / sqrt(s + eps) + bias[c].
 *
 * One thread per pixel walks the channels; neighbouring threads take neighbouring pixels,
 * so every channel step is one coalesced read across the workgroup.
 */
import { type GpuContext, grid, type KernelSpec } from "../gpu/context.ts";
import { Params, type Tensor } from "../gpu/tensor.ts";
import { normOutput } from "./layer_norm.ts";

const WG = 256;

const LAYER_NORM_2D: KernelSpec = {
  name: "layer_norm_2d_f32",
  bindings: ["uniform", "read", "read", "read", "write"],
  code: () => /* wgsl */ `
struct P { hw: u32, C: u32, total: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * ${WG}u;
  if (i >= p.total) { return; }
  // Pixel i of batch b: element (b, c, pixel) is at b * C * HW + c * HW + pixel.
  let base = (i / p.hw) * p.C * p.hw + i % p.hw;
  // Sum deviations from the first channel: O(spread) terms keep their digits when the
  // mean is large (a plain running sum of 256 values near 50 loses ~1e-4).
  let pivot = x[base];
  var s = 0.0;
  for (var c = 1u; c < p.C; c++) { s += x[base + c * p.hw] - pivot; }
  let mean = pivot + s / f32(p.C);
  var q = 0.0;
  for (var c = 0u; c < p.C; c++) { let d = x[base + c * p.hw] - mean; q += d * d; }
  let sd = sqrt(q / f32(p.C) + p.eps);
  for (var c = 0u; c < p.C; c++) {
    let o = base + c * p.hw;
    out[o] = weight[c] * ((x[o] - mean) / sd) + bias[c];
  }
}`,
};

/** LayerNorm2d of x [B, C, H, W] over C per pixel; weight, bias [C]. */
export function layerNorm2d(
  ctx: GpuContext,
  x: Tensor,
  weight: Tensor,
  bias: Tensor,
  eps: number,
  out?: Tensor,
): Tensor {
  if (x.shape.length !== 4) {
    throw new Error(`layerNorm2d: x must be [B, C, H, W], got [${x.shape}]`);
  }
  const [B, C, H, W] = x.shape;
  const y = normOutput(ctx, "layerNorm2d", x, weight, bias, C, out);
  const total = B * H * W;
  const params = new Params().u32(H * W, C, total).f32(eps).build();
  ctx.dispatch(
    LAYER_NORM_2D,
    params,
    [x.buffer, weight.buffer, bias.buffer, y.buffer],
    grid(Math.ceil(total / WG)),
  );
  return y;
}
