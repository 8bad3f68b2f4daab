/**
 * Numeric checks for GPU results: per element |got - ref| <= atol + rtol * |ref|, and NMSE
 * for long reductions. A failure names the worst element and its index.
 */
import { AssertionError } from "node:assert/strict";

type Numeric = ArrayLike<number>;

export interface CloseOptions {
  atol: number;
  rtol?: number;
  /** Where given, also require sum((got-ref)^2) / sum(ref^2) <= nmse. */
  nmse?: number;
  /** Shape of the data, used only to print the worst element's multi-index. */
  shape?: readonly number[];
  label?: string;
}

export interface CloseReport {
  maxAbs: number;
  worstIndex: number;
  nmse: number;
  failures: number;
}

export function compareClose(got: Numeric, ref: Numeric, opts: CloseOptions): CloseReport {
  const { atol, rtol = 0 } = opts;
  if (got.length !== ref.length) {
    throw new AssertionError({
      message: `${opts.label ?? "values"}: length ${got.length} != expected ${ref.length}`,
    });
  }
  let maxAbs = 0, worstIndex = -1, worstExcess = -Infinity, failures = 0;
  let errSq = 0, refSq = 0;
  for (let i = 0; i < got.length; i++) {
    const g = got[i], r = ref[i];
    const d = Math.abs(g - r);
    const allowed = atol + rtol * Math.abs(r);
    const excess = Number.isNaN(d) ? Infinity : d - allowed;
    if (excess > 0) failures++;
    if (excess > worstExcess) {
      worstExcess = excess;
      worstIndex = i;
    }
    if (d > maxAbs || Number.isNaN(d)) maxAbs = Number.isNaN(d) ? NaN : d;
    errSq += (g - r) * (g - r);
    refSq += r * r;
  }
  const nmse = refSq > 0 ? errSq / refSq : errSq;
  return { maxAbs, worstIndex, nmse, failures };
}

export function multiIndex(flat: number, shape?: readonly number[]): string {
  if (!shape || shape.length === 0) return `[${flat}]`;
  const idx: number[] = [];
  let rest = flat;
  for (let d = shape.length - 1; d >= 0; d--) {
    idx.unshift(rest % shape[d]);
    rest = Math.floor(rest / shape[d]);
  }
  return `[${idx.join(", ")}]`;
}

/** Throws with the worst element's index and values when any element is out of tolerance. */
export function assertClose(got: Numeric, ref: Numeric, opts: CloseOptions): CloseReport {
  const report = compareClose(got, ref, opts);
  const label = opts.label ?? "values";
  const w = report.worstIndex;
  const where = w >= 0
    ? `worst at ${multiIndex(w, opts.shape)} (flat ${w}): got ${got[w]}, expected ${ref[w]}`
    : "";
  if (report.failures > 0) {
    throw new AssertionError({
      message:
        `${label}: ${report.failures}/${got.length} elements outside |d| <= ${opts.atol} + ` +
        `${opts.rtol ?? 0}*|ref|; max abs ${report.maxAbs}; ${where}`,
    });
  }
  if (opts.nmse !== undefined && !(report.nmse <= opts.nmse)) {
    throw new AssertionError({
      message: `${label}: NMSE ${report.nmse} > ${opts.nmse}; max abs ${report.maxAbs}; ${where}`,
    });
  }
  return report;
}

/** Deterministic pseudo-random floats in [-scale, scale) (mulberry32), for kernel tests. */
export function randomArray(n: number, seed: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    out[i] = (2 * u - 1) * scale;
  }
  return out;
}
