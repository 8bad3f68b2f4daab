/**
 * Row-wise attention for CPU adapters: out = softmax(scale * q k^T + bias) v, per (batch,
 * head), where each invocation owns `rows` query rows and streams every key itself.
 *
 * No workgroup memory and no barriers: q rows and the output accumulators stay in the
 * invocation's registers, and all invocations of a workgroup walk the same key at the same
 * time, so each K and V read has one address for the whole workgroup (on llvmpipe a single
 * load and a broadcast, where the tiled kernel's per-invocation reads are scalar gathers).
 * Keys go in groups of 4 through an online softmax (one rescale of the output and five exps
 * per group and row). SAM's decomposed rel-pos bias relH[q, kh] + relW[q, kw] is gathered
 * once per row into private arrays and then read at the key's (kh, kw), an index that is
 * again the same for every invocation.
 *
 * Measured on lavapipe in one run (2 cores, busy): ViT global attention (2 heads, 4096
 * tokens, head dim 64, rel pos) 0.51 GFLOP/s tiled, 1.86 for rows4w8; windowed (25 x 196
 * tokens) 0.38 tiled, 1.02 rows2w8. Eight invocations (one 256-bit SIMD vector) beat 16.
 *
 * Variants: rows per invocation (1, 2, 4, 8, 16), invocations per workgroup, padded head dim (16 or
 * 32 steps up to 128), vec4 or scalar global access, with or without rel-pos (kH, kW <= 64:
 * SAM's 64x64 global grid).
 */
import type { KernelSpec } from "../gpu/context.ts";
import { attentionBindings, attentionHeader, loadVec4, NEG_BIG } from "./attention_wgsl.ts";

/** Largest rel-pos grid side the private arrays hold. */
export const ROWS_MAX_REL = 64;

export interface RowsVariant {
  rows: number;
  wg: number;
  /** Padded head dim, a multiple of 16, at most 128. */
  dp: number;
  v4: boolean;
  relPos: boolean;
  /** q, k, v stored as f16 (precision "f16"). */
  half?: boolean;
  /** out stored as f16. */
  halfOut?: boolean;
}

/** "rows2w16": 2 query rows per invocation, 16 invocations. */
export function parseRowsName(name: string): { rows: number; wg: number } | null {
  const m = /^rows(\d+)w(\d+)$/.exec(name);
  if (!m) return null;
  const rows = Number(m[1]);
  const wg = Number(m[2]);
  if (![1, 2, 4, 8, 16].includes(rows) || ![8, 16, 32, 64].includes(wg)) return null;
  return { rows, wg };
}

export function rowsSpecName(v: RowsVariant): string {
  return `attention_rows${v.rows}w${v.wg}${v.relPos ? "_relpos" : ""}_d${v.dp}${
    v.v4 ? "_v4" : ""
  }_f32${v.half ? "_f16qkv" : ""}${v.halfOut ? "_f16o" : ""}`;
}

