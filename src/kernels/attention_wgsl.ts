/**
 * WGSL pieces shared by the attention kernels (attention.ts, attention_rows.ts): the uniform
 * block every variant reads, and generators for unrolled code and guarded vec4 loads.
 */

/** The uniform block of every attention variant (attention.ts fills it). */
export const ATTENTION_PARAMS_WGSL = `struct P {
  batch: u32, heads: u32, headDim: u32, nq: u32, nk: u32,
  qOff: u32, qStride: u32, kOff: u32, kStride: u32, vOff: u32, vStride: u32,
  scale: f32, nqb: u32, d4n: u32, kH: u32, kW: u32, invKW: f32,
}`;

/** Sentinel for the running max before the first key; WGSL does not guarantee infinities. */
export const NEG_BIG = "-1.0e30";

/** Repeats `f(i)` for i in [0, n) as generated WGSL: shaders are unrolled over the thread's
 * register block so accumulators are plain registers, never dynamically indexed arrays. */
export function unroll(n: number, f: (i: number) => string, sep = "\n"): string {
  return Array.from({ length: n }, (_, i) => f(i)).join(sep);
}

/** WGSL for vec4 number `d4` of a head row starting at element `base` of `buf`; dims >=
 * headDim and invalid rows read 0, branch-free (their clamped reads are harmless). With
 * `v4` the buffer is array<vec4<f32>> and base, headDim are multiples of 4. `half`: the
 * buffer holds f16 (precision "f16"), widened to f32 here. */
export function loadVec4(
  v4: boolean,
  buf: string,
  base: string,
  d4: string,
  ok: string,
  half = false,
): string {
  if (v4) {
    const x = `${buf}[(${base}) / 4u + ${d4}]`;
    return `select(vec4<f32>(0.0), ${
      half ? `vec4<f32>(${x})` : x
    }, ${ok} && ${d4} * 4u < p.headDim)`;
  }
  return `vec4<f32>(${
    unroll(4, (e) => {
      const d = `${d4} * 4u + ${e}u`;
      const x = `${buf}[${base} + ${d}]`;
      return `select(0.0, ${half ? `f32(${x})` : x}, ${ok} && ${d} < p.headDim)`;
    }, ", ")
  })`;
}

/** Binding kinds of an attention variant: uniform, q, k, v, [relH, relW,] out. */
export function attentionBindings(
  relPos: boolean,
  biasTable = false,
): ("uniform" | "read" | "write")[] {
  return relPos
    ? ["uniform", "read", "read", "read", "read", "read", "write"]
    : biasTable
    ? ["uniform", "read", "read", "read", "read", "write"]
    : ["uniform", "read", "read", "read", "write"];
}

/** WGSL header of an attention variant: the uniform block and the q, k, v, rel-pos and out
 * bindings, with `elem` ("f32" or "vec4<f32>") as the element of q, k, v and out; `half`:
 * q, k and v hold f16 instead, `halfOut`: out does (`enable f16;` comes first). */
export function attentionHeader(
  elem: string,
  relPos: boolean,
  biasTable = false,
  half = false,
  halfOut = false,
): string {
  const qkvElem = half ? elem.replace("f32", "f16") : elem;
  const outElem = halfOut ? elem.replace("f32", "f16") : elem;
  // biasTable: the tiled kernel's per-head table [heads, nq, nk] (attention.ts).
  const rel = relPos
    ? `@group(0) @binding(4) var<storage, read> relH: array<f32>;
@group(0) @binding(5) var<storage, read> relW: array<f32>;
`
    : biasTable
    ? `@group(0) @binding(4) var<storage, read> biasTab: array<f32>;
`
    : "";
  return `${half || halfOut ? "enable f16;\n" : ""}${ATTENTION_PARAMS_WGSL}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> qBuf: array<${qkvElem}>;
@group(0) @binding(2) var<storage, read> kBuf: array<${qkvElem}>;
@group(0) @binding(3) var<storage, read> vBuf: array<${qkvElem}>;
${rel}@group(0) @binding(${
    relPos ? 6 : biasTable ? 5 : 4
  }) var<storage, read_write> outBuf: array<${outElem}>;`;
}
