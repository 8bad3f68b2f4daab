/**
 * SAM's decomposed relative-position bias (MViTv2), as the ViT encoder's Attention uses it:
 *   bias[bh, (qh, qw), (kh, kw)] = q[bh, (qh, qw)] . Rh[qh, kh] + q[bh, (qh, qw)] . Rw[qw, kw]
 * with Rh = get_rel_pos(qH, kH, rel_pos_h), Rw = get_rel_pos(qW, kW, rel_pos_w) and q unscaled.
 *
 * getRelPos runs once per weight load on the CPU (it only depends on the weights and the
 * grid size); relPosBias runs per forward pass on the GPU and yields the two small factors
 * (relH, relW) that the attention kernel adds to its scores on the fly, so the full
 * (nq, nk) bias never exists.
 */
import { type GpuContext, grid, type KernelSpec } from "../gpu/context.ts";
import { emptyTensor, Params, requireShaderF16, type Tensor } from "../gpu/tensor.ts";
import type { AttentionDims, HeadsView, RelPosBias } from "./attention.ts";
import {
  REL_POS_LANES_MAX_DIM,
  relPosLanesDim,
  relPosLanesGrid,
  relPosLanesSpec,
} from "./rel_pos_lanes.ts";

const f32 = Math.fround;

/**
 * The official get_rel_pos: the table [tableLen, headDim] resized to 2*max(qSize, kSize)-1
 * rows by F.interpolate(mode="linear", align_corners=False) when its length differs, then
 * gathered at the scaled relative coordinates. Arithmetic is rounded to float32 where
 * PyTorch computes in float32 so the truncated indices agree.
 * Returns [qSize, kSize, headDim].
 */
export function getRelPos(
  qSize: number,
  kSize: number,
  table: Float32Array,
  tableLen: number,
  headDim: number,
): Float32Array {
  for (
    const [name, x] of [["qSize", qSize], ["kSize", kSize], ["tableLen", tableLen], [
      "headDim",
      headDim,
    ]] as const
  ) {
    if (!Number.isInteger(x) || x < 1) {
      throw new Error(`getRelPos: ${name} must be a positive integer, got ${x}`);
    }
  }
  if (table.length !== tableLen * headDim) {
    throw new Error(
      `getRelPos: table has ${table.length} values, need [tableLen ${tableLen}, headDim ${headDim}]`,
    );
  }
  const maxRelDist = 2 * Math.max(qSize, kSize) - 1;
  const resized = tableLen === maxRelDist ? table : interpolateLinear(
    table,
    tableLen,
    maxRelDist,
    headDim,
  );
  // q_coords = arange(q)[:, None] * max(k/q, 1); k_coords likewise; float32 tensors.
  const qScale = f32(Math.max(kSize / qSize, 1));
  const kScale = f32(Math.max(qSize / kSize, 1));
  const shift = f32((kSize - 1) * Math.max(qSize / kSize, 1));
  const out = new Float32Array(qSize * kSize * headDim);
  for (let i = 0; i < qSize; i++) {
    for (let j = 0; j < kSize; j++) {
      const rel = f32(f32(f32(i * qScale) - f32(j * kScale)) + shift);
      const idx = Math.trunc(rel); // .long() truncates toward zero
      out.set(resized.subarray(idx * headDim, (idx + 1) * headDim), (i * kSize + j) * headDim);
    }
  }
  return out;
}

/**
 * F.interpolate(x.reshape(1, L, C).permute(0, 2, 1), size=outLen, mode="linear",
 * align_corners=False) permuted back: rows of [inLen, C] resampled to [outLen, C].
 */
function interpolateLinear(
  table: Float32Array,
  inLen: number,
  outLen: number,
  C: number,
): Float32Array {
  const out = new Float32Array(outLen * C);
  const scale = f32(inLen / outLen);
  for (let o = 0; o < outLen; o++) {
    // Source coordinate of the output sample's centre, clamped at 0 (not cubic).
    const src = Math.max(f32(f32(scale * f32(o + 0.5)) - 0.5), 0);
    const i0 = Math.floor(src);
    const i1 = i0 + (i0 < inLen - 1 ? 1 : 0);
    const l1 = Math.min(Math.max(f32(src - i0), 0), 1);
    const l0 = f32(1 - l1);
    for (let c = 0; c < C; c++) {
      out[o * C + c] = f32(f32(l0 * table[i0 * C + c]) + f32(l1 * table[i1 * C + c]));
    }
  }
  return out;
}

