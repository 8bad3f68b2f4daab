/**
 * The K-contiguous-staging GEMMs (gemm_kstage.ts: "tile64k", "tile64p" with prefetch) against
 * the other shared-memory tiles and the CPU adapters' default register block, at sam-mini's
 * encoder shapes (width 128, MLP 512; windowed blocks run 25 windows x 196 = 4900 rows, the
 * global ones 4096; patch embed K = 16 x 16 x 3), plus its window attention's attn @ v as a
 * [K, N] product. Variants run back to back per shape, so a shared machine's load falls on
 * all alike. `deno bench --allow-all bench/kernels/gemm_kstage_bench.ts`
 */
import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { type Activation, linear } from "../../src/kernels/linear.ts";
import { matmul } from "../../src/kernels/matmul.ts";
import { benchKernel } from "../util.ts";

const ctx = await getContext();
const VARIANTS = ["tile64", "tile64k", "tile64p", "tile128", "tile128k", "tile128p", "reg_m8x8w8"];

const linears: { label: string; M: number; K: number; N: number; act: Activation; res: boolean }[] =
  [
    { label: "qkv", M: 4900, K: 128, N: 384, act: "none", res: false },
    { label: "proj+res", M: 4900, K: 128, N: 128, act: "none", res: true },
    { label: "mlp.lin1+gelu", M: 4096, K: 128, N: 512, act: "gelu", res: false },
    { label: "mlp.lin2+res", M: 4096, K: 512, N: 128, act: "none", res: true },
    { label: "patch_embed", M: 4096, K: 768, N: 128, act: "none", res: false },
  ];

for (const c of linears) {
  const x = tensorFrom(ctx, new Float32Array(c.M * c.K).fill(0.5), [c.M, c.K]);
  const w = tensorFrom(ctx, new Float32Array(c.N * c.K).fill(0.01), [c.N, c.K]);
  const bias = tensorFrom(ctx, new Float32Array(c.N).fill(0.1), [c.N]);
  const residual = c.res
    ? tensorFrom(ctx, new Float32Array(c.M * c.N).fill(1), [c.M, c.N])
    : undefined;
  const out = tensorFrom(ctx, new Float32Array(c.M * c.N), [c.M, c.N]);
  for (const variant of VARIANTS) {
    benchKernel({
      name: `sam-mini linear ${variant} ${c.label} ${c.M}x${c.K} -> ${c.N}`,
      group: c.label,
      ctx,
      flops: 2 * c.M * c.N * c.K,
      n: 2,
      warmup: 1,
      run: () => linear(ctx, x, w, bias, { activation: c.act, residual, out, variant }),
    });
  }
}

// Window attention's attn @ v, 2 heads x 25 windows: [50, 196, 196] @ [50, 196, 64] ("kn").
const [batch, M, K, N] = [50, 196, 196, 64];
const a = tensorFrom(ctx, new Float32Array(batch * M * K).fill(0.5), [batch, M, K]);
const b = tensorFrom(ctx, new Float32Array(batch * K * N).fill(0.01), [batch, K, N]);
const out = tensorFrom(ctx, new Float32Array(batch * M * N), [batch, M, N]);
for (const variant of VARIANTS) {
  benchKernel({
    name: `sam-mini matmul ${variant} attn@v ${batch}x${M}x${K} @ ${N}`,
    group: "attn@v",
    ctx,
    flops: 2 * batch * M * N * K,
    n: 2,
    warmup: 1,
    run: () => matmul(ctx, a, b, { out, variant }),
  });
}
