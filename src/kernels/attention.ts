/**
 * Fused multi-head attention: out = softmax(scale * q k^T + bias) v, per (batch, head).
 *
 * FlashAttention-style: one workgroup owns a block of BQ queries of one (batch, head); it
 * streams over the keys in tiles of BK held in workgroup memory and keeps a running row max
 * and row sum (online softmax), so no (heads, nq, nk) score matrix ever exists. Each tile
 * is two small register-blocked matmuls: S = Qs Ks^T (4 rows x BK/8 keys per thread), then
 * O = O * corr + P Vs (4 rows x C vec4 columns per thread). K and V share one tile buffer
 * so the largest variant (headDim <= 128) stays under 32 KB of workgroup memory, the
 * smallest limit among our adapters (llvmpipe).
 *
 * Variants: the padded head dim DP = 32 * C, C in 1..4 (headDim 1..128), with and without
 * SAM's decomposed relative-position bias. Shared reads are vec4; global loads are scalar
 * because a HeadsView's offset and row stride need not be multiples of 4.
 */
import { type GpuContext, grid, type KernelSpec } from "../gpu/context.ts";
import { emptyTensor, Params, type Tensor } from "../gpu/tensor.ts";

/** [batch, tokens, heads, headDim] inside a buffer: (b, n, h, d) is at
 * offset + (b * tokens + n) * rowStride + h * headDim + d. */
export interface HeadsView {
  tensor: Tensor;
  offset: number;
  rowStride: number;
}

export interface AttentionDims {
  batch: number;
  heads: number;
  headDim: number;
  nq: number;
  nk: number;
}

/** SAM's decomposed rel-pos bias: for (batch*head bh, query q, key kh*kW + kw) the bias is
 * relH[bh, q, kh] + relW[bh, q, kw]. relH: [batch*heads, nq, kH], relW: [batch*heads, nq, kW]. */
export interface RelPosBias {
  relH: Tensor;
  relW: Tensor;
  kH: number;
  kW: number;
}

/** Queries per workgroup. */
const BQ = 32;
/** Threads per workgroup: an 8 x 8 grid (ty rows, tx columns). */
const THREADS = 64;
/** Largest supported head dim. */
export const MAX_HEAD_DIM = 128;
/** Sentinel for masked (out of range) keys; WGSL does not guarantee infinities. */
const NEG_BIG = "-1.0e30";

