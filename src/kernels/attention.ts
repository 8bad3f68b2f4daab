/**
 * Fused multi-head attention: out = softmax(scale * q k^T + bias) v, per (batch, head).
 *
 * FlashAttention-style: one workgroup (8 x 8 threads) owns a block of BQ queries of one
 * (batch, head); it streams over the keys in tiles of BK held in workgroup memory and keeps
 * a running row max and row sum (online softmax), so no (heads, nq, nk) score matrix ever
 * exists (ViT-H global attention would need 1 GB for one). Each key tile is two small
 * register-blocked matmuls, fully unrolled so the blocks are registers:
 *   S = Qs Ks^T   each thread `rows` query rows x `keys` keys, one vec4 read per row / key
 *                 feeding rows * keys dot products;
 *   O = O * corr + P Vs   each thread `rows` rows x c vec4 columns of the output.
 * Between them one thread per row folds the tile into the running max / sum and turns the
 * scores into probabilities. K and V share one tile buffer so the largest variant (headDim
 * 128) stays under 32 KB of workgroup memory, the smallest limit among our adapters.
 *
 * Variants (named, built on first use): padded head dim 32c (headDim 1..128), rows 4 (BQ 32)
 * or 1 for at most 8 queries (decoder prompt tokens), keys 4 / 2 (BK 32 / 16 by head size)
 * or 1 for at most 8 keys, vec4 or scalar global access (a HeadsView's offset and stride
 * need not be multiples of 4), with or without SAM's decomposed rel-pos bias, which is
 * added to the scores on the fly from its two factors relH, relW, or a full per-head bias
 * table [heads, nq, nk] shared by every batch (TinyViT's gathered `attention_biases`; only
 * this tiled kernel takes one, so it is used for them on every adapter).
 *
 * The decoder's cross attentions (7 prompt tokens <-> 4096 image tokens, head dims <= 32,
 * no rel pos) have two kernels of their own, below: few keys (all K/V in workgroup memory,
 * one query per thread in straight-line code) and few queries (the keys split over the 64
 * threads, partial softmaxes merged at the end).
 *
 * On llvmpipe every workgroup-memory read inside a loop costs far more than the arithmetic
 * it feeds, so the register blocks (reads per dot product) decide the speed there.
 *
 * Other named variants, dispatched from `attention` below: register rows for CPU adapters
 * ("rows16w8", ... attention_rows.ts), split-KV ("splitkv4/8", attention_splitkv.ts) and this
 * kernel with padded tiles and a serial, tree or subgroup softmax ("tiledpad", "tiledpar",
 * "tiledsg", attention_padded.ts).
 */
import { type GpuContext, grid, type KernelSpec } from "../gpu/context.ts";
import { emptyTensor, Params, requireShaderF16, type Tensor } from "../gpu/tensor.ts";
import {
  ATTENTION_PARAMS_WGSL,
  attentionBindings,
  attentionHeader,
  loadVec4,
  NEG_BIG,
  unroll,
} from "./attention_wgsl.ts";
import {
  attentionRowsSpec,
  parseRowsName,
  ROWS_MAX_REL,
  type RowsVariant,
} from "./attention_rows.ts";
import { variantFor } from "./tuning.ts";
import { parseSplitKvName, runSplitKv, splitKvFits } from "./attention_splitkv.ts";
import {
  attentionPaddedSpec,
  paddedRows,
  type PaddedVariant,
  parsePaddedName,
} from "./attention_padded.ts";

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

/** Largest supported head dim. */
export const MAX_HEAD_DIM = 128;
/** A shader variant's shape. */
interface Variant {
  /** Padded head dim / 32: the thread owns `c` vec4 columns of O (headDim <= 32c). */
  c: number;
  /** Query rows per thread (workgroup: 8 x 8 threads, BQ = 8 * rows). */
  rows: number;
  /** Keys per thread in the score phase (BK = 8 * keys). */
  keys: number;
  /** q, k, v, out accessed as vec4 (offsets, strides, headDim multiples of 4). */
  v4: boolean;
  relPos: boolean;
  /** Adds biasTab[h, q, k] (a [heads, nq, nk] table, the same for every batch). */
  biasTable: boolean;
  /** q, k, v stored as f16 (precision "f16"), widened on load. */
  half?: boolean;
  /** out stored as f16 (rounded once at the store). */
  halfOut?: boolean;
}

