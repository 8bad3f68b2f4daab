/**
 * Float64 reference of relPosBias (rel_pos.ts): SAM's decomposed rel-pos factors from q.
 */

/** relH [bh, n, kH] and relW [bh, n, kW] from a host q [batch, nq, rowStride] view. */
export function relPosBiasRef(
  q: Float32Array,
  offset: number,
  stride: number,
  batch: number,
  heads: number,
  D: number,
  qH: number,
  qW: number,
  rh: ArrayLike<number>,
  rw: ArrayLike<number>,
  kH: number,
  kW: number,
) {
  const nq = qH * qW;
  const relH = new Float64Array(batch * heads * nq * kH);
  const relW = new Float64Array(batch * heads * nq * kW);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      for (let n = 0; n < nq; n++) {
        const qb = offset + (b * nq + n) * stride + h * D;
        const row = (b * heads + h) * nq + n;
        const qh = Math.floor(n / qW), qw = n % qW;
        for (let kh = 0; kh < kH; kh++) {
          let s = 0;
          for (let c = 0; c < D; c++) s += q[qb + c] * rh[(qh * kH + kh) * D + c];
          relH[row * kH + kh] = s;
        }
        for (let kw = 0; kw < kW; kw++) {
          let s = 0;
          for (let c = 0; c < D; c++) s += q[qb + c] * rw[(qw * kW + kw) * D + c];
          relW[row * kW + kw] = s;
        }
      }
    }
  }
  return { relH, relW };
}