function attentionSpec(c: number, relPos: boolean): KernelSpec {
  const dp = 32 * c; // padded head dim
  const d4 = dp / 4; // vec4 per padded row
  // Keys per tile: larger tiles where the Q and K/V tiles are small, fewer barriers per key.
  const bk = c <= 2 ? 32 : 16;
  const kpt = bk / 8; // keys per thread in the S phase
  const name = `attention${relPos ? "_relpos" : ""}_d${dp}_f32`;
  const relBindings = relPos
    ? `@group(0) @binding(4) var<storage, read> relH: array<f32>;
@group(0) @binding(5) var<storage, read> relW: array<f32>;`
    : "";
  const outBinding = relPos ? 6 : 4;
  const addBias = relPos
    ? `if (n < p.nq) {
          let rowBase = bh * p.nq + n;
          sc = sc + relH[rowBase * p.kH + kj / p.kW] + relW[rowBase * p.kW + kj % p.kW];
        }`
    : "";
  return {
    name,
    bindings: relPos
      ? ["uniform", "read", "read", "read", "read", "read", "write"]
      : ["uniform", "read", "read", "read", "write"],
    code: () => /* wgsl */ `
struct P {
  batch: u32, heads: u32, headDim: u32, nq: u32, nk: u32,
  qOff: u32, qStride: u32, kOff: u32, kStride: u32, vOff: u32, vStride: u32,
  scale: f32, nqb: u32, d4n: u32, kH: u32, kW: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> qBuf: array<f32>;
@group(0) @binding(2) var<storage, read> kBuf: array<f32>;
@group(0) @binding(3) var<storage, read> vBuf: array<f32>;
${relBindings}
@group(0) @binding(${outBinding}) var<storage, read_write> outBuf: array<f32>;

const BQ = ${BQ}u;
const BK = ${bk}u;
const D4 = ${d4}u;
const C = ${c}u;
const KPT = ${kpt}u;

var<workgroup> qs: array<vec4<f32>, ${BQ * d4}>;   // [BQ, D4], pre-scaled
var<workgroup> kvs: array<vec4<f32>, ${bk * d4}>;  // [BK, D4], K tile then V tile
var<workgroup> ss: array<f32, ${BQ * bk}>;         // [BQ, BK], scores then probabilities
var<workgroup> rowCorr: array<f32, ${BQ}>;         // per-row rescale of O for this tile
var<workgroup> rowInv: array<f32, ${BQ}>;          // 1 / row sum at the end

// Loads token row n of head h (batch b) as padded vec4 d4 of a HeadsView; zero outside.
fn loadRow(which: u32, b: u32, tokens: u32, n: u32, h: u32, d4: u32) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  if (n >= tokens) { return v; }
  var off: u32; var stride: u32;
  if (which == 0u) { off = p.qOff; stride = p.qStride; }
  else if (which == 1u) { off = p.kOff; stride = p.kStride; }
  else { off = p.vOff; stride = p.vStride; }
  let base = off + (b * tokens + n) * stride + h * p.headDim;
  for (var e = 0u; e < 4u; e++) {
    let d = d4 * 4u + e;
    if (d < p.headDim) {
      if (which == 0u) { v[e] = qBuf[base + d]; }
      else if (which == 1u) { v[e] = kBuf[base + d]; }
      else { v[e] = vBuf[base + d]; }
    }
  }
  return v;
}

@compute @workgroup_size(${THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let flat = wg.x + wg.y * nwg.x;
  let bh = flat / p.nqb;
  if (bh >= p.batch * p.heads) { return; }  // workgroup-uniform: padding of the folded grid
  let q0 = (flat % p.nqb) * BQ;
  let b = bh / p.heads;
  let h = bh % p.heads;
  let ty = lid / 8u;
  let tx = lid % 8u;

  // Q tile [BQ, D4], scaled once here instead of per score.
  for (var i = lid; i < BQ * D4; i += ${THREADS}u) {
    qs[i] = loadRow(0u, b, p.nq, q0 + i / D4, h, i % D4) * p.scale;
  }

  var m = ${NEG_BIG};  // running max of row lid (threads lid < BQ own one row each)
  var l = 0.0;         // running sum of exp(s - m) of that row
  var acc: array<vec4<f32>, ${4 * c}>;  // O rows ty + 8r, vec4 columns tx + 8i: [r * C + i]
  for (var i = 0u; i < 4u * C; i++) { acc[i] = vec4<f32>(0.0); }

  for (var k0 = 0u; k0 < p.nk; k0 += BK) {
    workgroupBarrier();  // the previous tile's P V is done with kvs and ss
    for (var i = lid; i < BK * D4; i += ${THREADS}u) {
      kvs[i] = loadRow(1u, b, p.nk, k0 + i / D4, h, i % D4);
    }
    workgroupBarrier();

    // S = Qs Ks^T for rows ty + 8r, keys tx + 8j.
    var s: array<f32, ${4 * kpt}>;
    for (var i = 0u; i < 4u * KPT; i++) { s[i] = 0.0; }
    for (var d = 0u; d < p.d4n; d++) {
      var qv: array<vec4<f32>, 4>;
      for (var r = 0u; r < 4u; r++) { qv[r] = qs[(ty + 8u * r) * D4 + d]; }
      for (var j = 0u; j < KPT; j++) {
        let kv = kvs[(tx + 8u * j) * D4 + d];
        for (var r = 0u; r < 4u; r++) { s[r * KPT + j] += dot(qv[r], kv); }
      }
    }
    for (var r = 0u; r < 4u; r++) {
      let row = ty + 8u * r;
      let n = q0 + row;
      for (var j = 0u; j < KPT; j++) {
        let key = tx + 8u * j;
        let kj = k0 + key;
        var sv = ${NEG_BIG};
        if (kj < p.nk) {
          var sc = s[r * KPT + j];
          ${addBias}
          sv = sc;
        }
        ss[row * BK + key] = sv;
      }
    }
    workgroupBarrier();  // scores complete; kvs free for V

    // Online softmax, one thread per row: new max, rescale factor, probabilities.
    if (lid < BQ) {
      let kn = min(BK, p.nk - k0);
      var tmax = m;
      for (var j = 0u; j < kn; j++) { tmax = max(tmax, ss[lid * BK + j]); }
      let corr = exp(m - tmax);
      var sum = 0.0;
      for (var j = 0u; j < BK; j++) {
        var pj = 0.0;
        if (j < kn) { pj = exp(ss[lid * BK + j] - tmax); }
        ss[lid * BK + j] = pj;
        sum += pj;
      }
      l = l * corr + sum;
      m = tmax;
      rowCorr[lid] = corr;
    }
    for (var i = lid; i < BK * D4; i += ${THREADS}u) {
      kvs[i] = loadRow(2u, b, p.nk, k0 + i / D4, h, i % D4);
    }
    workgroupBarrier();

    // O = O * corr + P Vs.
    var pr: array<f32, 4>;
    for (var r = 0u; r < 4u; r++) {
      let corr = rowCorr[ty + 8u * r];
      for (var i = 0u; i < C; i++) { acc[r * C + i] *= corr; }
    }
    let kn = min(BK, p.nk - k0);
    for (var j = 0u; j < kn; j++) {
      for (var r = 0u; r < 4u; r++) { pr[r] = ss[(ty + 8u * r) * BK + j]; }
      for (var i = 0u; i < C; i++) {
        let vv = kvs[j * D4 + tx + 8u * i];
        for (var r = 0u; r < 4u; r++) { acc[r * C + i] += pr[r] * vv; }
      }
    }
  }

  if (lid < BQ) { rowInv[lid] = 1.0 / l; }
  workgroupBarrier();
  let outStride = p.heads * p.headDim;
  for (var r = 0u; r < 4u; r++) {
    let row = ty + 8u * r;
    let n = q0 + row;
    if (n >= p.nq) { continue; }
    let inv = rowInv[row];
    let base = (b * p.nq + n) * outStride + h * p.headDim;
    for (var i = 0u; i < C; i++) {
      let col = tx + 8u * i;
      let o = acc[r * C + i] * inv;
      for (var e = 0u; e < 4u; e++) {
        let d = col * 4u + e;
        if (d < p.headDim) { outBuf[base + d] = o[e]; }
      }
    }
  }
}`,
  };
}

