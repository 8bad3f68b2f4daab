/**
 * Padded-tile flash attention: out = softmax(scale * q k^T + relPos) v per (batch, head), the
 * tiled kernel's scheme (attention.ts: one 8 x 8 workgroup per block of BQ queries, K / V
 * streamed in tiles of BK keys, online softmax, rows x keys register blocks) with the tiles
 * laid out for the memory banks and the query blocks sized to the shape, and three ways of
 * doing the softmax of a score tile:
 *
 * - "tiledpad": serial softmax (one thread per query row), as in the tiled kernel.
 * - "tiledpar": parallel softmax. Each thread folds its own rows x keys block of scores into
 *   a (max, sum of exp) pair per row in registers; the 8 pairs of a row are merged by a tree
 *   in workgroup memory (8 -> 2 -> 1: (m, l) + (m', l') = (M, l e^(m-M) + l' e^(m'-M))), so
 *   every thread then knows its rows' running max, rescale factor and sum, writes its
 *   probabilities from registers and rescales its outputs with no per-row arrays.
 * - "tiledsg": parallel softmax with subgroup operations (adapter feature `subgroups`): the
 *   rows of a score tile are dealt out to the subgroups, each row's max and sum come from one
 *   subgroupMax and one subgroupAdd over its keys spread across the lanes. Lanes and subgroup
 *   numbers are derived with subgroup operations (subgroupExclusiveAdd, a workgroup atomic),
 *   never from local_invocation_index, whose mapping to subgroups WebGPU leaves open; any
 *   subgroup size works.
 *
 * Padding:
 * - Every workgroup tile row is padded by one element (Q, K / V: D4 + 1 vec4s, scores:
 *   BK + 1 floats), so the rows that the 8 threads of a column read at once fall in different
 *   banks (the tiled kernel pads K / V and S but not Q, whose 8 rows of 16 vec4s (head dim
 *   64) all start in bank 0).
 * - Query blocks are sized to the shape: BQ = 8 x rows with rows in 2..5 (1 for at most 8
 *   queries), the one with the fewest padded rows in the last block, ties to the larger
 *   block, within the workgroup-memory limit: ViT windows of 196 tokens take 5 blocks of 40
 *   (200 rows) instead of 7 of 32 (224); 4096 tokens keep 32. Rows and keys past the end
 *   are not loaded (zeros), so the padded rows cost their share of arithmetic and nothing
 *   else; only the final store is guarded.
 *
 * Rel-pos (SAM's decomposed bias relH[q, kh] + relW[q, kw]) is added in the score tile as
 * in the tiled kernel. No bias table (TinyViT's runs the tiled kernel). q, k, v and out may
 * be f16 ("tiledpad" and "tiledpar"; "tiledsg" is f32 only: the adapters with `subgroups`
 * we could test on have no `shader-f16`).
 */
import type { KernelSpec } from "../gpu/context.ts";
import { attentionBindings, attentionHeader, loadVec4, NEG_BIG, unroll } from "./attention_wgsl.ts";

/** How a score tile's softmax is computed. */
export type PaddedSoftmax = "serial" | "tree" | "subgroup";

/** The named variants of this kernel. */
export const PADDED_VARIANTS: Record<string, PaddedSoftmax> = {
  tiledpad: "serial",
  tiledpar: "tree",
  tiledsg: "subgroup",
};

/** The softmax mode of a variant name, or null. */
export function parsePaddedName(name: string): PaddedSoftmax | null {
  return Object.hasOwn(PADDED_VARIANTS, name) ? PADDED_VARIANTS[name] : null;
}

export interface PaddedVariant {
  softmax: PaddedSoftmax;
  /** Padded head dim / 32 (head dim <= 32c). */
  c: number;
  /** Query rows per thread (BQ = 8 * rows). */
  rows: number;
  /** Keys per thread in the score phase (BK = 8 * keys). */
  keys: number;
  v4: boolean;
  relPos: boolean;
  half?: boolean;
  halfOut?: boolean;
}