function attentionSpec(vt: Variant): KernelSpec {
  const { c, rows, keys, v4, relPos, biasTable } = vt;
  const half = vt.half ?? false;
  const halfOut = vt.halfOut ?? false;
  const d4 = 8 * c; // vec4 per padded head row
  const bq = 8 * rows;
  const bk = 8 * keys;
  const name = `attention${relPos ? "_relpos" : ""}${biasTable ? "_bias" : ""}_d${
    32 * c
  }_q${bq}_k${bk}${v4 ? "_v4" : ""}_f32${half ? "_f16qkv" : ""}${halfOut ? "_f16o" : ""}`;
  const elem = v4 ? "vec4<f32>" : "f32";
  const R = Array.from({ length: rows }, (_, r) => r); // thread rows ty + 8r
  const J = Array.from({ length: keys }, (_, j) => j); // thread keys tx + 8j (score phase)
  const I = Array.from({ length: c }, (_, i) => i); // thread O columns tx + 8i (vec4)
  const loadTile = (
    dst: string,
    buf: string,
    off: string,
    stride: string,
    tokens: string,
    row0: string,
    n: number,
    dstStride: number,
    scale = "",
  ) =>
    `for (var i = lid; i < ${n * d4}u; i += 64u) {
      let t = ${row0} + i / ${d4}u;
      let base = ${off} + (b * ${tokens} + min(t, ${tokens} - 1u)) * ${stride} + h * p.headDim;
      ${dst}[(i / ${d4}u) * ${dstStride}u + i % ${d4}u] =
        ${loadVec4(v4, buf, "base", `(i % ${d4}u)`, `t < ${tokens}`, half)}${scale};
    }`;
  // kh = kj / kW without an integer division per score: (kj + 0.5) / kW is at least
  // 0.5 / kW away from an integer, far more than float32 error for kj < 2^20.
  const score = (r: number, j: number) => {
    const key = `k0 + tx + ${8 * j}u`;
    const bias = relPos
      ? ` + relH[rowH${r} + kh${j}] + relW[rowW${r} + ${key} - kh${j} * p.kW]`
      : biasTable
      ? ` + biasTab[rowB${r} + min(${key}, p.nk - 1u)]`
      : "";
    return `ss[(ty + ${8 * r}u) * SS + tx + ${
      8 * j
    }u] = select(${NEG_BIG}, s${r}_${j}${bias}, ${key} < p.nk);`;
  };
  const store = (r: number, i: number) =>
    v4
      ? `    if (${32 * i}u + tx * 4u < p.headDim) { outBuf[base / 4u + tx + ${8 * i}u] = ${
        halfOut ? `vec4<f16>(o${r}_${i} * inv)` : `o${r}_${i} * inv`
      }; }`
      : `    { let o = o${r}_${i} * inv;
      let d = (tx + ${8 * i}u) * 4u;
      for (var e = 0u; e < 4u; e++) { if (d + e < p.headDim) { outBuf[base + d + e] = ${
        halfOut ? "f16(o[e])" : "o[e]"
      }; } } }`;
  return {
    name,
    bindings: attentionBindings(relPos, biasTable),
    code: () => /* wgsl */ `
${attentionHeader(elem, relPos, biasTable, half, halfOut)}

const D4 = ${d4}u;
const BQ = ${bq}u;
const BK = ${bk}u;
// Row strides padded by one so the 8 key rows a warp reads in the score phase, and the
// rows the softmax threads walk, fall in different memory banks.
const KS = ${d4 + 1}u;
const SS = ${bk + 1}u;
var<workgroup> qs: array<vec4<f32>, ${bq * d4}>;         // [BQ, D4], pre-scaled
var<workgroup> kvs: array<vec4<f32>, ${bk * (d4 + 1)}>;  // [BK, KS], K tile then V tile
var<workgroup> ss: array<f32, ${bq * (bk + 1)}>;         // [BQ, SS], scores, then P
var<workgroup> rowCorr: array<f32, ${bq}>;         // per-row rescale of O for this tile
var<workgroup> rowInv: array<f32, ${bq}>;          // 1 / row sum at the end

@compute @workgroup_size(64)
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
${
      relPos
        ? unroll(rows, (r) =>
          `  let rowQ${r} = bh * p.nq + min(q0 + ty + ${8 * r}u, p.nq - 1u);
  let rowH${r} = rowQ${r} * p.kH;
  let rowW${r} = rowQ${r} * p.kW;`)
        : biasTable
        ? unroll(rows, (r) =>
          `  let rowB${r} = (h * p.nq + min(q0 + ty + ${8 * r}u, p.nq - 1u)) * p.nk;`)
        : ""
    }

  // Q tile, scaled once here instead of per score.
  ${loadTile("qs", "qBuf", "p.qOff", "p.qStride", "p.nq", "q0", bq, d4, " * p.scale")}

  var m = ${NEG_BIG};  // running max of row lid (threads lid < BQ own one row each)
  var l = 0.0;         // running sum of exp(s - m) of that row
${R.map((r) => I.map((i) => `  var o${r}_${i} = vec4<f32>(0.0);`).join("\n")).join("\n")}

  for (var k0 = 0u; k0 < p.nk; k0 += BK) {
    workgroupBarrier();  // the previous tile's P V is done with kvs and ss
    ${loadTile("kvs", "kBuf", "p.kOff", "p.kStride", "p.nk", "k0", bk, d4 + 1)}
    workgroupBarrier();

    // S = Qs Ks^T: each thread a rows x keys block, each vec4 read feeding several dots.
${R.map((r) => J.map((j) => `    var s${r}_${j} = 0.0;`).join("\n")).join("\n")}
    for (var d = 0u; d < p.d4n; d++) {
${unroll(rows, (r) => `      let q${r} = qs[(ty + ${8 * r}u) * D4 + d];`)}
${unroll(keys, (j) => `      let k${j} = kvs[(tx + ${8 * j}u) * KS + d];`)}
${R.map((r) => J.map((j) => `      s${r}_${j} += dot(q${r}, k${j});`).join("\n")).join("\n")}
    }
${
      relPos
        ? unroll(keys, (j) => `    let kh${j} = u32((f32(k0 + tx + ${8 * j}u) + 0.5) * p.invKW);`)
        : ""
    }
${R.map((r) => J.map((j) => `    ${score(r, j)}`).join("\n")).join("\n")}
    workgroupBarrier();  // scores complete; kvs free for V

    // Online softmax, one thread per row: new max, rescale factor, probabilities.
    let kn = min(BK, p.nk - k0);
    if (lid < BQ) {
      var tmax = m;
      for (var j = 0u; j < kn; j++) { tmax = max(tmax, ss[lid * SS + j]); }
      let corr = exp(m - tmax);
      var sum = 0.0;
      for (var j = 0u; j < kn; j++) {
        let pj = exp(ss[lid * SS + j] - tmax);
        ss[lid * SS + j] = pj;
        sum += pj;
      }
      l = l * corr + sum;
      m = tmax;
      rowCorr[lid] = corr;
    }
    ${loadTile("kvs", "vBuf", "p.vOff", "p.vStride", "p.nk", "k0", bk, d4 + 1)}
    workgroupBarrier();

    // O = O * corr + P Vs: each thread a rows x c-vec4 block.
${
      unroll(rows, (r) =>
        `    let c${r} = rowCorr[ty + ${8 * r}u];\n` +
        unroll(c, (i) => `    o${r}_${i} *= c${r};`))
    }
    for (var j = 0u; j < kn; j++) {
${unroll(rows, (r) => `      let p${r} = ss[(ty + ${8 * r}u) * SS + j];`)}
${unroll(c, (i) => `      let v${i} = kvs[j * KS + tx + ${8 * i}u];`)}
${R.map((r) => I.map((i) => `      o${r}_${i} += p${r} * v${i};`).join("\n")).join("\n")}
    }
  }

  if (lid < BQ) { rowInv[lid] = 1.0 / l; }
  workgroupBarrier();
${
      unroll(rows, (r) =>
        `  if (q0 + ty + ${8 * r}u < p.nq) {
    let inv = rowInv[ty + ${8 * r}u];
    let base = (b * p.nq + q0 + ty + ${8 * r}u) * p.heads * p.headDim + h * p.headDim;
${unroll(c, (i) => store(r, i))}
  }`)
    }
}`,
  };
}