/** The variants, built once: index [relPos ? 1 : 0][C - 1]. */
const SPECS: KernelSpec[][] = [false, true].map((rel) =>
  [1, 2, 3, 4].map((c) => attentionSpec(c, rel))
);

function checkView(label: string, v: HeadsView, dims: AttentionDims, tokens: number): void {
  const { batch, heads, headDim } = dims;
  for (const [k, x] of [["offset", v.offset], ["rowStride", v.rowStride]] as const) {
    if (!Number.isInteger(x) || x < 0) {
      throw new Error(`attention: ${label}.${k} must be a non-negative integer, got ${x}`);
    }
  }
  if (v.rowStride < heads * headDim) {
    throw new Error(
      `attention: ${label}.rowStride ${v.rowStride} < heads*headDim = ${heads * headDim}`,
    );
  }
  const last = v.offset + (batch * tokens - 1) * v.rowStride + heads * headDim - 1;
  if (last >= v.tensor.size) {
    throw new Error(
      `attention: ${label} view [batch ${batch}, tokens ${tokens}, heads ${heads}, ` +
        `headDim ${headDim}] at offset ${v.offset}, rowStride ${v.rowStride} reaches element ` +
        `${last} of a tensor of ${v.tensor.size} ([${v.tensor.shape}])`,
    );
  }
}

