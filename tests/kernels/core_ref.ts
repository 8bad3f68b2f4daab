/**
 * Float64 CPU references shared by the kernels-core tests (linear, matmul, activation).
 */

/** erf in float64: 2/sqrt(pi) e^{-z^2} sum_n 2^n z^{2n+1} / (1*3*...*(2n+1)); all terms
 * positive, so no cancellation; erf(z) rounds to +-1 in float64 beyond |z| = 6. */
export function erf64(z: number): number {
  const a = Math.abs(z);
  if (a > 6) return Math.sign(z);
  let term = a, sum = a;
  for (let n = 1; term > 1e-17 * sum; n++) {
    term *= (2 * a * a) / (2 * n + 1);
    sum += term;
  }
  const r = (2 / Math.sqrt(Math.PI)) * Math.exp(-a * a) * sum;
  return z < 0 ? -r : r;
}

/** erfc in float64 for z >= 0: 1 - erf(z) below 2 (erfc(2) = 4.7e-3: little is lost), the
 * continued fraction e^{-z^2} / sqrt(pi) / (z + (1/2) / (z + 1 / (z + (3/2) / (z + ...))))
 * above, which keeps relative accuracy where erfc is tiny. */
export function erfc64(z: number): number {
  if (z < 2) return 1 - erf64(z);
  let f = 0;
  for (let n = 120; n >= 1; n--) f = n / 2 / (z + f);
  return Math.exp(-z * z) / Math.sqrt(Math.PI) / (z + f);
}

/** torch nn.GELU() (exact) in float64: 0.5 x (1 + erf(x / sqrt 2)), as 0.5 x erfc(|x| / sqrt 2)
 * for x < 0 so tiny values keep their relative accuracy. */
export function gelu64(x: number): number {
  const z = x / Math.SQRT2;
  return x < 0 ? 0.5 * x * erfc64(-z) : 0.5 * x * (1 + erf64(z));
}

export type Act = "none" | "gelu" | "relu";

export function act64(kind: Act, v: number): number {
  return kind === "gelu" ? gelu64(v) : kind === "relu" ? Math.max(v, 0) : v;
}

/** One output element of act(x @ W^T + bias) + residual, accumulated in float64. */
export function linearRefAt(
  x: Float32Array,
  w: Float32Array,
  bias: Float32Array | null,
  residual: Float32Array | null,
  act: Act,
  K: number,
  N: number,
  m: number,
  n: number,
): number {
  let s = 0;
  for (let k = 0; k < K; k++) s += x[m * K + k] * w[n * K + k];
  if (bias) s += bias[n];
  let v = act64(act, s);
  if (residual) v += residual[m * N + n];
  return v;
}

/** `count` distinct-enough random (row, col) pairs, deterministic per seed; always includes
 * the four corners so edge tiles are checked. */
export function samplePairs(M: number, N: number, count: number, seed: number): [number, number][] {
  const pairs: [number, number][] = [[0, 0], [0, N - 1], [M - 1, 0], [M - 1, N - 1]];
  let s = seed >>> 0;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
  while (pairs.length < count) pairs.push([Math.floor(next() * M), Math.floor(next() * N)]);
  return pairs;
}
