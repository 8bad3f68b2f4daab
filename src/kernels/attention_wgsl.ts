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
 * `v4` the buffer is array<vec4<f32>> and base, headDim are multiples of 4. */
export function loadVec4(v4: boolean, buf: string, base: string, d4: string, ok: string): string {
  if (v4) {
    return `select(vec4<f32>(0.0), ${buf}[(${base}) / 4u + ${d4}], ${ok} && ${d4} * 4u < p.headDim)`;
  }
  return `vec4<f32>(${
    unroll(4, (e) => {
      const d = `${d4} * 4u + ${e}u`;
      return `select(0.0, ${buf}[${base} + ${d}], ${ok} && ${d} < p.headDim)`;
    }, ", ")
  })`;
}