/** Most queries and largest padded head dim of the few-query kernel. */
const FEW_Q = 8;
const FEW_Q_MAX_DP = 32;

/**
 * Few queries (the decoder's prompt tokens attending 4096 image tokens, up to 64 prompts):
 * one workgroup per (batch, head) splits the KEYS over its 64 threads. Each thread keeps all
 * (<= 8) query rows, their running max / sum and outputs in registers and streams its keys
 * (lid, lid + 64, ...) straight from memory, one online-softmax step per key; the 64 partial
 * results are then merged through workgroup memory, row by row. Every K / V read serves all
 * queries, where the tiled kernel would run blocks of 8 query rows that are mostly empty.
 * Head dims up to 32 (padded to 16 or 32), no rel-pos bias (the decoder has none).
 */
function fewQuerySpec(dp: number, v4: boolean): KernelSpec {
  const d4 = dp / 4;
  const name = `attention_fewq_d${dp}${v4 ? "_v4" : ""}_f32`;
  const elem = v4 ? "vec4<f32>" : "f32";
  const R = Array.from({ length: FEW_Q }, (_, r) => r);
  const I = Array.from({ length: d4 }, (_, i) => i);
  const row = (buf: string, base: string, i: number, ok: string) =>
    loadVec4(v4, buf, base, `${i}u`, ok);
  return {
    name,
    bindings: ["uniform", "read", "read", "read", "write"],
    code: () => /* wgsl */ `
${ATTENTION_PARAMS_WGSL}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> qBuf: array<${elem}>;
@group(0) @binding(2) var<storage, read> kBuf: array<${elem}>;
@group(0) @binding(3) var<storage, read> vBuf: array<${elem}>;
@group(0) @binding(4) var<storage, read_write> outBuf: array<${elem}>;

// One row's 64 partial results: max, sum, output vec4s.
var<workgroup> partM: array<f32, 64>;
var<workgroup> partL: array<f32, 64>;
var<workgroup> partO: array<vec4<f32>, ${64 * d4}>;  // [thread, D4]
var<workgroup> rowScale: array<f32, 64>;            // exp(m_t - M) / L per thread

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let bh = wg.x + wg.y * nwg.x;
  if (bh >= p.batch * p.heads) { return; }  // workgroup-uniform: padding of the folded grid
  let b = bh / p.heads;
  let h = bh % p.heads;
${
      R.map((r) =>
        `  let qb${r} = p.qOff + (b * p.nq + min(${r}u, p.nq - 1u)) * p.qStride + h * p.headDim;\n` +
        I.map((i) => `  let q${r}_${i} = ${row("qBuf", `qb${r}`, i, `${r}u < p.nq`)} * p.scale;`)
          .join("\n") +
        `\n  var m${r} = ${NEG_BIG};\n  var l${r} = 0.0;\n` +
        I.map((i) => `  var o${r}_${i} = vec4<f32>(0.0);`).join("\n")
      ).join("\n")
    }

  for (var j = lid; j < p.nk; j += 64u) {
    let kb = p.kOff + (b * p.nk + j) * p.kStride + h * p.headDim;
    let vb = p.vOff + (b * p.nk + j) * p.vStride + h * p.headDim;
${I.map((i) => `    let k${i} = ${row("kBuf", "kb", i, "true")};`).join("\n")}
${I.map((i) => `    let v${i} = ${row("vBuf", "vb", i, "true")};`).join("\n")}
${
      R.map((r) =>
        `    {
      let s = ${I.map((i) => `dot(q${r}_${i}, k${i})`).join(" + ")};
      let mn = max(m${r}, s);
      let corr = exp(m${r} - mn);
      let pj = exp(s - mn);
      l${r} = l${r} * corr + pj;
${I.map((i) => `      o${r}_${i} = o${r}_${i} * corr + pj * v${i};`).join("\n")}
      m${r} = mn;
    }`
      ).join("\n")
    }
  }

  // Merge the 64 partial softmaxes of each query row: M = max m_t, L = sum l_t e^(m_t - M),
  // O = sum o_t e^(m_t - M) / L.
${
      R.map((r) =>
        `  if (${r}u < p.nq) {
    workgroupBarrier();  // the previous row's merge is done with the partials
    partM[lid] = m${r};
    partL[lid] = l${r};
${I.map((i) => `    partO[lid * ${d4}u + ${i}u] = o${r}_${i};`).join("\n")}
    workgroupBarrier();
    var mAll = ${NEG_BIG};
    for (var t = 0u; t < 64u; t++) { mAll = max(mAll, partM[t]); }
    var lAll = 0.0;
    for (var t = 0u; t < 64u; t++) { lAll += partL[t] * exp(partM[t] - mAll); }
    rowScale[lid] = exp(m${r} - mAll) / lAll;
    workgroupBarrier();
    if (lid < ${d4}u && lid * 4u < p.headDim) {
      var o = vec4<f32>(0.0);
      for (var t = 0u; t < 64u; t++) { o += partO[t * ${d4}u + lid] * rowScale[t]; }
      let base = (b * p.nq + ${r}u) * p.heads * p.headDim + h * p.headDim + lid * 4u;
      ${
          v4
            ? "outBuf[base / 4u] = o;"
            : "for (var e = 0u; e < 4u; e++) { if (lid * 4u + e < p.headDim) { outBuf[base + e] = o[e]; } }"
        }
    }
  }`
      ).join("\n")
    }
}`,
  };
}

