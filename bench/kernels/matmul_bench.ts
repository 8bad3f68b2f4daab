import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { matmul } from "../../src/kernels/matmul.ts";
import { benchKernel } from "../util.ts";

const ctx = await getContext();

function bench(
  label: string,
  [batch, M, K, N]: number[],
  opts: { transposeB?: boolean; broadcastB?: boolean },
) {
  const bBatch = opts.broadcastB ? 1 : batch;
  const a = tensorFrom(ctx, new Float32Array(batch * M * K).fill(0.5), [batch, M, K]);
  const bShape = opts.transposeB ? [bBatch, N, K] : [bBatch, K, N];
  const b = tensorFrom(ctx, new Float32Array(bBatch * K * N).fill(0.01), bShape);
  const out = tensorFrom(ctx, new Float32Array(batch * M * N), [batch, M, N]);
  benchKernel({
    name: `matmul ${label} ${batch}x${M}x${K} @ ${N}`,
    ctx,
    flops: 2 * batch * M * N * K,
    run: () => matmul(ctx, a, b, { ...opts, out }),
  });
}

// The decoder's hypernetwork masks for 4 prompts: (4, 4, 32) @ (1, 32, 256*256), shared B.
bench("hypernetwork masks broadcastB", [4, 4, 32, 65536], { broadcastB: true });
// Batched (heads) products at decoder attention size: 8 x (256 x 32) @ (32 x 256), both forms.
bench("batched", [8, 256, 32, 256], {});
bench("batched transposeB", [8, 256, 32, 256], { transposeB: true });
