/**
 * Tiled GEMM shared by `matmul` (batched, optional transposed / broadcast B) and `linear`
 * (x @ W^T with a fused bias / activation / residual epilogue).
 *
 * Each workgroup computes a 64x64 output tile with 256 threads, 4x4 outputs per thread held
 * in registers (four vec4 accumulators); for M >= 512 a 128x64 tile, 8x4 per thread; for
 * M <= 16 a 16x64 tile with 64 threads. K is
 * walked in steps of 16: the A and B tiles are staged in workgroup memory K-major (As[k][m],
 * Bs[k][n]) so a thread reads one vec4 of A (its 4 rows) and one vec4 of B (its 4 columns)
 * per k. Global loads are vec4 where the contiguous dimension is a multiple of 4 (the
 * "_a4" / "_b4" variants), scalar otherwise. M, N and K need not be multiples of the tile:
 * out-of-range loads read zero, stores are guarded.
 * The dispatch is 3-D (N tiles, M tiles, batch): up to 65535 of each, so M and N up to
 * 4,194,240 and any product of them (far over 65535 workgroups in all) need no folding.
 */
import { type GpuContext, type KernelSpec, MAX_WORKGROUPS_PER_DIM } from "../gpu/context.ts";
import { emptyTensor, Params, requireShaderF16, type Tensor } from "../gpu/tensor.ts";
import { ACTIVATION_WGSL } from "./activation.ts";
import {
  cachedGemmSpec,
  gemmBindingDecls,
  type GemmEpilogue,
  gemmEpilogueExpr,
  gemmF16Letters,
  gemmLoad,
  gemmUsesF16,
} from "./gemm_epilogue.ts";
import { parseRegisterTile, registerBlock, registerGemmSpec } from "./gemm_register.ts";
import { parseSplitKName, runSplitK, splitKFits } from "./gemm_splitk.ts";
import { kStageGemmSpec, parseKStageName } from "./gemm_kstage.ts";

export type { GemmEpilogue } from "./gemm_epilogue.ts";
import { variantFor } from "./tuning.ts";

/** Output tile of a workgroup and the register block of a thread (TN is 4: one vec4). */
export interface GemmTile {
  /** Tile rows (M) and columns (N), K step. */
  bm: number;
  bn: number;
  bk: number;
  /** Rows per thread, a multiple of 4 (TM / 4 vec4 reads of A per k). */
  tm: number;
}

/** The large-shape tile: 64x64, 256 threads of 4x4. */
export const TILE_64: GemmTile = { bm: 64, bn: 64, bk: 16, tm: 4 };
/** For M >= 512 (encoder tokens): 128x64, 256 threads of 8x4, twice the arithmetic per
 * shared-memory read of TILE_64. */
export const TILE_128: GemmTile = { bm: 128, bn: 64, bk: 16, tm: 8 };
/** For M <= 16 (decoder tokens, hypernetwork masks): 16x64, 64 threads of 4x4, so a
 * 4-row product does not pay for 64 rows. */
export const TILE_16: GemmTile = { bm: 16, bn: 64, bk: 16, tm: 4 };
const TN = 4;

/** A GEMM shader variant: the op's layout and epilogue, and the tile. */
export interface GemmVariant extends GemmEpilogue {
  tile: GemmTile;
}

/** Sizes of one GEMM: out[b] (M x N) = A[b] (M x K) @ B[b]; strides are per batch, in elements. */
export interface GemmDims {
  batch: number;
  M: number;
  N: number;
  K: number;
  strideA: number;
  strideB: number;
  strideOut: number;
}

/**
 * WGSL staging `rows` x BK of a K-contiguous matrix (A, or B in "nk") into the K-major
 * workgroup array `dst` (dst[k * rows/4 + r/4][r % 4]).
 */