const WG = 256;

/** The kernel; `half`: q is stored as f16 (precision "f16"), widened on load. */
function relPosBiasSpec(half: boolean): KernelSpec {
  return {
    name: half ? "rel_pos_bias_f32_f16q" : "rel_pos_bias_f32",
    bindings: ["uniform", "read", "read", "read", "write", "write"],
    code: () =>
      /* wgsl */ `${half ? "enable f16;\n" : ""}
struct P {
  n: u32, heads: u32, headDim: u32, nq: u32, qOff: u32, qStride: u32,
  qW: u32, kH: u32, kW: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> q: array<${half ? "f16" : "f32"}>;
@group(0) @binding(2) var<storage, read> rh: array<f32>;
@group(0) @binding(3) var<storage, read> rw: array<f32>;
@group(0) @binding(4) var<storage, read_write> relH: array<f32>;
@group(0) @binding(5) var<storage, read_write> relW: array<f32>;

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * ${WG}u;
  if (i >= p.n) { return; }
  // i enumerates rows (bh, n) of kH + kW outputs: the relH entries, then the relW ones.
  let per = p.kH + p.kW;
  let t = i % per;
  let row = i / per;            // bh * nq + n
  let n = row % p.nq;
  let bh = row / p.nq;
  let b = bh / p.heads;
  let h = bh % p.heads;
  let qBase = p.qOff + (b * p.nq + n) * p.qStride + h * p.headDim;
  var rBase: u32;
  if (t < p.kH) {
    rBase = ((n / p.qW) * p.kH + t) * p.headDim;        // Rh[qh, kh, :]
  } else {
    rBase = ((n % p.qW) * p.kW + t - p.kH) * p.headDim; // Rw[qw, kw, :]
  }
  var s = 0.0;
  if (t < p.kH) {
    for (var c = 0u; c < p.headDim; c++) { s += ${
        half ? "f32(q[qBase + c])" : "q[qBase + c]"
      } * rh[rBase + c]; }
    relH[row * p.kH + t] = s;
  } else {
    for (var c = 0u; c < p.headDim; c++) { s += ${
        half ? "f32(q[qBase + c])" : "q[qBase + c]"
      } * rw[rBase + c]; }
    relW[row * p.kW + t - p.kH] = s;
  }
}`,
  };
}

const REL_POS_BIAS = relPosBiasSpec(false);
const REL_POS_BIAS_F16Q = relPosBiasSpec(true);

/** "flat": one invocation per output (GPUs); "lanes": rel_pos_lanes.ts (CPU adapters). */
export type RelPosVariant = "flat" | "lanes";

/** "lanes" on CPU adapters (measured on lavapipe: see rel_pos_lanes.ts), else "flat". */
export function defaultRelPosVariant(software: boolean, headDim: number): RelPosVariant {
  return software && headDim <= REL_POS_LANES_MAX_DIM ? "lanes" : "flat";
}

/**
 * relH[bh, (qh, qw), kh] = q[b, (qh, qw), h, :] . rh[qh, kh, :] and
 * relW[bh, (qh, qw), kw] = q[b, (qh, qw), h, :] . rw[qw, kw, :] (q unscaled, as SAM).
 * dims.nq must be qH * qW; dims.nk is not used (the keys are kH x kW). `out` lets a caller
 * reuse its own buffers; `variant` overrides the adapter's default kernel.
 */
