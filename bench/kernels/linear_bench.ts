import { getContext } from "../../src/gpu/context.ts";
import { emptyTensor, tensorFrom, tensorFromF16 } from "../../src/gpu/tensor.ts";
import { type Activation, linear } from "../../src/kernels/linear.ts";
import { gemmCandidates } from "../../src/kernels/matmul.ts";
import { benchKernel } from "../util.ts";

const ctx = await getContext();
// The encoder's linears run on 4096 tokens. A software adapter (llvmpipe, ~0.1-1 GFLOP/s)
// would take minutes per ViT-H run, so there the encoder shapes run on 64 tokens (one row tile): full K
// and N, the same kernel, the throughput of the same inner loop.
const software = ctx.gpu.software;
const tokens = software ? 64 : 4096;

interface Case {
  label: string;
  M: number;
  K: number;
  N: number;
  act: Activation;
  residual: boolean;
}

const cases: Case[] = [
  { label: "ViT-B qkv", M: tokens, K: 768, N: 2304, act: "none", residual: false },
  { label: "ViT-L proj+res", M: tokens, K: 1024, N: 1024, act: "none", residual: true },
  { label: "ViT-H mlp.lin1+gelu", M: tokens, K: 1280, N: 5120, act: "gelu", residual: false },
  { label: "ViT-H mlp.lin2+res", M: tokens, K: 5120, N: 1280, act: "none", residual: true },
  { label: "decoder mlp.lin1+relu", M: 7, K: 256, N: 2048, act: "relu", residual: false },
  { label: "decoder image-token proj", M: 4096, K: 256, N: 256, act: "none", residual: false },
];

for (const c of cases) {
  const x = tensorFrom(ctx, new Float32Array(c.M * c.K).fill(0.5), [c.M, c.K]);
  const w = tensorFrom(ctx, new Float32Array(c.N * c.K).fill(0.01), [c.N, c.K]);
  const bias = tensorFrom(ctx, new Float32Array(c.N).fill(0.1), [c.N]);
  const residual = c.residual
    ? tensorFrom(ctx, new Float32Array(c.M * c.N).fill(1), [c.M, c.N])
    : undefined;
  const out = tensorFrom(ctx, new Float32Array(c.M * c.N), [c.M, c.N]);
  const flops = 2 * c.M * c.N * c.K;
  // Every named GEMM variant for this M (the default picks one per adapter; `deno task tune`
  // per shape).
  for (const variant of gemmCandidates(c.M)) {
    benchKernel({
      name: `linear ${variant} ${c.label} ${c.M}x${c.K} -> ${c.N}`,
      ctx,
      flops,
      // One or two runs where a run takes seconds (software adapters, big shapes).
      n: flops > 1e9 ? 1 : undefined,
      warmup: flops > 1e9 ? 1 : undefined,
      run: () => linear(ctx, x, w, bias, { activation: c.act, residual, out, variant }),
    });
  }
  // precision "f16" (default variant): f16 weights, and f16 out where it feeds another GEMM
  // (no residual), as the encoder runs it; against the f32 lines above.
  if (ctx.gpu.hasF16) {
    const w16 = tensorFromF16(ctx, new Float32Array(c.N * c.K).fill(0.01), [c.N, c.K]);
    const out16 = c.residual ? out : emptyTensor(ctx, [c.M, c.N], "out16", "f16");
    benchKernel({
      name: `linear f16${c.residual ? "w" : "wo"} ${c.label} ${c.M}x${c.K} -> ${c.N}`,
      ctx,
      flops,
      n: flops > 1e9 ? 1 : undefined,
      warmup: flops > 1e9 ? 1 : undefined,
      run: () => linear(ctx, x, w16, bias, { activation: c.act, residual, out: out16 }),
    });
  }
}