function loadKContiguous(
  v0: GemmEpilogue,
  t: GemmTile,
  nt: number,
  src: "a" | "b",
  dst: string,
  rows: number,
  first: string,
  limit: string,
  base: string,
  vec: boolean,
): string {
  if (vec) {
    return `for (var i = 0u; i < ${(rows * t.bk) / 4 / nt}u; i++) {
      let l = tid + i * ${nt}u;
      let r = l / ${t.bk / 4}u;
      let kq = l % ${t.bk / 4}u;
      let row = ${first} + r;
      let k = k0 + kq * 4u;
      var v = vec4<f32>(0.0);
      if (row < ${limit} && k < p.K) { v = ${
      gemmLoad(v0, src, `${src}[(${base} + row * p.K + k) / 4u]`, true)
    }; }
      for (var j = 0u; j < 4u; j++) { ${dst}[(kq * 4u + j) * ${
      rows / 4
    }u + r / 4u][r % 4u] = v[j]; }
    }`;
  }
  return `for (var i = 0u; i < ${(rows * t.bk) / nt}u; i++) {
      let l = tid + i * ${nt}u;
      let r = l / ${t.bk}u;
      let kk = l % ${t.bk}u;
      let row = ${first} + r;
      let k = k0 + kk;
      var v = 0.0;
      if (row < ${limit} && k < p.K) { v = ${
    gemmLoad(v0, src, `${src}[${base} + row * p.K + k]`, false)
  }; }
      ${dst}[kk * ${rows / 4}u + r / 4u][r % 4u] = v;
    }`;
}

/** WGSL staging BK x BN of B in "kn" layout (N contiguous) into Bs, as it is. */
function loadNContiguous(v0: GemmEpilogue, t: GemmTile, nt: number, vec: boolean): string {
  if (vec) {
    return `for (var i = 0u; i < ${(t.bk * t.bn) / 4 / nt}u; i++) {
      let l = tid + i * ${nt}u;
      let kk = l / ${t.bn / 4}u;
      let nq = l % ${t.bn / 4}u;
      let k = k0 + kk;
      let n = n0 + nq * 4u;
      var v = vec4<f32>(0.0);
      if (k < p.K && n < p.N) { v = ${gemmLoad(v0, "b", "b[(b_base + k * p.N + n) / 4u]", true)}; }
      Bs[kk * ${t.bn / 4}u + nq] = v;
    }`;
  }
  return `for (var i = 0u; i < ${(t.bk * t.bn) / nt}u; i++) {
      let l = tid + i * ${nt}u;
      let kk = l / ${t.bn}u;
      let c = l % ${t.bn}u;
      let k = k0 + kk;
      let n = n0 + c;
      var v = 0.0;
      if (k < p.K && n < p.N) { v = ${gemmLoad(v0, "b", "b[b_base + k * p.N + n]", false)}; }
      Bs[kk * ${t.bn / 4}u + c / 4u][c % 4u] = v;
    }`;
}

function threads(t: GemmTile): number {
  return (t.bn / TN) * (t.bm / t.tm);
}

