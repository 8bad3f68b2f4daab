/**
 * Split-K GEMM for small grids: a product with few output tiles (the decoder's 7 tokens x 256
 * through its MLP, K 2048) leaves most of a GPU idle with one workgroup per tile walking all
 * of K. Here K is cut into S slices: pass 1 runs (tiles x S) workgroups, each a 16 x 64
 * output tile over one slice (64 threads of 4 x 4, operands read straight from storage:
 * small M needs no staging), writing a partial sum to a scratch buffer [S, batch, M, N];
 * pass 2 adds the S partials of each output and applies linear's fused epilogue (bias,
 * activation, residual) as it stores. Variants: "splitk4", "splitk8" (S); the sum runs in a
 * fixed order, so results are deterministic (no atomics).
 *
 * The scratch buffer is one per context, grown on demand (the old one is freed after a
 * submit, once no recorded command can still name it).
 */
import { type GpuContext, grid, type KernelSpec, MAX_WORKGROUPS_PER_DIM } from "../gpu/context.ts";
import { emptyTensor, Params, type Tensor } from "../gpu/tensor.ts";
import { ACTIVATION_WGSL } from "./activation.ts";
import { type GemmEpilogue, gemmEpilogueExpr } from "./gemm_epilogue.ts";

/** Slice counts with a name ("splitk4"). */
export const SPLITK_SLICES = [4, 8] as const;

/** The slice count of a split-K variant name, or null. */
export function parseSplitKName(name: string): number | null {
  const m = /^splitk(\d+)$/.exec(name);
  if (!m) return null;
  const s = Number(m[1]);
  return (SPLITK_SLICES as readonly number[]).includes(s) ? s : null;
}

/** Output tile of one pass-1 workgroup: 16 rows x 64 columns, 64 threads of 4 x 4. */
const BM = 16;
const BN = 64;