/** Variants, built on first use and kept (the name is the pipeline cache key). */
const SPECS = new Map<string, KernelSpec>();

/** Most keys of the few-key kernel. */
const FEW_K = 8;

/**
 * Few keys (the decoder's 4096 image tokens attending its 7 prompt tokens): all K and V rows
 * (<= 8) go to workgroup memory once; then each thread handles one query in straight-line
 * code: 8 scores (keys past nk masked), an exact softmax, and the weighted sum of V. Every
 * workgroup-memory read has the same address in all threads (a broadcast). Head dims up to
 * 32, no rel-pos bias.
 */
function fewKeySpec(dp: number, v4: boolean): KernelSpec {
  const d4 = dp / 4;
  const name = `attention_fewk_d${dp}${v4 ? "_v4" : ""}_f32`;
  const elem = v4 ? "vec4<f32>" : "f32";
  const J = Array.from({ length: FEW_K }, (_, j) => j);
  const I = Array.from({ length: d4 }, (_, i) => i);
  const store = v4
    ? I.map((i) => `  if (${4 * i}u < p.headDim) { outBuf[ob / 4u + ${i}u] = o${i} * inv; }`)
      .join("\n")
    : I.map((i) =>
      `  for (var e = 0u; e < 4u; e++) {
    if (${4 * i}u + e < p.headDim) { outBuf[ob + ${4 * i}u + e] = o${i}[e] * inv; }
  }`
    ).join("\n");
  return {
    name,
    bindings: ["uniform", "read", "read", "read", "write"],
    code: () => /* wgsl */ `
${ATTENTION_PARAMS_WGSL}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> qBuf: array<${elem}>;
@group(0) @binding(2) var<storage, read> kBuf: array<${elem}>;
@group(0) @binding(3) var<storage, read> vBuf: array<${elem}>;
@group(0) @binding(4) var<storage, read_write> outBuf: array<${elem}>;

var<workgroup> ks: array<vec4<f32>, ${FEW_K * d4}>;  // [FEW_K, D4], zero past nk
var<workgroup> vs: array<vec4<f32>, ${FEW_K * d4}>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let flat = wg.x + wg.y * nwg.x;
  let bh = flat / p.nqb;
  if (bh >= p.batch * p.heads) { return; }  // workgroup-uniform: padding of the folded grid
  let b = bh / p.heads;
  let h = bh % p.heads;
  for (var i = lid; i < ${FEW_K * d4}u; i += 64u) {
    let t = i / ${d4}u;
    let kb = p.kOff + (b * p.nk + min(t, p.nk - 1u)) * p.kStride + h * p.headDim;
    let vb = p.vOff + (b * p.nk + min(t, p.nk - 1u)) * p.vStride + h * p.headDim;
    ks[i] = ${loadVec4(v4, "kBuf", "kb", `(i % ${d4}u)`, "t < p.nk")};
    vs[i] = ${loadVec4(v4, "vBuf", "vb", `(i % ${d4}u)`, "t < p.nk")};
  }
  workgroupBarrier();
  let n = (flat % p.nqb) * 64u + lid;  // this thread's query
  if (n >= p.nq) { return; }
  let qb = p.qOff + (b * p.nq + n) * p.qStride + h * p.headDim;
${
      I.map((i) => `  let q${i} = ${loadVec4(v4, "qBuf", "qb", `${i}u`, "true")} * p.scale;`).join(
        "\n",
      )
    }
${
      J.map((j) =>
        `  let s${j} = select(${NEG_BIG}, ${
          I.map((i) => `dot(q${i}, ks[${j * d4 + i}u])`).join(" + ")
        }, ${j}u < p.nk);`
      ).join("\n")
    }
  let m = max(${J.map((j) => `s${j}`).reduce((a, x) => `max(${a}, ${x})`)}, ${NEG_BIG});
${J.map((j) => `  let p${j} = select(0.0, exp(s${j} - m), ${j}u < p.nk);`).join("\n")}
  let inv = 1.0 / (${J.map((j) => `p${j}`).join(" + ")});
${
      I.map((i) => `  let o${i} = ${J.map((j) => `p${j} * vs[${j * d4 + i}u]`).join(" + ")};`).join(
        "\n",
      )
    }
  let ob = (b * p.nq + n) * p.heads * p.headDim + h * p.headDim;
${store}
}`,
  };
}