function gemmCode(v: GemmVariant): string {
  const t = v.tile;
  const tx = t.bn / TN; // threads along N
  const nt = threads(t);
  const value = gemmEpilogueExpr(v, "acc[j]");

  const rows = Array.from({ length: t.tm }, (_, i) => i);
  const accDecl = rows.map((i) => `var acc${i} = vec4<f32>(0.0);`).join("\n  ");
  const aReads = Array.from(
    { length: t.tm / 4 },
    (_, q) => `let a${q} = As[kk * ${t.bm / 4}u + ty * ${t.tm / 4}u + ${q}u];`,
  ).join("\n      ");
  const fmas = rows.map((i) =>
    `acc${i} = fma(vec4<f32>(a${Math.floor(i / 4)}[${i % 4}]), bv, acc${i});`
  ).join("\n      ");
  const stores = rows.map((i) => `store_row(o_base, m_first + ${i}u, n_first, acc${i});`)
    .join("\n  ");
  const loadB = v.bLayout === "nk"
    ? loadKContiguous(v, t, nt, "b", "Bs", t.bn, "n0", "p.N", "b_base", v.vecB)
    : loadNContiguous(v, t, nt, v.vecB);

  return /* wgsl */ `
${v.activation === "none" ? "" : ACTIVATION_WGSL}
struct P { M: u32, N: u32, K: u32, stride_a: u32, stride_b: u32, stride_out: u32 }
@group(0) @binding(0) var<uniform> p: P;
${gemmBindingDecls(v)}

// K-major staging: As[k * BM/4 + m/4][m % 4], Bs[k * BN/4 + n/4][n % 4].
var<workgroup> As: array<vec4<f32>, ${(t.bk * t.bm) / 4}>;
var<workgroup> Bs: array<vec4<f32>, ${(t.bk * t.bn) / 4}>;

fn store_row(o_base: u32, m: u32, n_first: u32, acc: vec4<f32>) {
  if (m >= p.M) { return; }
  for (var j = 0u; j < 4u; j++) {
    let n = n_first + j;
    if (n < p.N) {
      let o = o_base + m * p.N + n;
      out[o] = ${value};
    }
  }
}

@compute @workgroup_size(${nt})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) tid: u32) {
  let n0 = wg.x * ${t.bn}u;
  let m0 = wg.y * ${t.bm}u;
  let a_base = wg.z * p.stride_a;
  let b_base = wg.z * p.stride_b;
  let o_base = wg.z * p.stride_out;
  let tx = tid % ${tx}u;
  let ty = tid / ${tx}u;

  ${accDecl}
  for (var k0 = 0u; k0 < p.K; k0 += ${t.bk}u) {
    ${loadKContiguous(v, t, nt, "a", "As", t.bm, "m0", "p.M", "a_base", v.vecA)}
    ${loadB}
    workgroupBarrier();
    for (var kk = 0u; kk < ${t.bk}u; kk++) {
      ${aReads}
      let bv = Bs[kk * ${t.bn / 4}u + tx];
      ${fmas}
    }
    workgroupBarrier();
  }

  let m_first = m0 + ty * ${t.tm}u;
  let n_first = n0 + tx * ${TN}u;
  ${stores}
}`;
}

/** The cached KernelSpec of a variant; `prefix` names the op ("linear", "matmul_nn", ...). */
export function gemmSpec(prefix: string, v: GemmVariant): KernelSpec {
  const t = v.tile;
  const variant = { ...v };
  return cachedGemmSpec(prefix, v, `${t.bm}x${t.bn}x${t.bk}t${t.tm}`, () => gemmCode(variant));
}

/** Records one GEMM dispatch; `buffers` follow the spec's bindings after the uniform. */
export function dispatchGemm(
  ctx: GpuContext,
  spec: KernelSpec,
  tile: GemmTile,
  d: GemmDims,
  buffers: GPUBuffer[],
): void {
  const { bm, bn } = tile;
  const tilesN = Math.ceil(d.N / bn);
  const tilesM = Math.ceil(d.M / bm);
  if (tilesN > MAX_WORKGROUPS_PER_DIM || tilesM > MAX_WORKGROUPS_PER_DIM) {
    throw new Error(
      `${spec.name}: M=${d.M}, N=${d.N} need ${tilesM} x ${tilesN} tiles of ${bm}x${bn}, ` +
        `over ${MAX_WORKGROUPS_PER_DIM} per dimension`,
    );
  }
  if (d.batch > MAX_WORKGROUPS_PER_DIM) {
    throw new Error(`${spec.name}: batch ${d.batch} is over ${MAX_WORKGROUPS_PER_DIM}`);
  }
  const params = new Params()
    .u32(d.M, d.N, d.K, d.strideA, d.strideB, d.strideOut)
    .build();
  ctx.dispatch(spec, params, buffers, [tilesN, tilesM, d.batch]);
}

