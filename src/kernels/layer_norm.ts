/**
 * LayerNorm over the last dim: y = (x - mean) / sqrt(var + eps) * weight + bias, biased
 * variance, as torch's nn.LayerNorm. Like torch it takes two passes over the row (mean, then
 * the mean of squared deviations) rather than E[x^2] - E[x]^2, which loses digits when the
 * mean is large against the spread; the row is held in registers between passes.
 *
 * A row is handled by TPR threads each holding up to VPT values: 32 threads (8 rows per
 * 256-thread workgroup) up to C = 1280, SAM's widest, so a row is one warp's work and the
 * threads are not idle; 256 threads for wider rows ("warp", for GPUs).
 *
 * "rows", the default on software adapters: one invocation a row, no workgroup memory or
 * barriers, reading the row from memory in each pass. A workgroupBarrier is what a CPU
 * adapter pays for most (on SwiftShader, 4096 x 256 took 627 ms with "warp" against 57 ms
 * so). Its first pass sums deviations from the row's first value, so that the f32 running
 * sum holds O(spread) terms and keeps its digits when the mean is large; the mean is still
 * taken before the squared deviations, as torch. With C a multiple of 16 (every SAM width) it
 * reads vec4, four a loop step ("rows" v4: on llvmpipe 30% faster on sam-mini's 4096 x 128).
 */
import { type GpuContext, grid, type KernelSpec } from "../gpu/context.ts";
import { emptyTensor, Params, type Tensor } from "../gpu/tensor.ts";
import { rowReduceWgsl } from "./softmax.ts";

const WG = 256;

interface Shape {
  /** Threads per row. */
  tpr: number;
  /** Values per thread (registers). */
  vpt: number;
}

const SHAPES: Shape[] = [{ tpr: 32, vpt: 8 }, { tpr: 32, vpt: 40 }, { tpr: 256, vpt: 32 }];

function layerNormSpec({ tpr, vpt }: Shape): KernelSpec {
  return {
    name: `layer_norm_t${tpr}v${vpt}_f32`,
    bindings: ["uniform", "read", "read", "read", "write"],
    code: () => /* wgsl */ `
struct P { rows: u32, C: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

${rowReduceWgsl(tpr)}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) tid: u32) {
  let lane = tid % ${tpr}u;
  let row = (wg.x + wg.y * nwg.x) * ${WG / tpr}u + tid / ${tpr}u;
  // Rows past the end still join the barriers.
  let valid = row < p.rows;
  let base = row * p.C;
  var v: array<f32, ${vpt}>;
  var s = 0.0;
  for (var i = 0u; i < ${vpt}u; i++) {
    let c = lane + i * ${tpr}u;
    v[i] = 0.0;
    if (valid && c < p.C) { v[i] = x[base + c]; s += v[i]; }
  }
  let mean = row_reduce(tid, lane, s, false) / f32(p.C);
  var q = 0.0;
  for (var i = 0u; i < ${vpt}u; i++) {
    let c = lane + i * ${tpr}u;
    if (c < p.C) { let d = v[i] - mean; q += d * d; }
  }
  let sd = sqrt(row_reduce(tid, lane, q, false) / f32(p.C) + p.eps);
  if (!valid) { return; }
  for (var i = 0u; i < ${vpt}u; i++) {
    let c = lane + i * ${tpr}u;
    if (c < p.C) { out[base + c] = (v[i] - mean) / sd * weight[c] + bias[c]; }
  }
}`,
  };
}

const SPECS = SHAPES.map((s) => ({ ...s, spec: layerNormSpec(s) }));

/** Invocations a workgroup for the "rows" variant (one row each). */
export const ROWS_WG = 64;

const LAYER_NORM_ROWS: KernelSpec = {
  name: "layer_norm_rows_f32",
  bindings: ["uniform", "read", "read", "read", "write"],
  code: () => /* wgsl */ `
struct P { rows: u32, C: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(${ROWS_WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = gid.x + gid.y * nwg.x * ${ROWS_WG}u;
  if (row >= p.rows) { return; }
  let base = row * p.C;
  let pivot = x[base];
  var s = 0.0;
  for (var c = 1u; c < p.C; c++) { s += x[base + c] - pivot; }
  let mean = pivot + s / f32(p.C);
  var q = 0.0;
  for (var c = 0u; c < p.C; c++) { let d = x[base + c] - mean; q += d * d; }
  let sd = sqrt(q / f32(p.C) + p.eps);
  for (var c = 0u; c < p.C; c++) {
    out[base + c] = (x[base + c] - mean) / sd * weight[c] + bias[c];
  }
}`,
};

/** Elements a "rows" invocation reads per loop step with vec4 access (4 vec4). */
const ROWS_V4_STEP = 16;