/** Row stride of the tree's partial (max, sum) arrays: 8 partials + 1 of padding. */
const RS = 9;

/** Workgroup memory of a variant, in bytes. */
export function paddedWorkgroupBytes(
  v: Pick<PaddedVariant, "softmax" | "c" | "rows" | "keys">,
): number {
  const d4 = 8 * v.c, bq = 8 * v.rows, bk = 8 * v.keys;
  const tiles = 16 * (bq * (d4 + 1) + bk * (d4 + 1)) + 4 * bq * (bk + 1);
  const rowState = v.softmax === "tree"
    ? 4 * 2 * bq * RS // partial max / sum
    : v.softmax === "subgroup"
    ? 4 * 3 * bq + 4 // running max, sum, rescale; the subgroup counter
    : 4 * 2 * bq; // rescale, 1 / sum
  return tiles + rowState;
}

/**
 * Rows per thread for `nq` queries: the fewest padded rows in the last query block, ties to
 * the larger block (fewer passes over K and V), among the blocks that fit `limitBytes`.
 */
export function paddedRows(
  nq: number,
  v: Pick<PaddedVariant, "softmax" | "c" | "keys">,
  limitBytes: number,
): number {
  if (nq <= 8) return 1;
  let best = 0, bestPad = Infinity;
  for (const rows of [2, 3, 4, 5]) {
    if (paddedWorkgroupBytes({ ...v, rows }) > limitBytes) continue;
    const bq = 8 * rows;
    const pad = Math.ceil(nq / bq) * bq - nq;
    if (pad <= bestPad) [best, bestPad] = [rows, pad];
  }
  if (best === 0) {
    throw new Error(`attention: no padded tile fits ${limitBytes} bytes of workgroup memory`);
  }
  return best;
}

export function paddedSpecName(v: PaddedVariant): string {
  const mode = { serial: "pad", tree: "par", subgroup: "sg" }[v.softmax];
  return `attention_tiled${mode}${v.relPos ? "_relpos" : ""}_d${32 * v.c}_q${8 * v.rows}_k${
    8 * v.keys
  }${v.v4 ? "_v4" : ""}_f32${v.half ? "_f16qkv" : ""}${v.halfOut ? "_f16o" : ""}`;
}