/** Named GEMM variants: the shared-memory tiles above, K-contiguous ones (gemm_kstage.ts) and
 * register blocks (gemm_register.ts). */
const TILES: Record<string, GemmTile> = { tile16: TILE_16, tile64: TILE_64, tile128: TILE_128 };

/** The default variant for M rows: tiled on GPUs; register-blocked on CPU adapters, with
 * invocations over rows when there are enough of them, else over columns. */
export function defaultGemmVariant(software: boolean, M: number): string {
  if (!software) return M <= TILE_16.bm ? "tile16" : M >= 512 ? "tile128" : "tile64";
  return M >= 64 ? "reg_m8x8w8" : "reg_n8x4w16";
}

/** Variants `deno task tune` times for a GEMM of M rows (split-K reads and writes f32 only). */
export function gemmCandidates(M: number, f16 = false): string[] {
  const names = ["tile16", "tile64", "tile128", "reg_m8x8w8", "reg_m8x8w16", "reg_m8x16w8"];
  names.push("reg_m4x8w16", "reg_n8x4w16", "reg_n8x4w8", "reg_n4x8w16");
  // K-contiguous staging, without and with prefetch of the next K tile (gemm_kstage.ts).
  names.push("tile64k", "tile64p", "tile128k", "tile128p");
  // Split-K (gemm_splitk.ts) for the few-row products, whose grids are small.
  if (M <= 64 && !f16) names.push("splitk4", "splitk8");
  return M <= 16 ? names.filter((n) => !n.startsWith("tile128")) : names;
}

/**
 * Tune-cache key of a GEMM shape; with f16 operands it ends in their letters ("|f16awo"), so
 * f32 and f16 runs of one shape are tuned apart (f32 keys are as before).
 */
export function gemmKey(bLayout: "nk" | "kn", d: GemmDims, v?: GemmEpilogue): string {
  const key = `gemm|${bLayout}|${d.batch}x${d.M}x${d.N}x${d.K}`;
  return v && gemmUsesF16(v) ? `${key}|${gemmF16Letters(v)}` : key;
}

/**
 * Records one GEMM with the variant named `variant`, else the tuned or default one for this
 * shape on this adapter. `buffers` follow the spec's bindings after the uniform.
 */
export function runGemm(
  ctx: GpuContext,
  prefix: string,
  base: GemmEpilogue,
  d: GemmDims,
  buffers: GPUBuffer[],
  variant?: string,
): void {
  if (gemmUsesF16(base)) requireShaderF16(ctx, prefix);
  const name = variant ??
    variantFor(
      ctx,
      gemmKey(base.bLayout, d, base),
      defaultGemmVariant(ctx.gpu.software, d.M),
      (tuned) => gemmCandidates(d.M, gemmUsesF16(base)).includes(tuned),
    );
  const slices = parseSplitKName(name);
  // Split-K's passes are f32 only: an f16 GEMM named so (by hand) takes the 64 tile.
  if (slices !== null && !gemmUsesF16(base) && splitKFits(d, slices)) {
    runSplitK(ctx, prefix, base, d, buffers, slices);
    return;
  }
  const tiled = TILES[name] ?? (slices !== null ? TILE_64 : undefined);
  if (tiled) {
    dispatchGemm(ctx, gemmSpec(prefix, { ...base, tile: tiled }), tiled, d, buffers);
    return;
  }
  const kst = parseKStageName(name);
  if (kst) {
    dispatchGemm(ctx, kStageGemmSpec(prefix, { ...base, ...kst }), kst.tile, d, buffers);
    return;
  }
  const reg = name.startsWith("reg_") ? parseRegisterTile(name.slice(4)) : null;
  if (!reg) throw new Error(`${prefix}: unknown GEMM variant "${name}"`);
  const { bm, bn } = registerBlock(reg);
  const tilesN = Math.ceil(d.N / bn);
  const tilesM = Math.ceil(d.M / bm);
  if (
    tilesN > MAX_WORKGROUPS_PER_DIM || tilesM > MAX_WORKGROUPS_PER_DIM ||
    d.batch > MAX_WORKGROUPS_PER_DIM
  ) {
    // Too many blocks for one grid: the 128-row tile covers the most.
    dispatchGemm(ctx, gemmSpec(prefix, { ...base, tile: TILE_128 }), TILE_128, d, buffers);
    return;
  }
  const params = new Params()
    .u32(d.M, d.N, d.K, d.strideA, d.strideB, d.strideOut)
    .build();
  ctx.dispatch(registerGemmSpec(prefix, { ...base, tile: reg }), params, buffers, [
    tilesN,
    tilesM,
    d.batch,
  ]);
}

