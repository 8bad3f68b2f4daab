/**
 * SAM's decomposed rel-pos factors (see rel_pos.ts) for CPU adapters, "lanes" variant:
 *   relH[bh, (qh, qw), kh] = q[bh, (qh, qw)] . Rh[qh, kh, :]
 *   relW[bh, (qh, qw), kw] = q[bh, (qh, qw)] . Rw[qw, kw, :]
 *
 * rel_pos.ts's kernel gives each invocation one output and re-reads q and the table row for
 * it: 2 * headDim per-invocation loads per output, which lavapipe runs as scalar gathers
 * (about 7 ns a value; 15% of sam-mini's encoder). Here a workgroup of 8 invocations (one
 * 256-bit SIMD vector of llvmpipe) owns one table row index: for the relH part one qh (its
 * invocations take 8 consecutive qw), for the relW part one qw (8 consecutive qh). Each
 * invocation loads its q rows once into registers (the head dim padded to `dp`, unrolled),
 * then walks the keys: the table row Rh[qh, kh] (or Rw[qw, kw]) has the same address in every
 * invocation. An invocation owns REL_POS_LANE_ROWS consecutive q rows, so each table row it
 * loads serves that many dot products (lavapipe's loads, not its arithmetic, set the pace:
 * 4 rows took sam-mini's four rel-pos dispatches from 286 to 155 ms on llvmpipe).
 */
import type { KernelSpec } from "../gpu/context.ts";

/** Invocations per workgroup. */
export const REL_POS_LANES = 8;

/** q rows per invocation (each table load feeds this many dot products). */
export const REL_POS_LANE_ROWS = 4;

/** Head dims up to this are unrolled in registers. */
export const REL_POS_LANES_MAX_DIM = 128;

/** Padded head dim: a multiple of 16, at most REL_POS_LANES_MAX_DIM. */
export function relPosLanesDim(headDim: number): number {
  return Math.max(16, Math.ceil(headDim / 16) * 16);
}

const cache = new Map<string, KernelSpec>();

/**
 * The kernel for a padded head dim `dp`; `half`: q stored as f16. Uniforms as rel_pos.ts's
 * (n, heads, headDim, nq, qOff, qStride, qW, kH, kW) plus qH and the workgroups of the relH
 * part (`wgH`); bindings: q, rh, rw, relH, relW.
 */
