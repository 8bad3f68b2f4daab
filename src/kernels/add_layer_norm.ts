/**
 * LayerNorm fused with the adds around it in SAM's two-way transformer, for the short token
 * chains that would otherwise be one tiny dispatch each:
 *   y   = LayerNorm(x + residual) over the last dim (residual optional, broadcast),
 *   yPe = y + pe (optional, broadcast): the next attention's "tokens + positional encoding".
 * The residual and pe repeat over x's leading dims as `add` broadcasts them (element i reads
 * r[i % r.size]): the shared image src (HW, D) over a batch of prompts, query_pe (B, Nt, D),
 * key_pe (HW, D). The arithmetic is the unfused add -> layerNorm -> add's, in the same order.
 *
 * Variants as layer_norm.ts: "warp", TPR threads a row with up to VPT values each in
 * registers (GPUs), and "rows", one invocation a row with no barriers (software adapters),
 * which recomputes x + residual in each pass rather than holding the row.
 */
import { type GpuContext, grid, type KernelSpec } from "../gpu/context.ts";
import { emptyTensor, Params, type Tensor } from "../gpu/tensor.ts";
import {
  defaultLayerNormVariant,
  type LayerNormVariant,
  normOutput,
  ROWS_WG,
} from "./layer_norm.ts";
import { rowReduceWgsl } from "./softmax.ts";

const WG = 256;

interface Shape {
  /** Threads per row. */
  tpr: number;
  /** Values per thread (registers). */
  vpt: number;
}

/** Up to 256 wide (the decoders' width), then up to SAM's widest as layer_norm.ts. */
const SHAPES: Shape[] = [{ tpr: 32, vpt: 8 }, { tpr: 32, vpt: 40 }];

function spec({ tpr, vpt }: Shape, residual: boolean, pe: boolean): KernelSpec {
  const storage = ["x", ...(residual ? ["r"] : []), "weight", "bias", ...(pe ? ["pe"] : [])];
  const outs = ["y", ...(pe ? ["y_pe"] : [])];
  const decls = [
    ...storage.map((n, i) => `@group(0) @binding(${i + 1}) var<storage, read> ${n}: array<f32>;`),
    ...outs.map((n, i) =>
      `@group(0) @binding(${storage.length + i + 1}) var<storage, read_write> ${n}: array<f32>;`
    ),
  ].join("\n");
  return {
    name: `add_layer_norm_${residual ? "res_" : ""}${pe ? "pe_" : ""}t${tpr}v${vpt}_f32`,
    bindings: [
      "uniform",
      ...storage.map(() => "read" as const),
      ...outs.map(() => "write" as const),
    ],
    code: () => /* wgsl */ `
struct P { rows: u32, C: u32, eps: f32, nr: u32, npe: u32 }
@group(0) @binding(0) var<uniform> p: P;
${decls}

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
    if (valid && c < p.C) {
      v[i] = x[base + c]${residual ? " + r[(base + c) % p.nr]" : ""};
      s += v[i];
    }
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
    if (c < p.C) {
      let o = (v[i] - mean) / sd * weight[c] + bias[c];
      y[base + c] = o;${pe ? "\n      y_pe[base + c] = o + pe[(base + c) % p.npe];" : ""}
    }
  }
}`,
  };
}

