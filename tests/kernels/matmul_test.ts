import assert from "node:assert/strict";
import { assertClose, randomArray } from "../util/compare.ts";
import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { matmul } from "../../src/kernels/matmul.ts";
import { samplePairs } from "./core_ref.ts";

interface Case {
  batch: number;
  M: number;
  K: number;
  N: number;
  transposeB?: boolean;
  broadcastB?: boolean;
}

/** Element (bi, m, n) of a[bi] @ b[bi or 0] (b transposed when asked), in float64. */
function refAt(a: Float32Array, b: Float32Array, c: Case, bi: number, m: number, n: number) {
  const bb = c.broadcastB ? 0 : bi;
  let s = 0;
  for (let k = 0; k < c.K; k++) {
    const bv = c.transposeB ? b[(bb * c.N + n) * c.K + k] : b[(bb * c.K + k) * c.N + n];
    s += a[(bi * c.M + m) * c.K + k] * bv;
  }
  return s;
}

async function run(c: Case, seed: number) {
  const ctx = await getContext();
  const a = randomArray(c.batch * c.M * c.K, seed);
  const bBatch = c.broadcastB ? 1 : c.batch;
  const b = randomArray(bBatch * c.K * c.N, seed + 1, 1 / Math.sqrt(c.K));
  const bShape = c.transposeB ? [bBatch, c.N, c.K] : [bBatch, c.K, c.N];
  const y = matmul(ctx, tensorFrom(ctx, a, [c.batch, c.M, c.K]), tensorFrom(ctx, b, bShape), {
    transposeB: c.transposeB,
    broadcastB: c.broadcastB,
  });
  assert.deepEqual(y.shape, [c.batch, c.M, c.N]);
  const got = await y.read();
  y.destroy();
  return { got, ref: (bi: number, m: number, n: number) => refAt(a, b, c, bi, m, n) };
}

const label = (c: Case) =>
  `matmul ${c.batch}x${c.M}x${c.K} @ ${c.N}${c.transposeB ? " transposeB" : ""}` +
  `${c.broadcastB ? " broadcastB" : ""}`;

Deno.test("matmul: batched, transposeB, broadcastB on awkward shapes, full comparison", async () => {
  // Tolerance |gpu - ref| <= 1e-5 + 1e-5 |ref| (K <= 70, O(1) outputs).
  const cases: Case[] = [
    { batch: 3, M: 5, K: 7, N: 9 }, // scalar loads
    { batch: 2, M: 65, K: 32, N: 68 }, // vec4 loads, ragged tiles
    { batch: 2, M: 70, K: 33, N: 17, transposeB: true },
    { batch: 2, M: 3, K: 64, N: 65, transposeB: true },
    { batch: 3, M: 4, K: 2, N: 66, broadcastB: true }, // head dim 2
    { batch: 2, M: 9, K: 1, N: 1, transposeB: true, broadcastB: true },
    { batch: 2, M: 530, K: 12, N: 36, transposeB: true }, // 128x64 tile
    { batch: 2, M: 513, K: 5, N: 7 },
  ];
  for (const [i, c] of cases.entries()) {
    const { got, ref } = await run(c, 10 * i + 1);
    const want = new Float64Array(got.length);
    for (let bi = 0; bi < c.batch; bi++) {
      for (let m = 0; m < c.M; m++) {
        for (let n = 0; n < c.N; n++) want[(bi * c.M + m) * c.N + n] = ref(bi, m, n);
      }
    }
    assertClose(got, want, { atol: 1e-5, rtol: 1e-5, shape: [c.batch, c.M, c.N], label: label(c) });
  }
});

Deno.test("matmul: hypernetwork masks (B,4,32)@(1,32,65536) broadcast, sampled", async () => {
  // sam-tiny/ViT decoders' mask product at the real 256x256 low-res size, C = 32.
  // Tolerance |gpu - ref| <= 1e-5 + 1e-5 |ref|.
  const c: Case = { batch: 2, M: 4, K: 32, N: 65536, broadcastB: true };
  const { got, ref } = await run(c, 77);
  const pairs = samplePairs(c.batch * c.M, c.N, 2000, 5);
  assertClose(
    pairs.map(([r, n]) => got[r * c.N + n]),
    pairs.map(([r, n]) => ref(Math.floor(r / c.M), r % c.M, n)),
    { atol: 1e-5, rtol: 1e-5, label: label(c) },
  );
});

Deno.test("matmul: 3-D grid of tiles x batch, and refusals", async () => {
  const ctx = await getContext();
  // 5 batches x 3 row tiles x 4 column tiles: every grid dimension above 1.
  // Tolerance |gpu - ref| <= 1e-5 + 1e-5 |ref| (sampled).
  const c: Case = { batch: 5, M: 130, K: 20, N: 200 };
  const { got, ref } = await run(c, 99);
  const pairs = samplePairs(c.batch * c.M, c.N, 2000, 9);
  assertClose(
    pairs.map(([r, n]) => got[r * c.N + n]),
    pairs.map(([r, n]) => ref(Math.floor(r / c.M), r % c.M, n)),
    { atol: 1e-5, rtol: 1e-5, label: label(c) },
  );

  const t = (shape: number[]) =>
    tensorFrom(ctx, new Float32Array(shape.reduce((p, q) => p * q)), shape);
  assert.throws(() => matmul(ctx, t([2, 3, 4]), t([2, 5, 6])), /inner dims differ/);
  assert.throws(() => matmul(ctx, t([2, 3, 4]), t([3, 4, 6])), /batch 3, need 2/);
  assert.throws(() => matmul(ctx, t([2, 3, 4]), t([2, 4, 6]), { broadcastB: true }), /need 1/);
  assert.throws(() => matmul(ctx, t([4]), t([4, 1])), /rank >= 2/);
  assert.throws(
    () => matmul(ctx, t([70000, 1, 1]), t([1, 1, 1]), { broadcastB: true }),
    /batch 70000 is over 65535/,
  );
});