export function relPosLanesSpec(dp: number, half: boolean, vec4Table: boolean): KernelSpec {
  const name = `rel_pos_bias_lanes_d${dp}${vec4Table ? "_t4" : ""}_f32${half ? "_f16q" : ""}`;
  const hit = cache.get(name);
  if (hit) return hit;
  const W = REL_POS_LANES;
  const R = Array.from({ length: REL_POS_LANE_ROWS }, (_, r) => r);
  const C = Array.from({ length: dp }, (_, c) => c);
  const load = (r: number, c: number) =>
    `select(0.0, ${half ? `f32(q[qb${r} + ${c}u])` : `q[qb${r} + ${c}u]`}, ${c}u < p.headDim)`;
  // Columns past headDim read a clamped table index and meet a zero q.
  // vec4Table (headDim % 4 == 0): the table rows are read as vec4, a quarter of the loads.
  const Q = Array.from({ length: dp / 4 }, (_, i) => i);
  // The table row at rb, loaded once (t0, t1, ...), and row r's dot product with it.
  const tableLoads = (table: string) =>
    vec4Table
      ? Q.map((i) => `let t${i} = ${table}[rb / 4u + min(${i}u, hd1 / 4u)];`).join(" ")
      : C.map((c) => `let t${c} = ${table}[rb + min(${c}u, hd1)];`).join(" ");
  const dot = (r: number) =>
    vec4Table
      ? Q.map((i) => `dot(qv${r}_${i}, t${i})`).join(" + ")
      : C.map((c) => `q${r}_${c} * t${c}`).join(" + ");
  const stores = (out: string, count: string) =>
    R.map((r) =>
      `if (o + ${r}u < other) { ${out}[(row0 + ${r}u * step) * ${count} + t] = ${dot(r)}; }`
    )
      .join("\n      ");
  const tableType = vec4Table ? "vec4<f32>" : "f32";
  const spec: KernelSpec = {
    name,
    bindings: ["uniform", "read", "read", "read", "write", "write"],
    code: () =>
      /* wgsl */ `${half ? "enable f16;\n" : ""}
struct P {
  n: u32, heads: u32, headDim: u32, nq: u32, qOff: u32, qStride: u32,
  qW: u32, kH: u32, kW: u32, qH: u32, wgH: u32, bhCount: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> q: array<${half ? "f16" : "f32"}>;
@group(0) @binding(2) var<storage, read> rh: array<${tableType}>;
@group(0) @binding(3) var<storage, read> rw: array<${tableType}>;
@group(0) @binding(4) var<storage, read_write> relH: array<f32>;
@group(0) @binding(5) var<storage, read_write> relW: array<f32>;

@compute @workgroup_size(${W})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  var flat = wg.x + wg.y * nwg.x;
  let hd1 = p.headDim - 1u;
  // Workgroup-uniform: which part, (bh, fixed table row index, chunk of the other coordinate).
  let partW = flat >= p.wgH;
  if (partW) { flat -= p.wgH; }
  let other = select(p.qW, p.qH, partW);   // the coordinate the invocations split
  let fixedCount = select(p.qH, p.qW, partW);
  let chunks = (other + ${W * REL_POS_LANE_ROWS - 1}u) / ${W * REL_POS_LANE_ROWS}u;
  let bh = flat / (fixedCount * chunks);
  if (bh >= p.bhCount) { return; }
  let rest = flat % (fixedCount * chunks);
  let fixed = rest / chunks;
  // This invocation's rows: o, o + 1, ... along the split coordinate (clamped for loads).
  let o = (rest % chunks) * ${W * REL_POS_LANE_ROWS}u + lid * ${REL_POS_LANE_ROWS}u;
  if (o >= other) { return; }
  let b = bh / p.heads;
  let h = bh % p.heads;
  // Token n of row r: qh * qW + qw, the split coordinate stepping by 1 (qw) or qW (qh).
  let step = select(1u, p.qW, partW);
  let n0 = select(fixed, o, partW) * p.qW + select(o, fixed, partW);
${
        R.map((r) =>
          `  let qb${r} = p.qOff + (b * p.nq + n0 + min(${r}u, other - 1u - o) * step) * p.qStride + h * p.headDim;
${C.map((c) => `  let q${r}_${c} = ${load(r, c)};`).join("\n")}
${
            vec4Table
              ? Q.map((i) =>
                `  let qv${r}_${i} = vec4<f32>(q${r}_${4 * i}, q${r}_${4 * i + 1}, q${r}_${
                  4 * i + 2
                }, q${r}_${4 * i + 3});`
              ).join("\n")
              : ""
          }`
        ).join("\n")
      }
  let row0 = bh * p.nq + n0;
  if (!partW) {
    for (var t = 0u; t < p.kH; t++) {
      let rb = (fixed * p.kH + t) * p.headDim;   // Rh[qh, t, :], uniform
      ${tableLoads("rh")}
      ${stores("relH", "p.kH")}
    }
  } else {
    for (var t = 0u; t < p.kW; t++) {
      let rb = (fixed * p.kW + t) * p.headDim;   // Rw[qw, t, :], uniform
      ${tableLoads("rw")}
      ${stores("relW", "p.kW")}
    }
  }
}`,
  };
  cache.set(name, spec);
  return spec;
}

/** Workgroups of the relH part and of both parts for these sizes. */
export function relPosLanesGrid(
  bhCount: number,
  qH: number,
  qW: number,
): { wgH: number; total: number } {
  const W = REL_POS_LANES * REL_POS_LANE_ROWS;
  const wgH = bhCount * qH * Math.ceil(qW / W);
  return { wgH, total: wgH + bhCount * qW * Math.ceil(qH / W) };
}