function fewKeySpecFor(headDim: number, v4: boolean) {
  const dp = 16 * Math.ceil(headDim / 16);
  const key = `fewk/${dp}/${v4}`;
  let spec = SPECS.get(key);
  if (!spec) {
    spec = fewKeySpec(dp, v4);
    SPECS.set(key, spec);
  }
  return { spec, bq: 64 };
}

/**
 * Picks the register block: 4 query rows per thread (BQ 32) unless there are at most 8
 * queries (decoder prompt tokens: BQ 8, so 7 queries do not pay for 32); 4 keys per thread
 * (BK 32) where the tiles fit 32 KB (headDim <= 64), 2 for larger heads, 1 (BK 8) where
 * there are at most 8 keys (decoder image-to-token attention).
 */
function specFor(
  headDim: number,
  nq: number,
  nk: number,
  v4: boolean,
  relPos: boolean,
  biasTable: boolean,
  half: boolean,
  halfOut: boolean,
) {
  const c = Math.ceil(headDim / 32);
  const vt: Variant = {
    c,
    rows: nq <= 8 ? 1 : 4,
    keys: nk <= 8 ? 1 : c <= 2 ? 4 : 2,
    v4,
    relPos,
    biasTable,
    ...(half ? { half } : {}),
    ...(halfOut ? { halfOut } : {}),
  };
  const key = JSON.stringify(vt);
  let spec = SPECS.get(key);
  if (!spec) {
    spec = attentionSpec(vt);
    SPECS.set(key, spec);
  }
  return { spec, bq: 8 * vt.rows };
}