/** Sizes of one split-K GEMM (as matmul.ts GemmDims). */
export interface SplitKDims {
  batch: number;
  M: number;
  N: number;
  K: number;
  strideA: number;
  strideB: number;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

function partialCode(v: GemmEpilogue, vecK: boolean): string {
  const R = range(4);
  const elem = (vec: boolean) => (vec ? "vec4<f32>" : "f32");
  // Scalar element i of a (vec4 or scalar) array.
  const at = (buf: string, vec: boolean, i: string) =>
    vec ? `${buf}[(${i}) / 4u][(${i}) % 4u]` : `${buf}[${i}]`;
  const rowA = R.map((i) => `let ra${i} = a_base + min(m0 + ${i}u, p.M - 1u) * p.K;`).join("\n  ");
  let body: string;
  if (v.bLayout === "nk") {
    const rowB = R.map((j) => `let rb${j} = b_base + min(n0 + ${j}u, p.N - 1u) * p.K;`).join(
      "\n  ",
    );
    body = vecK
      ? `${rowB}
  for (var k = k0; k < k1; k += 4u) {
    ${R.map((i) => `let x${i} = a[(ra${i} + k) / 4u];`).join(" ")}
    ${R.map((j) => `let y${j} = b[(rb${j} + k) / 4u];`).join(" ")}
    ${R.map((i) => R.map((j) => `c${i}_${j} += dot(x${i}, y${j});`).join(" ")).join("\n    ")}
  }`
      : `${rowB}
  for (var k = k0; k < k1; k++) {
    ${R.map((i) => `let x${i} = ${at("a", v.vecA, `ra${i} + k`)};`).join(" ")}
    ${R.map((j) => `let y${j} = ${at("b", v.vecB, `rb${j} + k`)};`).join(" ")}
    ${
        R.map((i) => R.map((j) => `c${i}_${j} = fma(x${i}, y${j}, c${i}_${j});`).join(" ")).join(
          "\n    ",
        )
      }
  }`;
  } else {
    const cols = R.map((j) => `let cn${j} = min(n0 + ${j}u, p.N - 1u);`).join("\n  ");
    body = `${cols}
  for (var k = k0; k < k1; k++) {
    ${R.map((i) => `let x${i} = ${at("a", v.vecA, `ra${i} + k`)};`).join(" ")}
    ${R.map((j) => `let y${j} = ${at("b", v.vecB, `b_base + k * p.N + cn${j}`)};`).join(" ")}
    ${
      R.map((i) => R.map((j) => `c${i}_${j} = fma(x${i}, y${j}, c${i}_${j});`).join(" ")).join(
        "\n    ",
      )
    }
  }`;
  }
  const stores = R.map((i) =>
    R.map((j) =>
      `if (m0 + ${i}u < p.M && n0 + ${j}u < p.N) { part[pb + (m0 + ${i}u) * p.N + n0 + ${j}u] = c${i}_${j}; }`
    ).join("\n  ")
  ).join("\n  ");
  return /* wgsl */ `
struct P { M: u32, N: u32, K: u32, stride_a: u32, stride_b: u32, batch: u32, S: u32, kLen: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> a: array<${elem(v.vecA)}>;
@group(0) @binding(2) var<storage, read> b: array<${elem(v.vecB)}>;
@group(0) @binding(3) var<storage, read_write> part: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let bi = wg.z / p.S;
  let s = wg.z % p.S;
  let k0 = s * p.kLen;
  let k1 = min(k0 + p.kLen, p.K);
  let n0 = wg.x * ${BN}u + (lid % 16u) * 4u;
  let m0 = wg.y * ${BM}u + (lid / 16u) * 4u;
  let a_base = bi * p.stride_a;
  let b_base = bi * p.stride_b;
  let pb = (s * p.batch + bi) * p.M * p.N;
  ${rowA}
  ${R.map((i) => R.map((j) => `var c${i}_${j} = 0.0;`).join(" ")).join("\n  ")}
  ${body}
  ${stores}
}`;
}

function reduceCode(v: GemmEpilogue): string {
  let binding = 2;
  const decls = [];
  if (v.bias) decls.push(`@group(0) @binding(${binding++}) var<storage, read> bias: array<f32>;`);
  if (v.residual) {
    decls.push(`@group(0) @binding(${binding++}) var<storage, read> residual: array<f32>;`);
  }
  decls.push(`@group(0) @binding(${binding++}) var<storage, read_write> out: array<f32>;`);
  return /* wgsl */ `
${v.activation === "none" ? "" : ACTIVATION_WGSL}
struct R { total: u32, N: u32, S: u32 }
@group(0) @binding(0) var<uniform> p: R;
@group(0) @binding(1) var<storage, read> part: array<f32>;
${decls.join("\n")}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let o = (wg.x + wg.y * nwg.x) * 64u + lid;
  if (o >= p.total) { return; }
  var acc = 0.0;
  for (var s = 0u; s < p.S; s++) { acc += part[s * p.total + o]; }
  let n = o % p.N;
  out[o] = ${gemmEpilogueExpr(v, "acc")};
}`;
}

const specs = new Map<string, KernelSpec>();

function cached(name: string, bindings: KernelSpec["bindings"], code: () => string): KernelSpec {
  let spec = specs.get(name);
  if (!spec) {
    spec = { name, bindings, code };
    specs.set(name, spec);
  }
  return spec;
}

function partialSpec(prefix: string, v: GemmEpilogue, vecK: boolean): KernelSpec {
  const name = `${prefix}_splitk_partial_${v.bLayout}_f32${v.vecA ? "_a4" : ""}${
    v.vecB ? "_b4" : ""
  }${vecK ? "_k4" : ""}`;
  const variant = { ...v };
  return cached(name, ["uniform", "read", "read", "write"], () => partialCode(variant, vecK));
}

function reduceSpec(prefix: string, v: GemmEpilogue): KernelSpec {
  const parts = [prefix, "splitk_reduce"];
  if (v.bias) parts.push("bias");
  if (v.activation !== "none") parts.push(v.activation);
  if (v.residual) parts.push("residual");
  parts.push("f32");
  const variant = { ...v };
  return cached(parts.join("_"), [
    "uniform",
    "read",
    ...(v.bias ? ["read" as const] : []),
    ...(v.residual ? ["read" as const] : []),
    "write",
  ], () => reduceCode(variant));
}

/** The scratch of partial sums, per context. */
const scratch = new WeakMap<GpuContext, Tensor>();

function scratchFor(ctx: GpuContext, elements: number): Tensor {
  const have = scratch.get(ctx);
  if (have && have.size >= elements) return have;
  if (have) {
    ctx.submit(); // commands already recorded may still bind the old buffer
    have.destroy();
  }
  const t = emptyTensor(ctx, [elements], "gemm.splitk.partial");
  scratch.set(ctx, t);
  return t;
}

/** Whether split-K with `slices` fits the grid limits for these sizes. */
export function splitKFits(d: SplitKDims, slices: number): boolean {
  return Math.ceil(d.N / BN) <= MAX_WORKGROUPS_PER_DIM &&
    Math.ceil(d.M / BM) <= MAX_WORKGROUPS_PER_DIM &&
    d.batch * slices <= MAX_WORKGROUPS_PER_DIM;
}

/**
 * Records the two passes. `buffers` are [a, b, bias?, residual?, out] as for every GEMM
 * variant; the output is dense ([batch, M, N]).
 */
export function runSplitK(
  ctx: GpuContext,
  prefix: string,
  v: GemmEpilogue,
  d: SplitKDims,
  buffers: GPUBuffer[],
  slices: number,
): void {
  const S = Math.max(1, Math.min(slices, Math.ceil(d.K / 4)));
  // Slices a multiple of 4 long, so vec4 steps never straddle two slices.
  const kLen = 4 * Math.ceil(d.K / S / 4);
  const vecK = v.bLayout === "nk" && v.vecA && v.vecB;
  const total = d.batch * d.M * d.N;
  const part = scratchFor(ctx, S * total);
  const [a, b, ...rest] = buffers;
  const p1 = new Params().u32(d.M, d.N, d.K, d.strideA, d.strideB, d.batch, S, kLen).build();
  ctx.dispatch(partialSpec(prefix, v, vecK), p1, [a, b, part.buffer], [
    Math.ceil(d.N / BN),
    Math.ceil(d.M / BM),
    d.batch * S,
  ]);
  const p2 = new Params().u32(total, d.N, S).build();
  ctx.dispatch(reduceSpec(prefix, v), p2, [part.buffer, ...rest], grid(Math.ceil(total / 64)));
}