/** The "rows" variant: one invocation a row, the row read again in each pass. */
function rowsSpec(residual: boolean, pe: boolean): KernelSpec {
  const storage = ["x", ...(residual ? ["r"] : []), "weight", "bias", ...(pe ? ["pe"] : [])];
  const outs = ["y", ...(pe ? ["y_pe"] : [])];
  const decls = [
    ...storage.map((n, i) => `@group(0) @binding(${i + 1}) var<storage, read> ${n}: array<f32>;`),
    ...outs.map((n, i) =>
      `@group(0) @binding(${storage.length + i + 1}) var<storage, read_write> ${n}: array<f32>;`
    ),
  ].join("\n");
  return {
    name: `add_layer_norm_${residual ? "res_" : ""}${pe ? "pe_" : ""}rows_f32`,
    bindings: [
      "uniform",
      ...storage.map(() => "read" as const),
      ...outs.map(() => "write" as const),
    ],
    code: () => /* wgsl */ `
struct P { rows: u32, C: u32, eps: f32, nr: u32, npe: u32 }
@group(0) @binding(0) var<uniform> p: P;
${decls}

fn value(i: u32) -> f32 {
  return x[i]${residual ? " + r[i % p.nr]" : ""};
}

@compute @workgroup_size(${ROWS_WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = gid.x + gid.y * nwg.x * ${ROWS_WG}u;
  if (row >= p.rows) { return; }
  let base = row * p.C;
  // Deviations from the first value: the f32 sum keeps its digits when the mean is large.
  let pivot = value(base);
  var s = 0.0;
  for (var c = 1u; c < p.C; c++) { s += value(base + c) - pivot; }
  let mean = pivot + s / f32(p.C);
  var q = 0.0;
  for (var c = 0u; c < p.C; c++) { let d = value(base + c) - mean; q += d * d; }
  let sd = sqrt(q / f32(p.C) + p.eps);
  for (var c = 0u; c < p.C; c++) {
    let o = (value(base + c) - mean) / sd * weight[c] + bias[c];
    y[base + c] = o;${pe ? "\n    y_pe[base + c] = o + pe[(base + c) % p.npe];" : ""}
  }
}`,
  };
}

const specs = new Map<string, KernelSpec>();

export interface AddLayerNormOptions {
  /** Added to x before the norm; its size divides x's (repeats over x's leading dims). */
  residual?: Tensor;
  /** Added to the norm's output into `yPe`; its size divides x's. */
  pe?: Tensor;
  /** Kernel; defaults to defaultLayerNormVariant(ctx.gpu.software). */
  variant?: LayerNormVariant;
}

/**
 * y = LayerNorm(x + residual) of x [..., C] over C (weight, bias [C]), and yPe = y + pe when
 * `pe` is given (else null). New tensors of x's shape.
 */
export function addLayerNorm(
  ctx: GpuContext,
  x: Tensor,
  weight: Tensor,
  bias: Tensor,
  eps: number,
  opts: AddLayerNormOptions = {},
): { y: Tensor; yPe: Tensor | null } {
  const C = x.shape[x.shape.length - 1];
  if (!C) throw new Error(`addLayerNorm: x [${x.shape}] has no last dim to normalise`);
  const shape = SHAPES.find((s) => C <= s.tpr * s.vpt);
  if (!shape) {
    const max = SHAPES[SHAPES.length - 1];
    throw new Error(`addLayerNorm: C=${C} is over the supported ${max.tpr * max.vpt}`);
  }
  const { residual, pe } = opts;
  for (const [t, what] of [[residual, "residual"], [pe, "pe"]] as const) {
    if (t && (t.size === 0 || x.size % t.size !== 0)) {
      throw new Error(
        `addLayerNorm: ${what} [${t.shape}] has ${t.size} elements, which do not divide x's ` +
          `${x.size} ([${x.shape}]): it may only repeat over x's leading dims`,
      );
    }
  }
  const y = normOutput(ctx, "addLayerNorm", x, weight, bias, C);
  const yPe = pe ? emptyTensor(ctx, x.shape, "addLayerNorm.y_pe") : null;
  const rowsVariant = (opts.variant ?? defaultLayerNormVariant(ctx.gpu.software)) === "rows";
  const key = `${rowsVariant ? "rows" : `${shape.tpr}:${shape.vpt}`}:${!!residual}:${!!pe}`;
  let s = specs.get(key);
  if (!s) {
    specs.set(key, s = rowsVariant ? rowsSpec(!!residual, !!pe) : spec(shape, !!residual, !!pe));
  }
  const rows = x.size / C;
  const params = new Params().u32(rows, C).f32(eps).u32(residual?.size ?? 1, pe?.size ?? 1)
    .build();
  const buffers = [
    x.buffer,
    ...(residual ? [residual.buffer] : []),
    weight.buffer,
    bias.buffer,
    ...(pe ? [pe.buffer] : []),
    y.buffer,
    ...(yPe ? [yPe.buffer] : []),
  ];
  const rowsPerGroup = rowsVariant ? ROWS_WG : WG / shape.tpr;
  ctx.dispatch(s, params, buffers, grid(Math.ceil(rows / rowsPerGroup)));
  return { y, yPe };
}