function fewQuerySpecFor(headDim: number, v4: boolean) {
  const dp = 16 * Math.ceil(headDim / 16);
  const key = `fewq/${dp}/${v4}`;
  let spec = SPECS.get(key);
  if (!spec) {
    spec = fewQuerySpec(dp, v4);
    SPECS.set(key, spec);
  }
  return { spec, bq: FEW_Q };
}

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

export interface AttentionOptions {
  scale?: number;
  relPos?: RelPosBias;
  /** [heads, nq, nk], added to every batch's scores (runs the tiled kernel). */
  biasTable?: Tensor;
  out?: Tensor;
  /** A variant by name ("tiled", "rows2w16"), overriding the tuned / default one. */
  variant?: string;
}

/** Tune-cache key of an attention shape; "|f16qkv", "|f16qkvo" or "|f16o" at the end for
 * f16 q, k, v and / or out (f32 keys are as before). */
export function attentionKey(
  dims: AttentionDims,
  relPos?: { kH: number; kW: number },
  half = false,
  halfOut = false,
): string {
  const { batch, heads, headDim, nq, nk } = dims;
  const rel = relPos ? `|relpos${relPos.kH}x${relPos.kW}` : "";
  const f16 = half || halfOut ? `|f16${half ? "qkv" : ""}${halfOut ? "o" : ""}` : "";
  return `attention|${batch * heads}x${nq}x${nk}x${headDim}${rel}${f16}`;
}

/** Variants `deno task tune` times (the decoder's few-query / few-key cases keep "tiled"). */
export const ATTENTION_CANDIDATES = [
  "tiled",
  "rows2w8",
  "rows4w8",
  "rows8w8",
  "rows4w16",
  "rows16w8",
  "splitkv4",
  "splitkv8",
  "tiledpad",
  "tiledpar",
];

