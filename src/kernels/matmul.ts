/**
 * Tiled GEMM shared by `matmul` (batched, optional transposed / broadcast B) and `linear`
 * (x @ W^T with a fused bias / activation / residual epilogue).
 *
 * Each workgroup computes a 64x64 output tile with 256 threads, 4x4 outputs per thread held
 * in registers (four vec4 accumulators). K is walked in steps of 16: the A and B tiles are
 * staged in workgroup memory K-major (As[k][m], Bs[k][n]) so a thread reads one vec4 of A
 * (its 4 rows) and one vec4 of B (its 4 columns) per k. Global loads are vec4 where the
 * contiguous dimension is a multiple of 4 (the "_v4" variants), scalar otherwise. M, N and
 * K need not be multiples of the tile: out-of-range loads read zero, stores are guarded.
 * The dispatch is 3-D (N tiles, M tiles, batch): up to 65535 of each, so M and N up to
 * 4,194,240 and any product of them (far over 65535 workgroups in all) need no folding.
 */
import { type GpuContext, type KernelSpec, MAX_WORKGROUPS_PER_DIM } from "../gpu/context.ts";
import { emptyTensor, Params, type Tensor } from "../gpu/tensor.ts";
import { type Activation, ACTIVATION_WGSL, activationExpr } from "./activation.ts";

const BM = 64; // tile rows (M)
const BN = 64; // tile columns (N)
const BK = 16; // K step
const TM = 4; // rows per thread
const TN = 4; // columns per thread (one vec4)
const TX = BN / TN; // threads along N
const TY = BM / TM; // threads along M
const NT = TX * TY; // threads per workgroup