/**
 * "rows" for C a multiple of 16 (every SAM width): the same three passes over the row in
 * vec4 loads, four a loop step. On llvmpipe a loop iteration costs about as much as a few
 * loads, and a vec4 load about half of four scalar ones, so the scalar loop above spends
 * most of its time on loop overhead.
 */
const LAYER_NORM_ROWS_V4: KernelSpec = {
  name: "layer_norm_rows_v4_f32",
  bindings: ["uniform", "read", "read", "read", "write"],
  code: () => {
    const I = [0, 1, 2, 3];
    const sum = (f: (i: number) => string) => I.map(f).join(" + ");
    return /* wgsl */ `
struct P { rows: u32, C: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> weight: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>;

@compute @workgroup_size(${ROWS_WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = gid.x + gid.y * nwg.x * ${ROWS_WG}u;
  if (row >= p.rows) { return; }
  let c4 = p.C / 4u;
  let base = row * c4;
  // Sums relative to the row's first value (as the scalar kernel), against cancellation.
  let pivot = x[base].x;
  var s = vec4<f32>(0.0);
  for (var c = 0u; c < c4; c += 4u) {
    s += ${sum((i) => `(x[base + c + ${i}u] - pivot)`)};
  }
  let mean = pivot + dot(s, vec4<f32>(1.0)) / f32(p.C);
  var q = vec4<f32>(0.0);
  for (var c = 0u; c < c4; c += 4u) {
${I.map((i) => `    let d${i} = x[base + c + ${i}u] - mean;`).join("\n")}
    q += ${sum((i) => `d${i} * d${i}`)};
  }
  let sd = sqrt(dot(q, vec4<f32>(1.0)) / f32(p.C) + p.eps);
  for (var c = 0u; c < c4; c += 4u) {
${
      I.map((i) =>
        `    out[base + c + ${i}u] = (x[base + c + ${i}u] - mean) / sd * weight[c + ${i}u] + bias[c + ${i}u];`
      ).join("\n")
    }
  }
}`;
  },
};

/**
 * The LayerNorm kernels: "warp" (TPR threads a row, reduced through workgroup memory; for
 * GPUs) and "rows" (one invocation a row, no barriers; for software adapters).
 */
export type LayerNormVariant = "warp" | "rows";

/** "rows" on software adapters, where barriers cost most, else "warp". */
export function defaultLayerNormVariant(software: boolean): LayerNormVariant {
  return software ? "rows" : "warp";
}

/**
 * Shared by layerNorm and layerNorm2d: checks weight and bias have C elements and returns
 * the output (a new tensor of x's shape, or `out` once checked).
 */
export function normOutput(
  ctx: GpuContext,
  op: string,
  x: Tensor,
  weight: Tensor,
  bias: Tensor,
  C: number,
  out?: Tensor,
): Tensor {
  if (weight.size !== C || bias.size !== C) {
    throw new Error(`${op}: weight (${weight.size}) and bias (${bias.size}) need C=${C} elements`);
  }
  const y = out ?? emptyTensor(ctx, x.shape, `${op}.out`);
  if (y.size !== x.size) throw new Error(`${op}: out has ${y.size} elements, need ${x.size}`);
  if (y.buffer === x.buffer) throw new Error(`${op}: out must not alias x`);
  return y;
}

/**
 * LayerNorm of x [..., C] over C with weight, bias [C]; eps 1e-6 (SAM encoder) or 1e-5.
 * `variant` defaults to defaultLayerNormVariant(ctx.gpu.software).
 */
export function layerNorm(
  ctx: GpuContext,
  x: Tensor,
  weight: Tensor,
  bias: Tensor,
  eps: number,
  out?: Tensor,
  variant: LayerNormVariant = defaultLayerNormVariant(ctx.gpu.software),
): Tensor {
  const C = x.shape[x.shape.length - 1];
  if (!C) throw new Error(`layerNorm: x [${x.shape}] has no last dim to normalise`);
  const chosen = SPECS.find((s) => C <= s.tpr * s.vpt);
  if (!chosen) {
    const max = SHAPES[SHAPES.length - 1];
    throw new Error(`layerNorm: C=${C} is over the supported ${max.tpr * max.vpt}`);
  }
  const y = normOutput(ctx, "layerNorm", x, weight, bias, C, out);
  const rows = x.size / C;
  const params = new Params().u32(rows, C).f32(eps).build();
  const buffers = [x.buffer, weight.buffer, bias.buffer, y.buffer];
  if (variant === "rows") {
    const spec = C % ROWS_V4_STEP === 0 ? LAYER_NORM_ROWS_V4 : LAYER_NORM_ROWS;
    ctx.dispatch(spec, params, buffers, grid(Math.ceil(rows / ROWS_WG)));
    return y;
  }
  const rowsPerGroup = WG / chosen.tpr;
  ctx.dispatch(
    chosen.spec,
    params,
    buffers,
    grid(Math.ceil(rows / rowsPerGroup)),
  );
  return y;
}