/** The candidates for one shape: split-KV is f32 only; "tiledsg" (attention_padded.ts) only
 * where the device has `subgroups`, and f32 only. */
export function attentionCandidates(f16 = false, subgroups = false): string[] {
  if (f16) return ATTENTION_CANDIDATES.filter((n) => !n.startsWith("splitkv"));
  return subgroups ? [...ATTENTION_CANDIDATES, "tiledsg"] : ATTENTION_CANDIDATES;
}

/** The default: the tiled kernel on GPUs, row-wise on CPU adapters where it applies. There,
 * 16 query rows per invocation beat 4 by 2-3x (llvmpipe, ViT global attention scaled to 1024
 * tokens, rel pos: rows4w8 0.67 GFLOP/s, rows16w8 1.6-2.3 in the same runs): lavapipe 22.3
 * gathers every storage load lane by lane, so the K and V rows are worth sharing widely.
 * Without vec4 access (a head dim or row offset not a multiple of 4: SlimSAM-77's 14) 4 rows:
 * the scalar 16-row kernel takes LLVM minutes to compile (head dim 33: 95 s, rows4w8 1 s). */
export function defaultAttentionVariant(software: boolean, vec4 = true): string {
  return software ? (vec4 ? "rows16w8" : "rows4w8") : "tiled";
}