/** A GEMM shader variant. */
export interface GemmVariant {
  /** "nk": B is [N, K] (K contiguous: linear weights, transposeB); "kn": B is [K, N]. */
  bLayout: "nk" | "kn";
  /** A rows (K) load as vec4: K % 4 == 0. */
  vecA: boolean;
  /** B loads as vec4 along its contiguous dim: K % 4 == 0 for "nk", N % 4 == 0 for "kn". */
  vecB: boolean;
  bias: boolean;
  activation: Activation;
  residual: boolean;
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

function loadA(vec: boolean): string {
  if (vec) {
    // BM rows x BK/4 vec4 = NT loads: one per thread.
    return `{
      let row = tid / ${BK / 4}u;
      let kq = tid % ${BK / 4}u;
      let m = m0 + row;
      let k = k0 + kq * 4u;
      var v = vec4<f32>(0.0);
      if (m < p.M && k < p.K) { v = a[(a_base + m * p.K + k) / 4u]; }
      for (var j = 0u; j < 4u; j++) { As[(kq * 4u + j) * ${BM / 4}u + row / 4u][row % 4u] = v[j]; }
    }`;
  }
  return `for (var i = 0u; i < ${(BM * BK) / NT}u; i++) {
      let l = tid + i * ${NT}u;
      let row = l / ${BK}u;
      let kk = l % ${BK}u;
      let m = m0 + row;
      let k = k0 + kk;
      var v = 0.0;
      if (m < p.M && k < p.K) { v = a[a_base + m * p.K + k]; }
      As[kk * ${BM / 4}u + row / 4u][row % 4u] = v;
    }`;
}

function loadB(layout: "nk" | "kn", vec: boolean): string {
  if (layout === "nk") {
    if (vec) {
      return `{
      let col = tid / ${BK / 4}u;
      let kq = tid % ${BK / 4}u;
      let n = n0 + col;
      let k = k0 + kq * 4u;
      var v = vec4<f32>(0.0);
      if (n < p.N && k < p.K) { v = b[(b_base + n * p.K + k) / 4u]; }
      for (var j = 0u; j < 4u; j++) { Bs[(kq * 4u + j) * ${BN / 4}u + col / 4u][col % 4u] = v[j]; }
    }`;
    }
    return `for (var i = 0u; i < ${(BN * BK) / NT}u; i++) {
      let l = tid + i * ${NT}u;
      let col = l / ${BK}u;
      let kk = l % ${BK}u;
      let n = n0 + col;
      let k = k0 + kk;
      var v = 0.0;
      if (n < p.N && k < p.K) { v = b[b_base + n * p.K + k]; }
      Bs[kk * ${BN / 4}u + col / 4u][col % 4u] = v;
    }`;
  }
  if (vec) {
    // BK rows of B x BN/4 vec4 = NT loads, stored as they are.
    return `{
      let kk = tid / ${BN / 4}u;
      let nq = tid % ${BN / 4}u;
      let k = k0 + kk;
      let n = n0 + nq * 4u;
      var v = vec4<f32>(0.0);
      if (k < p.K && n < p.N) { v = b[(b_base + k * p.N + n) / 4u]; }
      Bs[kk * ${BN / 4}u + nq] = v;
    }`;
  }
  return `for (var i = 0u; i < ${(BN * BK) / NT}u; i++) {
      let l = tid + i * ${NT}u;
      let kk = l / ${BN}u;
      let col = l % ${BN}u;
      let k = k0 + kk;
      let n = n0 + col;
      var v = 0.0;
      if (k < p.K && n < p.N) { v = b[b_base + k * p.N + n]; }
      Bs[kk * ${BN / 4}u + col / 4u][col % 4u] = v;
    }`;
}

function gemmCode(v: GemmVariant): string {
  const vecType = (vec: boolean) => (vec ? "vec4<f32>" : "f32");
  let binding = 1;
  const decls = [
    `@group(0) @binding(${binding++}) var<storage, read> a: array<${vecType(v.vecA)}>;`,
    `@group(0) @binding(${binding++}) var<storage, read> b: array<${vecType(v.vecB)}>;`,
  ];
  if (v.bias) decls.push(`@group(0) @binding(${binding++}) var<storage, read> bias: array<f32>;`);
  if (v.residual) {
    decls.push(`@group(0) @binding(${binding++}) var<storage, read> residual: array<f32>;`);
  }
  decls.push(`@group(0) @binding(${binding++}) var<storage, read_write> out: array<f32>;`);

  let value = "acc[j]";
  if (v.bias) value = `(${value} + bias[n])`;
  value = activationExpr(v.activation, value);
  if (v.residual) value = `${value} + residual[o]`;

  const accDecl = Array.from({ length: TM }, (_, i) => `var acc${i} = vec4<f32>(0.0);`).join(
    "\n  ",
  );
  const fmas = Array.from(
    { length: TM },
    (_, i) => `acc${i} = fma(vec4<f32>(av[${i}]), bv, acc${i});`,
  ).join("\n      ");
  const stores = Array.from(
    { length: TM },
    (_, i) => `store_row(o_base, m_first + ${i}u, n_first, acc${i});`,
  )
    .join("\n  ");

  return /* wgsl */ `
${v.activation === "none" ? "" : ACTIVATION_WGSL}
struct P { M: u32, N: u32, K: u32, stride_a: u32, stride_b: u32, stride_out: u32 }
@group(0) @binding(0) var<uniform> p: P;
${decls.join("\n")}

// K-major staging: As[k * BM/4 + m/4][m % 4], Bs[k * BN/4 + n/4][n % 4].
var<workgroup> As: array<vec4<f32>, ${(BK * BM) / 4}>;
var<workgroup> Bs: array<vec4<f32>, ${(BK * BN) / 4}>;

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

@compute @workgroup_size(${NT})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) tid: u32) {
  let tn = wg.x;
  let tm = wg.y;
  let batch = wg.z;
  let m0 = tm * ${BM}u;
  let n0 = tn * ${BN}u;
  let a_base = batch * p.stride_a;
  let b_base = batch * p.stride_b;
  let o_base = batch * p.stride_out;
  let tx = tid % ${TX}u;
  let ty = tid / ${TX}u;

  ${accDecl}
  for (var k0 = 0u; k0 < p.K; k0 += ${BK}u) {
    ${loadA(v.vecA)}
    ${loadB(v.bLayout, v.vecB)}
    workgroupBarrier();
    for (var kk = 0u; kk < ${BK}u; kk++) {
      let av = As[kk * ${BM / 4}u + ty];
      let bv = Bs[kk * ${BN / 4}u + tx];
      ${fmas}
    }
    workgroupBarrier();
  }

  let m_first = m0 + ty * ${TM}u;
  let n_first = n0 + tx * ${TN}u;
  ${stores}
}`;
}

const gemmSpecs = new Map<string, KernelSpec>();

/** The cached KernelSpec of a variant; `prefix` names the op ("linear", "matmul_nn", ...). */
export function gemmSpec(prefix: string, v: GemmVariant): KernelSpec {
  const parts = [prefix];
  if (v.bias) parts.push("bias");
  if (v.activation !== "none") parts.push(v.activation);
  if (v.residual) parts.push("residual");
  parts.push("f32");
  if (v.vecA) parts.push("a4");
  if (v.vecB) parts.push("b4");
  const name = parts.join("_");
  let spec = gemmSpecs.get(name);
  if (!spec) {
    const bindings: KernelSpec["bindings"] = [
      "uniform",
      "read",
      "read",
      ...(v.bias ? ["read" as const] : []),
      ...(v.residual ? ["read" as const] : []),
      "write",
    ];
    const variant = { ...v };
    spec = { name, bindings, code: () => gemmCode(variant) };
    gemmSpecs.set(name, spec);
  }
  return spec;
}

/** Records one GEMM dispatch; `buffers` follow the spec's bindings after the uniform. */
export function dispatchGemm(
  ctx: GpuContext,
  spec: KernelSpec,
  d: GemmDims,
  buffers: GPUBuffer[],
): void {
  const tilesN = Math.ceil(d.N / BN);
  const tilesM = Math.ceil(d.M / BM);
  if (tilesN > MAX_WORKGROUPS_PER_DIM || tilesM > MAX_WORKGROUPS_PER_DIM) {
    throw new Error(
      `${spec.name}: M=${d.M}, N=${d.N} need ${tilesM} x ${tilesN} tiles of ${BM}x${BN}, ` +
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

export interface MatmulOptions {
  /** b is [B, N, K] (its last two dims transposed). */
  transposeB?: boolean;
  /** b has batch 1 and is shared by every batch of a. */
  broadcastB?: boolean;
  out?: Tensor;
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
  const batch = M * K === 0 ? 0 : a.size / (M * K);
  const bBatch = b.size / (K * N || 1);
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
  const spec = gemmSpec(opts.transposeB ? "matmul_nt" : "matmul_nn", {
    bLayout,
    vecA: K % 4 === 0,
    vecB: bLayout === "nk" ? K % 4 === 0 : N % 4 === 0,
    bias: false,
    activation: "none",
    residual: false,
  });
  dispatchGemm(ctx, spec, {
    batch,
    M,
    N,
    K,
    strideA: M * K,
    strideB: opts.broadcastB ? 0 : K * N,
    strideOut: M * N,
  }, [a.buffer, b.buffer, y.buffer]);
  return y;
}
