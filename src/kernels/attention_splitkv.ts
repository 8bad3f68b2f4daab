/**
 * Split-KV attention (flash-decoding): for long key sequences with few query blocks, one
 * workgroup per query block walks all keys alone, so a grid of (batch * heads * query blocks)
 * leaves a big GPU idle. Here the keys are cut into S slices:
 *   pass 1: a workgroup per (batch * head, query block of 64, slice); each invocation owns one
 *           query row and streams the slice's keys with an online softmax, SAM's rel-pos bias
 *           (relH[q, kh] + relW[q, kw]) added to each score as it is made; it writes its
 *           unnormalised output row and its (max, sum) to a scratch buffer;
 *   pass 2: an invocation per (batch * head, query) merges the S partials:
 *           M = max m_s, L = sum l_s e^(m_s - M), O = sum o_s e^(m_s - M) / L.
 * Variants "splitkv4", "splitkv8" (S). Head dims up to 128 (padded to 16), vec4 or scalar
 * global access, with or without rel-pos. The scratch is one buffer per context, grown on
 * demand; where it would pass the device's binding limit the caller falls back.
 */
import { type GpuContext, grid, type KernelSpec } from "../gpu/context.ts";
import { emptyTensor, Params, type Tensor } from "../gpu/tensor.ts";
import { loadVec4, NEG_BIG, unroll } from "./attention_wgsl.ts";

/** Slice counts with a name. */
export const SPLITKV_SLICES = [4, 8] as const;

/** The slice count of "splitkv4" / "splitkv8", or null. */
export function parseSplitKvName(name: string): number | null {
  const m = /^splitkv(\d+)$/.exec(name);
  if (!m) return null;
  const s = Number(m[1]);
  return (SPLITKV_SLICES as readonly number[]).includes(s) ? s : null;
}

interface Shape {
  /** Padded head dim (multiple of 16, <= 128). */
  dp: number;
  v4: boolean;
  relPos: boolean;
}

const PARAMS_WGSL = `struct P {
  batch: u32, heads: u32, headDim: u32, nq: u32, nk: u32,
  qOff: u32, qStride: u32, kOff: u32, kStride: u32, vOff: u32, vStride: u32,
  scale: f32, nqb: u32, S: u32, kLen: u32, kH: u32, kW: u32,
}`;

function partialSpec(sh: Shape): KernelSpec {
  const { dp, v4, relPos } = sh;
  const d4 = dp / 4;
  const elem = v4 ? "vec4<f32>" : "f32";
  const I = Array.from({ length: d4 }, (_, i) => i);
  const name = `attention_splitkv_partial${relPos ? "_relpos" : ""}_d${dp}${v4 ? "_v4" : ""}_f32`;
  const rel = relPos
    ? `@group(0) @binding(4) var<storage, read> relH: array<f32>;
@group(0) @binding(5) var<storage, read> relW: array<f32>;
@group(0) @binding(6) var<storage, read_write> part: array<vec4<f32>>;`
    : `@group(0) @binding(4) var<storage, read_write> part: array<vec4<f32>>;`;
  return {
    name,
    bindings: relPos
      ? ["uniform", "read", "read", "read", "read", "read", "write"]
      : ["uniform", "read", "read", "read", "write"],
    code: () => /* wgsl */ `
${PARAMS_WGSL}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> qBuf: array<${elem}>;
@group(0) @binding(2) var<storage, read> kBuf: array<${elem}>;
@group(0) @binding(3) var<storage, read> vBuf: array<${elem}>;
${rel}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wgid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let flat = wgid.x + wgid.y * nwg.x;
  let per = p.nqb * p.S;
  let bh = flat / per;
  if (bh >= p.batch * p.heads) { return; }  // workgroup-uniform: padding of the folded grid
  let rem = flat % per;
  let s = rem / p.nqb;
  let qRaw = (rem % p.nqb) * 64u + lid;
  let qi = min(qRaw, p.nq - 1u);
  let b = bh / p.heads;
  let h = bh % p.heads;
  let qb = p.qOff + (b * p.nq + qi) * p.qStride + h * p.headDim;
${unroll(d4, (i) => `  let q${i} = ${loadVec4(v4, "qBuf", "qb", `${i}u`, "true")} * p.scale;`)}
  var m = ${NEG_BIG};
  var l = 0.0;
${unroll(d4, (i) => `  var o${i} = vec4<f32>(0.0);`)}
${relPos ? "  let relRow = bh * p.nq + qi;" : ""}
  let k0 = s * p.kLen;
  let k1 = min(k0 + p.kLen, p.nk);
  for (var j = k0; j < k1; j++) {
    let kb = p.kOff + (b * p.nk + j) * p.kStride + h * p.headDim;
    var sc = ${
      I.map((i) => `dot(q${i}, ${loadVec4(v4, "kBuf", "kb", `${i}u`, "true")})`).join(" + ")
    };
${
      relPos
        ? `    let kh = j / p.kW;
    sc += relH[relRow * p.kH + kh] + relW[relRow * p.kW + j - kh * p.kW];`
        : ""
    }
    let mn = max(m, sc);
    let corr = exp(m - mn);
    let pj = exp(sc - mn);
    l = l * corr + pj;
    m = mn;
    let vb = p.vOff + (b * p.nk + j) * p.vStride + h * p.headDim;
${
      unroll(d4, (i) =>
        `    o${i} = o${i} * corr + pj * ${loadVec4(v4, "vBuf", "vb", `${i}u`, "true")};`)
    }
  }
  if (qRaw < p.nq) {
    let at = ((s * p.batch * p.heads + bh) * p.nq + qi) * ${d4 + 1}u;
${unroll(d4, (i) => `    part[at + ${i}u] = o${i};`)}
    part[at + ${d4}u] = vec4<f32>(m, l, 0.0, 0.0);
  }
}`,
  };
}