const ROWS_SPECS = new Map<string, KernelSpec>();
const PADDED_SPECS = new Map<string, KernelSpec>();

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
  opts: AttentionOptions = {},
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
    if (nk > 1 << 20) {
      // The shader splits key indices into (kh, kw) in float32; exact below 2^20.
      throw new Error(`attention: relPos with nk ${nk} > 2^20 is not supported`);
    }
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
  const table = opts.biasTable;
  if (table) {
    if (rel) throw new Error("attention: relPos and biasTable cannot be combined");
    if (table.size !== heads * nq * nk) {
      throw new Error(
        `attention: biasTable has ${table.size} elements, need [heads ${heads}, nq ${nq}, ` +
          `nk ${nk}]`,
      );
    }
  }
  // precision "f16": q, k and v stored as f16 (one qkv tensor); out and the softmax stay f32.
  const half = q.tensor.dtype === "f16";
  if (k.tensor.dtype !== q.tensor.dtype || v.tensor.dtype !== q.tensor.dtype) {
    throw new Error("attention: q, k and v must have one dtype");
  }
  if (half) requireShaderF16(ctx, "attention");
  for (const t of [rel?.relH, rel?.relW, table]) {
    if (t && t.dtype !== "f32") throw new Error("attention: bias tables must be f32");
  }
  // out: f32 by default; an f16 `out` is written as f16 (the encoder's precision "f16").
  const halfOut = opts.out?.dtype === "f16";
  if (halfOut) requireShaderF16(ctx, "attention");
  const outShape = [batch, nq, heads * headDim];
  const out = opts.out ?? emptyTensor(ctx, outShape, "attention.out");
  if (out.size !== batch * nq * heads * headDim) {
    throw new Error(`attention: out has ${out.size} elements, need [${outShape}]`);
  }
  const inputs = [
    q.tensor,
    k.tensor,
    v.tensor,
    ...(rel ? [rel.relH, rel.relW] : []),
    ...(table ? [table] : []),
  ];
  if (inputs.some((t) => t.buffer === out.buffer)) {
    throw new Error("attention: out must not share a buffer with q, k, v or relPos");
  }
  // vec4 access needs every row start on a 16-byte boundary.
  const v4 = [headDim, q.offset, q.rowStride, k.offset, k.rowStride, v.offset, v.rowStride]
    .every((x) => x % 4 === 0);
  // The decoder's cross attentions have their own kernels (head dims <= 32, no rel pos).
  // (Their f32-only kernels: f16 q, k, v go to the tiled one.)
  const small = !rel && !table && !half && !halfOut && headDim <= FEW_Q_MAX_DP &&
    (nk <= FEW_K || nq <= FEW_Q);
  const name = opts.variant ??
    (small || table ? "tiled" : variantFor(
      ctx,
      attentionKey(dims, rel, half, halfOut),
      defaultAttentionVariant(ctx.gpu.software, v4),
      (tuned) => attentionCandidates(half || halfOut, ctx.gpu.hasSubgroups).includes(tuned),
    ));
  const slices = parseSplitKvName(name);
  if (
    slices !== null && !table && !half && !halfOut &&
    splitKvFits(ctx, batch * heads * nq, headDim, slices)
  ) {
    // Split-KV (attention_splitkv.ts); with a bias table, f16 operands or past the scratch
    // limit: tiled.
    runSplitKv(ctx, {
      batch,
      heads,
      headDim,
      nq,
      nk,
      scale,
      v4,
      slices,
      q: { buffer: q.tensor.buffer, offset: q.offset, rowStride: q.rowStride },
      k: { buffer: k.tensor.buffer, offset: k.offset, rowStride: k.rowStride },
      v: { buffer: v.tensor.buffer, offset: v.offset, rowStride: v.rowStride },
      rel: rel && { relH: rel.relH.buffer, relW: rel.relW.buffer, kH: rel.kH, kW: rel.kW },
      out: out.buffer,
    });
    return out;
  }
  const rowsShape = name === "tiled" || slices !== null ? null : parseRowsName(name);
  let padded = parsePaddedName(name);
  if (name !== "tiled" && slices === null && !rowsShape && !padded) {
    throw new Error(`attention: unknown variant "${name}"`);
  }
  if (padded === "subgroup") {
    if (!ctx.gpu.hasSubgroups) {
      throw new Error(
        `attention: variant "tiledsg" needs the adapter feature 'subgroups', which ` +
          `${ctx.gpu.description} does not offer (use "tiledpar")`,
      );
    }
    if (half || halfOut) padded = "tree"; // f32 only: f16 operands run "tiledpar"
  }
  const rowsFit = rowsShape && !table &&
    (!rel || (rel.kH <= ROWS_MAX_REL && rel.kW <= ROWS_MAX_REL));
  let spec: KernelSpec;
  let bq: number;
  if (rowsShape && rowsFit) {
    const rv: RowsVariant = {
      ...rowsShape,
      dp: 16 * Math.ceil(headDim / 16),
      v4,
      relPos: rel !== undefined,
      ...(half ? { half } : {}),
      ...(halfOut ? { halfOut } : {}),
    };
    const key = JSON.stringify(rv);
    spec = ROWS_SPECS.get(key) ?? attentionRowsSpec(rv);
    ROWS_SPECS.set(key, spec);
    bq = rv.rows * rv.wg;
  } else if (padded && !table) {
    // Padded tiles (attention_padded.ts); with a bias table: tiled.
    const c = Math.ceil(headDim / 32);
    const keys = nk <= 8 ? 1 : c <= 2 ? 4 : 2;
    const limit = ctx.device.limits.maxComputeWorkgroupStorageSize;
    const pv: PaddedVariant = {
      softmax: padded,
      c,
      keys,
      rows: paddedRows(nq, { softmax: padded, c, keys }, limit),
      v4,
      relPos: rel !== undefined,
      ...(half ? { half } : {}),
      ...(halfOut ? { halfOut } : {}),
    };
    const key = JSON.stringify(pv);
    spec = PADDED_SPECS.get(key) ?? attentionPaddedSpec(pv);
    PADDED_SPECS.set(key, spec);
    bq = 8 * pv.rows;
  } else {
    // Few keys first: the few-query kernel would leave most of its threads without a key.
    ({ spec, bq } = small && nk <= FEW_K
      ? fewKeySpecFor(headDim, v4)
      : small && nq <= FEW_Q
      ? fewQuerySpecFor(headDim, v4)
      : specFor(headDim, nq, nk, v4, rel !== undefined, table !== undefined, half, halfOut));
  }
  const nqb = Math.ceil(nq / bq);
  const params = new Params()
    .u32(batch, heads, headDim, nq, nk)
    .u32(q.offset, q.rowStride, k.offset, k.rowStride, v.offset, v.rowStride)
    .f32(scale)
    .u32(nqb, Math.ceil(headDim / 4), rel?.kH ?? 1, rel?.kW ?? 1)
    .f32(1 / (rel?.kW ?? 1))
    .build();
  const buffers = [q.tensor.buffer, k.tensor.buffer, v.tensor.buffer];
  if (rel) buffers.push(rel.relH.buffer, rel.relW.buffer);
  if (table) buffers.push(table.buffer);
  buffers.push(out.buffer);
  ctx.dispatch(spec, params, buffers, grid(batch * heads * nqb));
  return out;
}