export function attentionRowsSpec(v: RowsVariant): KernelSpec {
  const { rows, wg, dp, v4, relPos } = v;
  const half = v.half ?? false;
  const halfOut = v.halfOut ?? false;
  const outValue = (x: string) => (halfOut ? (v4 ? `vec4<f16>(${x})` : `f16(${x})`) : x);
  const d4 = dp / 4;
  const elem = v4 ? "vec4<f32>" : "f32";
  const R = Array.from({ length: rows }, (_, r) => r);
  const I = Array.from({ length: d4 }, (_, i) => i);
  const G = [0, 1, 2, 3]; // keys of a group
  const bias = (r: number, g: number) => relPos ? ` + rh${r}[kh${g}] + rw${r}[kw${g}]` : "";
  const store = (r: number, i: number) =>
    v4
      ? `if (${4 * i}u < p.headDim) { outBuf[ob${r} / 4u + ${i}u] = ${
        outValue(`o${r}_${i} * inv${r}`)
      }; }`
      : `for (var e = 0u; e < 4u; e++) {
        if (${4 * i}u + e < p.headDim) { outBuf[ob${r} + ${4 * i}u + e] = ${
        outValue(`o${r}_${i}[e] * inv${r}`)
      }; }
      }`;
  return {
    name: rowsSpecName(v),
    bindings: attentionBindings(relPos),
    code: () => /* wgsl */ `
${attentionHeader(elem, relPos, false, half, halfOut)}

@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wgid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let flat = wgid.x + wgid.y * nwg.x;
  let bh = flat / p.nqb;
  if (bh >= p.batch * p.heads) { return; }  // workgroup-uniform: padding of the folded grid
  let b = bh / p.heads;
  let h = bh % p.heads;
  let q0 = (flat % p.nqb) * ${rows * wg}u + lid * ${rows}u;
${
      R.map((r) =>
        `  let qi${r} = min(q0 + ${r}u, p.nq - 1u);
  let qb${r} = p.qOff + (b * p.nq + qi${r}) * p.qStride + h * p.headDim;
${
          I.map((i) =>
            `  let q${r}_${i} = ${loadVec4(v4, "qBuf", `qb${r}`, `${i}u`, "true", half)} * p.scale;`
          ).join("\n")
        }
  var m${r} = ${NEG_BIG};
  var l${r} = 0.0;
${I.map((i) => `  var o${r}_${i} = vec4<f32>(0.0);`).join("\n")}${
          relPos
            ? `
  var rh${r}: array<f32, ${ROWS_MAX_REL}>;
  var rw${r}: array<f32, ${ROWS_MAX_REL}>;
  let relRow${r} = bh * p.nq + qi${r};
  for (var t = 0u; t < p.kH; t++) { rh${r}[t] = relH[relRow${r} * p.kH + t]; }
  for (var t = 0u; t < p.kW; t++) { rw${r}[t] = relW[relRow${r} * p.kW + t]; }`
            : ""
        }`
      ).join("\n")
    }

  for (var j0 = 0u; j0 < p.nk; j0 += 4u) {
${
      G.map((g) =>
        `    let j${g} = min(j0 + ${g}u, p.nk - 1u);
    let kb${g} = p.kOff + (b * p.nk + j${g}) * p.kStride + h * p.headDim;
${
          I.map((i) =>
            `    let k${g}_${i} = ${loadVec4(v4, "kBuf", `kb${g}`, `${i}u`, "true", half)};`
          )
            .join("\n")
        }${
          relPos
            ? `
    let kh${g} = j${g} / p.kW;
    let kw${g} = j${g} - kh${g} * p.kW;`
            : ""
        }`
      ).join("\n")
    }
${
      R.map((r) =>
        `${
          G.map((g) =>
            `    let s${r}_${g} = select(${NEG_BIG}, ${
              I.map((i) => `dot(q${r}_${i}, k${g}_${i})`).join(" + ")
            }${bias(r, g)}, j0 + ${g}u < p.nk);`
          ).join("\n")
        }
    let mn${r} = max(max(max(m${r}, s${r}_0), max(s${r}_1, s${r}_2)), s${r}_3);
    let corr${r} = exp(m${r} - mn${r});
${G.map((g) => `    let p${r}_${g} = exp(s${r}_${g} - mn${r});`).join("\n")}
    l${r} = l${r} * corr${r} + (p${r}_0 + p${r}_1) + (p${r}_2 + p${r}_3);
    m${r} = mn${r};
${I.map((i) => `    o${r}_${i} *= corr${r};`).join("\n")}`
      ).join("\n")
    }
${
      G.map((g) =>
        `    {
      let vb = p.vOff + (b * p.nk + j${g}) * p.vStride + h * p.headDim;
${
          I.map((i) => `      let v${i} = ${loadVec4(v4, "vBuf", "vb", `${i}u`, "true", half)};`)
            .join("\n")
        }
${R.map((r) => I.map((i) => `      o${r}_${i} += p${r}_${g} * v${i};`).join("\n")).join("\n")}
    }`
      ).join("\n")
    }
  }

${
      R.map((r) =>
        `  if (q0 + ${r}u < p.nq) {
    let inv${r} = 1.0 / l${r};
    let ob${r} = (b * p.nq + q0 + ${r}u) * p.heads * p.headDim + h * p.headDim;
    ${I.map((i) => store(r, i)).join("\n    ")}
  }`
      ).join("\n")
    }
}`,
  };
}
