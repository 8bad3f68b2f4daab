/**
 * Row softmax over the last dim, numerically stable: exp(x - max) / sum exp(x - max).
 * TPR threads share a row (32 for rows up to 1024 long, else 256), walking it in three
 * strided passes (max, sum, write) with workgroup reductions between; rows of any length.
 */
import { type GpuContext, grid, type KernelSpec } from "../gpu/context.ts";
import { emptyTensor, Params, type Tensor } from "../gpu/tensor.ts";

const WG = 256;

/**
 * WGSL `row_reduce(tid, lane, value, is_max)`: the max or sum of `value` over the `tpr`
 * consecutive threads of a 256-thread workgroup that share a row (lane = tid % tpr); every
 * thread gets the result. Call it from uniform control flow (it holds barriers).
 */
export function rowReduceWgsl(tpr: number): string {
  return /* wgsl */ `
var<workgroup> red: array<f32, ${WG}>;

fn row_reduce(tid: u32, lane: u32, value: f32, is_max: bool) -> f32 {
  red[tid] = value;
  workgroupBarrier();
  for (var s = ${tpr / 2}u; s > 0u; s >>= 1u) {
    if (lane < s) {
      let other = red[tid + s];
      red[tid] = select(red[tid] + other, max(red[tid], other), is_max);
    }
    workgroupBarrier();
  }
  let total = red[tid - lane];
  workgroupBarrier();
  return total;
}`;
}

function softmaxSpec(tpr: number): KernelSpec {
  return {
    name: `softmax_t${tpr}_f32`,
    bindings: ["uniform", "read", "write"],
    code: () => /* wgsl */ `
struct P { rows: u32, L: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

${rowReduceWgsl(tpr)}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) tid: u32) {
  let lane = tid % ${tpr}u;
  let row = (wg.x + wg.y * nwg.x) * ${WG / tpr}u + tid / ${tpr}u;
  // Rows past the end still join the barriers (with an empty range).
  let len = select(0u, p.L, row < p.rows);
  let base = row * p.L;
  var m = -3.402823466e+38;
  for (var c = lane; c < len; c += ${tpr}u) { m = max(m, x[base + c]); }
  m = row_reduce(tid, lane, m, true);
  var s = 0.0;
  for (var c = lane; c < len; c += ${tpr}u) { s += exp(x[base + c] - m); }
  s = row_reduce(tid, lane, s, false);
  let inv = 1.0 / s;
  for (var c = lane; c < len; c += ${tpr}u) { out[base + c] = exp(x[base + c] - m) * inv; }
}`,
  };
}

const NARROW = softmaxSpec(32);
const WIDE = softmaxSpec(256);

/** Softmax of x [..., L] along L. */
export function softmax(ctx: GpuContext, x: Tensor, out?: Tensor): Tensor {
  const L = x.shape[x.shape.length - 1];
  if (!L) throw new Error(`softmax: x [${x.shape}] has no last dim`);
  const y = out ?? emptyTensor(ctx, x.shape, "softmax.out");
  if (y.size !== x.size) throw new Error(`softmax: out has ${y.size} elements, need ${x.size}`);
  if (y.buffer === x.buffer) throw new Error("softmax: out must not alias x");
  // 32 threads per row unless rows are long: a 196-key row on 256 threads leaves most idle.
  const spec = L <= 1024 ? NARROW : WIDE;
  const tpr = L <= 1024 ? 32 : 256;
  const rows = x.size / L;
  const params = new Params().u32(rows, L).build();
  ctx.dispatch(spec, params, [x.buffer, y.buffer], grid(Math.ceil(rows / (WG / tpr))));
  return y;
}