function mergeSpec(sh: Shape): KernelSpec {
  const { dp, v4 } = sh;
  const d4 = dp / 4;
  const elem = v4 ? "vec4<f32>" : "f32";
  const store = (i: number) =>
    v4
      ? `  if (${4 * i}u < p.headDim) { outBuf[ob / 4u + ${i}u] = o${i} * inv; }`
      : `  for (var e = 0u; e < 4u; e++) {
    if (${4 * i}u + e < p.headDim) { outBuf[ob + ${4 * i}u + e] = o${i}[e] * inv; }
  }`;
  return {
    name: `attention_splitkv_merge_d${dp}${v4 ? "_v4" : ""}_f32`,
    bindings: ["uniform", "read", "write"],
    code: () => /* wgsl */ `
struct M { bhn: u32, nq: u32, heads: u32, headDim: u32, S: u32 }
@group(0) @binding(0) var<uniform> p: M;
@group(0) @binding(1) var<storage, read> part: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> outBuf: array<${elem}>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wgid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let t = (wgid.x + wgid.y * nwg.x) * 64u + lid;
  if (t >= p.bhn) { return; }
  let bh = t / p.nq;
  let q = t % p.nq;
  var mAll = ${NEG_BIG};
  for (var s = 0u; s < p.S; s++) { mAll = max(mAll, part[(s * p.bhn + t) * ${
      d4 + 1
    }u + ${d4}u].x); }
  var lAll = 0.0;
${unroll(d4, (i) => `  var o${i} = vec4<f32>(0.0);`)}
  for (var s = 0u; s < p.S; s++) {
    let at = (s * p.bhn + t) * ${d4 + 1}u;
    let ml = part[at + ${d4}u];
    let w = exp(ml.x - mAll);
    lAll += ml.y * w;
${unroll(d4, (i) => `    o${i} += part[at + ${i}u] * w;`)}
  }
  let inv = 1.0 / lAll;
  let b = bh / p.heads;
  let h = bh % p.heads;
  let ob = (b * p.nq + q) * p.heads * p.headDim + h * p.headDim;
${unroll(d4, store)}
}`,
  };
}

const specs = new Map<string, KernelSpec>();
function cachedSpec(make: (sh: Shape) => KernelSpec, kind: string, sh: Shape): KernelSpec {
  const key = `${kind}/${JSON.stringify(sh)}`;
  let spec = specs.get(key);
  if (!spec) {
    spec = make(sh);
    specs.set(key, spec);
  }
  return spec;
}

const scratch = new WeakMap<GpuContext, Tensor>();

/** Floats of scratch a call needs. */
function scratchFloats(bhn: number, dp: number, slices: number): number {
  return slices * bhn * (dp + 4);
}

/** Whether the scratch of this call fits one storage binding of the device. */
export function splitKvFits(ctx: GpuContext, bhn: number, headDim: number, slices: number) {
  const dp = 16 * Math.ceil(headDim / 16);
  return scratchFloats(bhn, dp, slices) * 4 <= ctx.device.limits.maxStorageBufferBindingSize;
}

export interface SplitKvCall {
  batch: number;
  heads: number;
  headDim: number;
  nq: number;
  nk: number;
  scale: number;
  v4: boolean;
  slices: number;
  q: { buffer: GPUBuffer; offset: number; rowStride: number };
  k: { buffer: GPUBuffer; offset: number; rowStride: number };
  v: { buffer: GPUBuffer; offset: number; rowStride: number };
  rel?: { relH: GPUBuffer; relW: GPUBuffer; kH: number; kW: number };
  out: GPUBuffer;
}

/** Records both passes (attention.ts has checked the views and sizes). */
export function runSplitKv(ctx: GpuContext, c: SplitKvCall): void {
  const sh: Shape = { dp: 16 * Math.ceil(c.headDim / 16), v4: c.v4, relPos: c.rel !== undefined };
  const S = Math.max(1, Math.min(c.slices, c.nk));
  const kLen = Math.ceil(c.nk / S);
  const bh = c.batch * c.heads;
  const bhn = bh * c.nq;
  const need = scratchFloats(bhn, sh.dp, S);
  let part = scratch.get(ctx);
  if (!part || part.size < need) {
    if (part) {
      ctx.submit(); // recorded commands may still bind the old scratch
      part.destroy();
    }
    part = emptyTensor(ctx, [need], "attention.splitkv.partial");
    scratch.set(ctx, part);
  }
  const nqb = Math.ceil(c.nq / 64);
  const p1 = new Params()
    .u32(c.batch, c.heads, c.headDim, c.nq, c.nk)
    .u32(c.q.offset, c.q.rowStride, c.k.offset, c.k.rowStride, c.v.offset, c.v.rowStride)
    .f32(c.scale)
    .u32(nqb, S, kLen, c.rel?.kH ?? 1, c.rel?.kW ?? 1)
    .build();
  const buffers = [c.q.buffer, c.k.buffer, c.v.buffer];
  if (c.rel) buffers.push(c.rel.relH, c.rel.relW);
  buffers.push(part.buffer);
  ctx.dispatch(cachedSpec(partialSpec, "partial", sh), p1, buffers, grid(bh * nqb * S));
  const p2 = new Params().u32(bhn, c.nq, c.heads, c.headDim, S).build();
  ctx.dispatch(
    cachedSpec(mergeSpec, "merge", sh),
    p2,
    [part.buffer, c.out],
    grid(Math.ceil(bhn / 64)),
  );
}