export interface MatmulOptions {
  /** b is [B, N, K] (its last two dims transposed). */
  transposeB?: boolean;
  /** b has batch 1 and is shared by every batch of a. */
  broadcastB?: boolean;
  out?: Tensor;
  /** A GEMM variant by name ("tile64", "reg_m8x8w16"), overriding the tuned / default one. */
  variant?: string;
}

/**
 * Batched matmul: a [..., M, K] @ b [..., K, N] -> [..., M, N] (leading dims of a are the
 * batch). `transposeB`: b is [..., N, K]. `broadcastB`: b has one batch, used for all.
 */
export function matmul(ctx: GpuContext, a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  if (a.shape.length < 2 || b.shape.length < 2) {
    throw new Error(`matmul: need a and b of rank >= 2, got [${a.shape}] and [${b.shape}]`);
  }
  const M = a.shape[a.shape.length - 2];
  const K = a.shape[a.shape.length - 1];
  const [bRows, bCols] = b.shape.slice(-2);
  const [Kb, N] = opts.transposeB ? [bCols, bRows] : [bRows, bCols];
  if (Kb !== K) {
    throw new Error(
      `matmul: inner dims differ: a [${a.shape}] has K=${K}, b [${b.shape}]` +
        `${opts.transposeB ? " (transposed)" : ""} has K=${Kb}`,
    );
  }
  if (K === 0) throw new Error("matmul: K must be at least 1");
  const batch = M === 0 ? 0 : a.size / (M * K);
  const bBatch = N === 0 ? (opts.broadcastB ? 1 : batch) : b.size / (K * N);
  if (opts.broadcastB ? bBatch !== 1 : bBatch !== batch) {
    throw new Error(
      `matmul: b [${b.shape}] has batch ${bBatch}, need ${opts.broadcastB ? 1 : batch}` +
        ` (a [${a.shape}])`,
    );
  }
  const outShape = [...a.shape.slice(0, -2), M, N];
  const y = opts.out ?? emptyTensor(ctx, outShape, "matmul.out");
  if (y.size !== batch * M * N) {
    throw new Error(`matmul: out has ${y.size} elements, need ${batch * M * N}`);
  }
  if (y.buffer === a.buffer || y.buffer === b.buffer) {
    throw new Error("matmul: out must not alias an input");
  }
  const bLayout = opts.transposeB ? "nk" : "kn";
  runGemm(
    ctx,
    opts.transposeB ? "matmul_nt" : "matmul_nn",
    {
      bLayout,
      vecA: K % 4 === 0,
      vecB: bLayout === "nk" ? K % 4 === 0 : N % 4 === 0,
      bias: false,
      activation: "none",
      residual: false,
      ...(a.dtype === "f16" ? { aF16: true } : {}),
      ...(b.dtype === "f16" ? { bF16: true } : {}),
      ...(y.dtype === "f16" ? { outF16: true } : {}),
    },
    {
      batch,
      M,
      N,
      K,
      strideA: M * K,
      strideB: opts.broadcastB ? 0 : K * N,
      strideOut: M * N,
    },
    [a.buffer, b.buffer, y.buffer],
    opts.variant,
  );
  return y;
}