export function attentionPaddedSpec(vt: PaddedVariant): KernelSpec {
  const { softmax, c, rows, keys, v4, relPos } = vt;
  const half = vt.half ?? false;
  const halfOut = vt.halfOut ?? false;
  if (softmax === "subgroup" && (half || halfOut)) {
    throw new Error("attention: tiledsg is f32 only");
  }
  const d4 = 8 * c;
  const bq = 8 * rows;
  const bk = 8 * keys;
  const elem = v4 ? "vec4<f32>" : "f32";
  const R = Array.from({ length: rows }, (_, r) => r); // thread rows ty + 8r
  const J = Array.from({ length: keys }, (_, j) => j); // thread keys tx + 8j (score phase)
  const I = Array.from({ length: c }, (_, i) => i); // thread O columns tx + 8i (vec4)
  const forRJ = (f: (r: number, j: number) => string) =>
    R.map((r) => J.map((j) => f(r, j)).join("\n")).join("\n");
  const forRI = (f: (r: number, i: number) => string) =>
    R.map((r) => I.map((i) => f(r, i)).join("\n")).join("\n");
  // Tile rows past `tokens` are zeros, not loaded (the padded query rows, the last key tile).
  const loadTile = (
    dst: string,
    buf: string,
    off: string,
    stride: string,
    tokens: string,
    row0: string,
    n: number,
    scale = "",
  ) =>
    `for (var i = lid; i < ${n * d4}u; i += 64u) {
      let t = ${row0} + i / D4;
      var x = vec4<f32>(0.0);
      if (t < ${tokens}) {
        let base = ${off} + (b * ${tokens} + t) * ${stride} + h * p.headDim;
        x = ${loadVec4(v4, buf, "base", "(i % D4)", "true", half)}${scale};
      }
      ${dst}[(i / D4) * TS + i % D4] = x;
    }`;
  const bias = (r: number, j: number) =>
    relPos
      ? ` + relH[rowH${r} + kh${j}] + relW[rowW${r} + k0 + tx + ${8 * j}u - kh${j} * p.kW]`
      : "";
  const store = (r: number, i: number, inv: string) =>
    v4
      ? `    if (${32 * i}u + tx * 4u < p.headDim) { outBuf[base / 4u + tx + ${8 * i}u] = ${
        halfOut ? `vec4<f16>(o${r}_${i} * ${inv})` : `o${r}_${i} * ${inv}`
      }; }`
      : `    { let o = o${r}_${i} * ${inv};
      let d = (tx + ${8 * i}u) * 4u;
      for (var e = 0u; e < 4u; e++) { if (d + e < p.headDim) { outBuf[base + d + e] = ${
        halfOut ? "f16(o[e])" : "o[e]"
      }; } } }`;

  // The softmax of one score tile, between the score phase (s_r_j in registers, keys past
  // nk at NEG_BIG) and P V. Each mode leaves P in ss, the V tile in kvs, and per thread row
  // r a rescale factor corr_r for O.
  const loadV = `${loadTile("kvs", "vBuf", "p.vOff", "p.vStride", "p.nk", "k0", bk)}`;
  const serial = `
${forRJ((r, j) => `    ss[(ty + ${8 * r}u) * SS + tx + ${8 * j}u] = s${r}_${j};`)}
    workgroupBarrier();  // scores complete; kvs free for V
    // One thread per row: new max, rescale factor, probabilities.
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
    ${loadV}
    workgroupBarrier();
${unroll(rows, (r) => `    let corr${r} = rowCorr[ty + ${8 * r}u];`)}`;
  const tree = `
    // This thread's (max, sum of exp) of each of its rows, over its own keys.
${
    unroll(rows, (r) =>
      `    let pm${r} = max(${
        J.map((j) =>
          `s${r}_${j}`
        ).reduce((a, x) => `max(${a}, ${x})`)
      }, ${NEG_BIG});
    redM[(ty + ${8 * r}u) * RS + tx] = pm${r};
    redL[(ty + ${8 * r}u) * RS + tx] = ${
        J.map((j) => `select(0.0, exp(s${r}_${j} - pm${r}), k0 + tx + ${8 * j}u < p.nk)`).join(
          " + ",
        )
      };`)
  }
    workgroupBarrier();  // partials written; kvs free for V
    ${loadV}
    // Tree, first level: partials 0..7 of a row -> 0, 1 (slot t merges t, t+2, t+4, t+6).
    for (var i = lid; i < BQ * 2u; i += 64u) {
      let a = (i / 2u) * RS + i % 2u;
      let mm = max(max(redM[a], redM[a + 2u]), max(redM[a + 4u], redM[a + 6u]));
      redL[a] = redL[a] * exp(redM[a] - mm) + redL[a + 2u] * exp(redM[a + 2u] - mm) +
        redL[a + 4u] * exp(redM[a + 4u] - mm) + redL[a + 6u] * exp(redM[a + 6u] - mm);
      redM[a] = mm;
    }
    workgroupBarrier();
    // Last level in registers (every thread of a row computes the same), then the running
    // max / sum, the rescale factor and P from the scores still in registers.
${
    unroll(rows, (r) =>
      `    let a${r} = (ty + ${8 * r}u) * RS;
    let tm${r} = max(redM[a${r}], redM[a${r} + 1u]);
    let tl${r} = redL[a${r}] * exp(redM[a${r}] - tm${r}) + redL[a${r} + 1u] * exp(redM[a${r} + 1u] - tm${r});
    let mn${r} = max(m${r}, tm${r});
    let corr${r} = exp(m${r} - mn${r});
    l${r} = l${r} * corr${r} + tl${r} * exp(tm${r} - mn${r});
    m${r} = mn${r};
${
        unroll(keys, (j) =>
          `    ss[(ty + ${8 * r}u) * SS + tx + ${8 * j}u] = exp(s${r}_${j} - mn${r});`)
      }`)
  }
    workgroupBarrier();`;
  const subgroup = `
${forRJ((r, j) => `    ss[(ty + ${8 * r}u) * SS + tx + ${8 * j}u] = s${r}_${j};`)}
    workgroupBarrier();  // scores complete; kvs free for V
    // Subgroup sg owns rows sg, sg + nsg, ...; its lanes share each row's keys.
    for (var row = sg; row < BQ; row += nsg) {
      var pm = ${NEG_BIG};
      for (var j = lane; j < kn; j += width) { pm = max(pm, ss[row * SS + j]); }
      var mOld = ${NEG_BIG};
      if (lane == 0u) { mOld = rowM[row]; }  // only lane 0 touches the row's state
      let mn = subgroupMax(max(pm, mOld));
      var ps = 0.0;
      for (var j = lane; j < kn; j += width) {
        let e = exp(ss[row * SS + j] - mn);
        ss[row * SS + j] = e;
        ps += e;
      }
      let sum = subgroupAdd(ps);
      if (lane == 0u) {
        let corr = exp(mOld - mn);
        rowCorr[row] = corr;
        rowL[row] = rowL[row] * corr + sum;
        rowM[row] = mn;
      }
    }
    ${loadV}
    workgroupBarrier();
${unroll(rows, (r) => `    let corr${r} = rowCorr[ty + ${8 * r}u];`)}`;

  const rowState = softmax === "tree"
    ? `var<workgroup> redM: array<f32, ${bq * RS}>;  // [BQ, RS] partial maxima
var<workgroup> redL: array<f32, ${bq * RS}>;  // [BQ, RS] partial sums`
    : softmax === "subgroup"
    ? `var<workgroup> rowM: array<f32, ${bq}>;     // running max per row
var<workgroup> rowL: array<f32, ${bq}>;     // running sum per row
var<workgroup> rowCorr: array<f32, ${bq}>;  // rescale of O for this tile
var<workgroup> sgCount: atomic<u32>;        // subgroups numbered so far`
    : `var<workgroup> rowCorr: array<f32, ${bq}>;  // rescale of O for this tile
var<workgroup> rowInv: array<f32, ${bq}>;   // 1 / row sum at the end`;
  const init = softmax === "tree"
    ? R.map((r) => `  var m${r} = ${NEG_BIG};\n  var l${r} = 0.0;`).join("\n")
    : softmax === "subgroup"
    ? `  // Dense lane and subgroup numbers from subgroup operations (any size, any mapping).
  let lane = subgroupExclusiveAdd(1u);
  let width = subgroupAdd(1u);
  var ticket = 0u;
  if (lane == 0u) { ticket = atomicAdd(&sgCount, 1u); }
  let sg = subgroupMax(ticket);
  for (var i = lid; i < BQ; i += 64u) { rowM[i] = ${NEG_BIG}; rowL[i] = 0.0; }`
    : `  var m = ${NEG_BIG};  // running max of row lid (threads lid < BQ own one row each)
  var l = 0.0;         // running sum of exp(s - m) of that row`;
  const finish = softmax === "tree"
    ? unroll(rows, (r) => `  let inv${r} = 1.0 / l${r};`)
    : `${
      softmax === "serial" ? "  if (lid < BQ) { rowInv[lid] = 1.0 / l; }\n" : ""
    }  workgroupBarrier();
${
      unroll(
        rows,
        (r) => `  let inv${r} = ${softmax === "serial" ? "rowInv" : "1.0 / rowL"}[ty + ${8 * r}u];`,
      )
    }`;
  return {
    name: paddedSpecName(vt),
    bindings: attentionBindings(relPos),
    code: () => /* wgsl */ `
${softmax === "subgroup" ? "enable subgroups;\ndiagnostic(off, subgroup_uniformity);\n" : ""}${
      attentionHeader(elem, relPos, false, half, halfOut)
    }

const D4 = ${d4}u;
const BQ = ${bq}u;
const BK = ${bk}u;
const TS = ${d4 + 1}u;  // Q and K / V tile row stride: padded by one vec4
const SS = ${bk + 1}u;  // score row stride: padded by one
const RS = ${RS}u;
var<workgroup> qs: array<vec4<f32>, ${bq * (d4 + 1)}>;   // [BQ, TS], pre-scaled
var<workgroup> kvs: array<vec4<f32>, ${bk * (d4 + 1)}>;  // [BK, TS], K tile then V tile
var<workgroup> ss: array<f32, ${bq * (bk + 1)}>;         // [BQ, SS], scores, then P
${rowState}

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
        : ""
    }
${init}

  // Q tile, scaled once here instead of per score.
  ${loadTile("qs", "qBuf", "p.qOff", "p.qStride", "p.nq", "q0", bq, " * p.scale")}
${softmax === "subgroup" ? "  workgroupBarrier();\n  let nsg = atomicLoad(&sgCount);" : ""}
${forRI((r, i) => `  var o${r}_${i} = vec4<f32>(0.0);`)}

  for (var k0 = 0u; k0 < p.nk; k0 += BK) {
    workgroupBarrier();  // the previous tile's P V is done with kvs and ss
    ${loadTile("kvs", "kBuf", "p.kOff", "p.kStride", "p.nk", "k0", bk)}
    workgroupBarrier();
    let kn = min(BK, p.nk - k0);

    // S = Qs Ks^T: each thread a rows x keys block.
${forRJ((r, j) => `    var s${r}_${j} = 0.0;`)}
    for (var d = 0u; d < p.d4n; d++) {
${unroll(rows, (r) => `      let q${r} = qs[(ty + ${8 * r}u) * TS + d];`)}
${unroll(keys, (j) => `      let k${j} = kvs[(tx + ${8 * j}u) * TS + d];`)}
${forRJ((r, j) => `      s${r}_${j} += dot(q${r}, k${j});`)}
    }
${
      relPos
        ? unroll(keys, (j) => `    let kh${j} = u32((f32(k0 + tx + ${8 * j}u) + 0.5) * p.invKW);`)
        : ""
    }
${
      forRJ((r, j) =>
        `    s${r}_${j} = select(${NEG_BIG}, s${r}_${j}${bias(r, j)}, k0 + tx + ${8 * j}u < p.nk);`
      )
    }
${softmax === "tree" ? tree : softmax === "subgroup" ? subgroup : serial}

    // O = O * corr + P Vs: each thread a rows x c-vec4 block.
${forRI((r, i) => `    o${r}_${i} *= corr${r};`)}
    for (var j = 0u; j < kn; j++) {
${unroll(rows, (r) => `      let p${r} = ss[(ty + ${8 * r}u) * SS + j];`)}
${unroll(c, (i) => `      let v${i} = kvs[j * TS + tx + ${8 * i}u];`)}
${forRI((r, i) => `      o${r}_${i} += p${r} * v${i};`)}
    }
  }

${finish}
${
      unroll(rows, (r) =>
        `  if (q0 + ty + ${8 * r}u < p.nq) {
    let base = (b * p.nq + q0 + ty + ${8 * r}u) * p.heads * p.headDim + h * p.headDim;
${unroll(c, (i) => store(r, i, `inv${r}`))}
  }`)
    }
}`,
  };
}