/**
 * softmax(scale * q k^T + relPos) v for every (batch, head); returns [batch, nq, heads*headDim]
 * with heads interleaved as in the input (ready for the output projection).
 */
export function attention(
  ctx: GpuContext,
  q: HeadsView,
  k: HeadsView,
  v: HeadsView,
  dims: AttentionDims,
  opts: { scale?: number; relPos?: RelPosBias; out?: Tensor } = {},
): Tensor {
  const { batch, heads, headDim, nq, nk } = dims;
  for (const [key, x] of Object.entries({ batch, heads, headDim, nq, nk })) {
    if (!Number.isInteger(x) || x < 1) {
      throw new Error(`attention: dims.${key} must be a positive integer, got ${x}`);
    }
  }
  if (headDim > MAX_HEAD_DIM) {
    throw new Error(`attention: headDim ${headDim} > ${MAX_HEAD_DIM} is not supported`);
  }
  checkView("q", q, dims, nq);
  checkView("k", k, dims, nk);
  checkView("v", v, dims, nk);
  const scale = opts.scale ?? 1 / Math.sqrt(headDim);
  if (!Number.isFinite(scale)) throw new Error(`attention: scale ${scale} is not finite`);
  const rel = opts.relPos;
  if (rel) {
    if (rel.kH * rel.kW !== nk) {
      throw new Error(`attention: relPos kH*kW = ${rel.kH}*${rel.kW} != nk ${nk}`);
    }
    if (rel.relH.size !== batch * heads * nq * rel.kH) {
      throw new Error(
        `attention: relPos.relH has ${rel.relH.size} elements, need ` +
          `[batch*heads ${batch * heads}, nq ${nq}, kH ${rel.kH}]`,
      );
    }
    if (rel.relW.size !== batch * heads * nq * rel.kW) {
      throw new Error(
        `attention: relPos.relW has ${rel.relW.size} elements, need ` +
          `[batch*heads ${batch * heads}, nq ${nq}, kW ${rel.kW}]`,
      );
    }
  }
  const outShape = [batch, nq, heads * headDim];
  const out = opts.out ?? emptyTensor(ctx, outShape, "attention.out");
  if (out.size !== batch * nq * heads * headDim) {
    throw new Error(`attention: out has ${out.size} elements, need [${outShape}]`);
  }
  const inputs = [q.tensor, k.tensor, v.tensor, ...(rel ? [rel.relH, rel.relW] : [])];
  if (inputs.some((t) => t.buffer === out.buffer)) {
    throw new Error("attention: out must not share a buffer with q, k, v or relPos");
  }
  const c = Math.ceil(headDim / 32);
  const spec = SPECS[rel ? 1 : 0][c - 1];
  const nqb = Math.ceil(nq / BQ);
  const params = new Params()
    .u32(batch, heads, headDim, nq, nk)
    .u32(q.offset, q.rowStride, k.offset, k.rowStride, v.offset, v.rowStride)
    .f32(scale)
    .u32(nqb, Math.ceil(headDim / 4), rel?.kH ?? 1, rel?.kW ?? 1)
    .build();
  const buffers = [q.tensor.buffer, k.tensor.buffer, v.tensor.buffer];
  if (rel) buffers.push(rel.relH.buffer, rel.relW.buffer);
  buffers.push(out.buffer);
  ctx.dispatch(spec, params, buffers, grid(batch * heads * nqb));
  return out;
}
