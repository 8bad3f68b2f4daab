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
 * invocation loads its q row once into registers (the head dim padded to `dp`, unrolled),
 * then walks the keys: the table row Rh[qh, kh] (or Rw[qw, kw]) has the same address in every
 * invocation, so it is one load and a broadcast.
 */
import type { KernelSpec } from "../gpu/context.ts";

/** Invocations per workgroup. */
export const REL_POS_LANES = 8;

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
  const C = Array.from({ length: dp }, (_, c) => c);
  const load = (c: number) =>
    `select(0.0, ${half ? "f32(q[qb + " + c + "u])" : "q[qb + " + c + "u]"}, ${c}u < p.headDim)`;
  // Columns past headDim read a clamped table index and meet a zero q.
  // vec4Table (headDim % 4 == 0): the table rows are read as vec4, a quarter of the loads.
  const Q = Array.from({ length: dp / 4 }, (_, i) => i);
  const dot = (table: string) =>
    vec4Table
      ? Q.map((i) => `dot(qv${i}, ${table}[rb / 4u + min(${i}u, hd1 / 4u)])`).join(" + ")
      : C.map((c) => `q${c} * ${table}[rb + min(${c}u, hd1)]`).join(" + ");
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
  let chunks = (other + ${W - 1}u) / ${W}u;
  let bh = flat / (fixedCount * chunks);
  if (bh >= p.bhCount) { return; }
  let rest = flat % (fixedCount * chunks);
  let fixed = rest / chunks;
  let o = (rest % chunks) * ${W}u + lid;
  if (o >= other) { return; }
  let qh = select(fixed, o, partW);
  let qw = select(o, fixed, partW);
  let n = qh * p.qW + qw;
  let b = bh / p.heads;
  let h = bh % p.heads;
  let qb = p.qOff + (b * p.nq + n) * p.qStride + h * p.headDim;
${C.map((c) => `  let q${c} = ${load(c)};`).join("\n")}
${
        vec4Table
          ? Q.map((i) =>
            `  let qv${i} = vec4<f32>(q${4 * i}, q${4 * i + 1}, q${4 * i + 2}, q${4 * i + 3});`
          )
            .join("\n")
          : ""
      }
  let row = bh * p.nq + n;
  if (!partW) {
    for (var t = 0u; t < p.kH; t++) {
      let rb = (fixed * p.kH + t) * p.headDim;   // Rh[qh, t, :], uniform
      relH[row * p.kH + t] = ${dot("rh")};
    }
  } else {
    for (var t = 0u; t < p.kW; t++) {
      let rb = (fixed * p.kW + t) * p.headDim;   // Rw[qw, t, :], uniform
      relW[row * p.kW + t] = ${dot("rw")};
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
  const W = REL_POS_LANES;
  const wgH = bhCount * qH * Math.ceil(qW / W);
  return { wgH, total: wgH + bhCount * qW * Math.ceil(qH / W) };
}
