/**
 * The GEMM variant tests' shared checks: a linear (act(x W^T + b) + residual) or a batched
 * matmul case, built from seeded random inputs, run through each named variant and compared
 * with the float64 reference (core_ref.ts) element by element.
 */
import { assertClose, randomArray } from "../util/compare.ts";
import type { GpuContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { linear } from "../../src/kernels/linear.ts";
import { matmul } from "../../src/kernels/matmul.ts";
import { type Act, linearRefAt } from "./core_ref.ts";

export interface LinearCase {
  M: number;
  K: number;
  N: number;
  bias: boolean;
  act: Act;
  residual: boolean;
  label?: string;
}

export interface MatmulCase {
  batch: number;
  M: number;
  K: number;
  N: number;
  transposeB: boolean;
  broadcastB?: boolean;
}

/** act(x W^T + bias) + residual for every (m, n), in float64. */
export function linearRef(
  x: Float32Array,
  w: Float32Array,
  bias: Float32Array | null,
  residual: Float32Array | null,
  c: { M: number; K: number; N: number; act: Act },
): Float64Array {
  const want = new Float64Array(c.M * c.N);
  for (let m = 0; m < c.M; m++) {
    for (let n = 0; n < c.N; n++) {
      want[m * c.N + n] = linearRefAt(x, w, bias, residual, c.act, c.K, c.N, m, n);
    }
  }
  return want;
}

/** a @ b (b as [K, N], or [N, K] with transposeB; batch 1 shared with broadcastB), float64. */
export function matmulRef(a: Float32Array, b: Float32Array, c: MatmulCase): Float64Array {
  const want = new Float64Array(c.batch * c.M * c.N);
  for (let bi = 0; bi < c.batch; bi++) {
    const bb = c.broadcastB ? 0 : bi;
    for (let m = 0; m < c.M; m++) {
      for (let n = 0; n < c.N; n++) {
        let s = 0;
        for (let k = 0; k < c.K; k++) {
          const bv = c.transposeB ? b[(bb * c.N + n) * c.K + k] : b[(bb * c.K + k) * c.N + n];
          s += a[(bi * c.M + m) * c.K + k] * bv;
        }
        want[(bi * c.M + m) * c.N + n] = s;
      }
    }
  }
  return want;
}

/** Runs `c` through every variant (undefined: the default) within atol + rtol |ref|. */
export async function checkLinear(
  ctx: GpuContext,
  c: LinearCase,
  variants: (string | undefined)[],
  opts: { seed: number; tol: number },
): Promise<void> {
  const { seed, tol } = opts;
  const x = randomArray(c.M * c.K, seed);
  const w = randomArray(c.N * c.K, seed + 10, 1 / Math.sqrt(c.K));
  const b = c.bias ? randomArray(c.N, seed + 20) : null;
  const r = c.residual ? randomArray(c.M * c.N, seed + 30) : null;
  const want = linearRef(x, w, b, r, c);
  const xt = tensorFrom(ctx, x, [c.M, c.K]);
  const wt = tensorFrom(ctx, w, [c.N, c.K]);
  const bt = b ? tensorFrom(ctx, b, [c.N]) : null;
  const rt = r ? tensorFrom(ctx, r, [c.M, c.N]) : undefined;
  try {
    for (const variant of variants) {
      const y = linear(ctx, xt, wt, bt, { activation: c.act, residual: rt, variant });
      const got = await y.read();
      y.destroy();
      assertClose(got, want, {
        atol: tol,
        rtol: tol,
        shape: [c.M, c.N],
        label: `linear ${variant ?? "default"} ${
          c.label ?? ""
        } M=${c.M} K=${c.K} N=${c.N} ${c.act}`,
      });
    }
  } finally {
    for (const t of [xt, wt, bt, rt]) t?.destroy();
  }
}

/** Runs the batched product `c` through every variant within atol + rtol |ref|. */
export async function checkMatmul(
  ctx: GpuContext,
  c: MatmulCase,
  variants: (string | undefined)[],
  opts: { seed: number; tol: number },
): Promise<void> {
  const bBatch = c.broadcastB ? 1 : c.batch;
  const a = randomArray(c.batch * c.M * c.K, opts.seed);
  const b = randomArray(bBatch * c.K * c.N, opts.seed + 10, 1 / Math.sqrt(c.K));
  const want = matmulRef(a, b, c);
  const at = tensorFrom(ctx, a, [c.batch, c.M, c.K]);
  const bt = tensorFrom(ctx, b, c.transposeB ? [bBatch, c.N, c.K] : [bBatch, c.K, c.N]);
  try {
    for (const variant of variants) {
      const y = matmul(ctx, at, bt, {
        transposeB: c.transposeB,
        broadcastB: c.broadcastB ?? false,
        variant,
      });
      const got = await y.read();
      y.destroy();
      assertClose(got, want, {
        atol: opts.tol,
        rtol: opts.tol,
        shape: [c.batch, c.M, c.N],
        label: `matmul ${variant ?? "default"} ${c.batch}x${c.M}x${c.K} @ ${c.N}` +
          `${c.transposeB ? " transposeB" : ""}${c.broadcastB ? " broadcastB" : ""}`,
      });
    }
  } finally {
    at.destroy();
    bt.destroy();
  }
}