export function relPosBias(
  ctx: GpuContext,
  q: HeadsView,
  dims: AttentionDims,
  qH: number,
  qW: number,
  rh: Tensor,
  rw: Tensor,
  kH: number,
  kW: number,
  out?: { relH: Tensor; relW: Tensor },
  variant?: RelPosVariant,
): RelPosBias {
  const { batch, heads, headDim, nq } = dims;
  for (const [name, x] of Object.entries({ batch, heads, headDim, nq, qH, qW, kH, kW })) {
    if (!Number.isInteger(x) || x < 1) {
      throw new Error(`relPosBias: ${name} must be a positive integer, got ${x}`);
    }
  }
  if (qH * qW !== nq) throw new Error(`relPosBias: qH*qW = ${qH}*${qW} != nq ${nq}`);
  if (rh.size !== qH * kH * headDim) {
    throw new Error(
      `relPosBias: rh has ${rh.size} elements, need [qH ${qH}, kH ${kH}, headDim ${headDim}]`,
    );
  }
  if (rw.size !== qW * kW * headDim) {
    throw new Error(
      `relPosBias: rw has ${rw.size} elements, need [qW ${qW}, kW ${kW}, headDim ${headDim}]`,
    );
  }
  if (!Number.isInteger(q.offset) || !Number.isInteger(q.rowStride) || q.offset < 0) {
    throw new Error(`relPosBias: bad q view offset ${q.offset} / rowStride ${q.rowStride}`);
  }
  if (q.rowStride < heads * headDim) {
    throw new Error(`relPosBias: q.rowStride ${q.rowStride} < heads*headDim ${heads * headDim}`);
  }
  const last = q.offset + (batch * nq - 1) * q.rowStride + heads * headDim - 1;
  if (last >= q.tensor.size) {
    throw new Error(
      `relPosBias: q view reaches element ${last} of a tensor of ${q.tensor.size} ([${q.tensor.shape}])`,
    );
  }
  const shapeH = [batch * heads, nq, kH], shapeW = [batch * heads, nq, kW];
  const given = (t: Tensor, shape: number[], name: string) => {
    if (t.size !== shape[0] * shape[1] * shape[2]) {
      throw new Error(`relPosBias: out.${name} has ${t.size} elements, need [${shape}]`);
    }
    if (t.buffer === q.tensor.buffer) {
      throw new Error(`relPosBias: out.${name} may not share q's buffer`);
    }
    return t.reshape(shape);
  };
  const relH = out ? given(out.relH, shapeH, "relH") : emptyTensor(ctx, shapeH, "rel_pos.relH");
  const relW = out ? given(out.relW, shapeW, "relW") : emptyTensor(ctx, shapeW, "rel_pos.relW");
  if (relH.buffer === relW.buffer) throw new Error("relPosBias: relH and relW share a buffer");
  const n = batch * heads * nq * (kH + kW);
  const params = new Params()
    .u32(n, heads, headDim, nq, q.offset, q.rowStride, qW, kH, kW)
    .build();
  const half = q.tensor.dtype === "f16";
  if (half) requireShaderF16(ctx, "relPosBias");
  const name = variant ?? defaultRelPosVariant(ctx.gpu.software, headDim);
  if (name === "lanes") {
    if (headDim > REL_POS_LANES_MAX_DIM) {
      throw new Error(`relPosBias: "lanes" takes headDim <= ${REL_POS_LANES_MAX_DIM}`);
    }
    const { wgH, total } = relPosLanesGrid(batch * heads, qH, qW);
    const lanesParams = new Params()
      .u32(n, heads, headDim, nq, q.offset, q.rowStride, qW, kH, kW, qH, wgH, batch * heads)
      .build();
    ctx.dispatch(
      relPosLanesSpec(relPosLanesDim(headDim), half, headDim % 4 === 0),
      lanesParams,
      [q.tensor.buffer, rh.buffer, rw.buffer, relH.buffer, relW.buffer],
      grid(total),
    );
    return { relH, relW, kH, kW };
  }
  ctx.dispatch(
    half ? REL_POS_BIAS_F16Q : REL_POS_BIAS,
    params,
    [q.tensor.buffer, rh.buffer, rw.buffer, relH.buffer, relW.buffer],
    grid(Math.ceil(n / WG)),
  );
  return { relH, relW, kH, kW };
}
