/**
 * Fused attention at SAM's shapes: ViT-B/L/H windowed (25 windows of 14x14 on the 64x64 grid
 * padded to 70x70) and global (4096 tokens) blocks with rel-pos bias, the decoder's
 * two-way-transformer attentions (7 prompt tokens <-> 4096 image tokens, 1 and 64 prompts),
 * and the rel-pos factors. q, k, v are views into one fused qkv buffer, as in the encoder.
 *
 * On a CPU adapter (llvmpipe, ~0.1-0.5 GFLOP/s) the encoder cases run a subset of the heads
 * (named in the case): heads are independent workgroups, so GFLOP/s is unchanged and a run
 * takes seconds instead of minutes. Run there with `--filter "gpu time"` for one timed run
 * per case.
 */
import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import {
  attention,
  ATTENTION_CANDIDATES,
  type AttentionDims,
} from "../../src/kernels/attention.ts";
import { relPosBias } from "../../src/kernels/rel_pos.ts";
import { benchKernel } from "../util.ts";

const ctx = await getContext();
const cpuAdapter = ctx.gpu.software;

function fill(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sin(i * 0.37 + seed) * 0.5;
  return a;
}

/** An encoder attention: fused qkv [batch, n, 3C] with C = heads * headDim, rel pos on a
 * side x side grid. */
function encoder(
  label: string,
  batch: number,
  allHeads: number,
  headDim: number,
  side: number,
  cpuHeads: number,
) {
  const heads = cpuAdapter ? cpuHeads : allHeads;
  const n = side * side, C = heads * headDim;
  const qkv = tensorFrom(ctx, fill(batch * n * 3 * C, 1), [batch, n, 3 * C]);
  const dims: AttentionDims = { batch, heads, headDim, nq: n, nk: n };
  const view = (part: number) => ({ tensor: qkv, offset: part * C, rowStride: 3 * C });
  const rh = tensorFrom(ctx, fill(side * side * headDim, 2), [side, side, headDim]);
  const rw = tensorFrom(ctx, fill(side * side * headDim, 3), [side, side, headDim]);
  const relPos = relPosBias(ctx, view(0), dims, side, side, rh, rw, side, side);
  const out = tensorFrom(ctx, new Float32Array(batch * n * C), [batch, n, C]);
  const headsNote = heads === allHeads ? `${heads} heads` : `${heads} of ${allHeads} heads`;
  // Every named variant (the default picks one per adapter; `deno task tune` per shape).
  for (const variant of ATTENTION_CANDIDATES) {
    benchKernel({
      name:
        `attention ${variant} ${label} ${batch}x${n} tokens, ${headsNote} x ${headDim}, rel pos`,
      group: "encoder",
      ctx,
      flops: 4 * batch * heads * n * n * headDim,
      run: () => attention(ctx, view(0), view(1), view(2), dims, { relPos, out, variant }),
    });
  }
  benchKernel({
    name: `relPosBias ${label} ${batch}x${n} tokens, ${headsNote} x ${headDim}`,
    group: "rel pos",
    ctx,
    flops: 2 * batch * heads * n * 2 * side * headDim,
    run: (() => {
      // relPosBias allocates relH / relW: free the previous run's (synced by then).
      let last: ReturnType<typeof relPosBias> | null = null;
      return () => {
        last?.relH.destroy();
        last?.relW.destroy();
        last = relPosBias(ctx, view(0), dims, side, side, rh, rw, side, side);
      };
    })(),
  });
}

/** A decoder attention: q [batch, nq, 256 or 128] from a linear, k and v likewise. */
function decoder(label: string, batch: number, headDim: number, nq: number, nk: number) {
  const heads = 8, C = heads * headDim;
  const q = tensorFrom(ctx, fill(batch * nq * C, 4), [batch, nq, C]);
  const k = tensorFrom(ctx, fill(batch * nk * C, 5), [batch, nk, C]);
  const v = tensorFrom(ctx, fill(batch * nk * C, 6), [batch, nk, C]);
  const out = tensorFrom(ctx, new Float32Array(batch * nq * C), [batch, nq, C]);
  const view = (t: typeof q) => ({ tensor: t, offset: 0, rowStride: C });
  benchKernel({
    name: `attention decoder ${label} batch ${batch}: ${nq} -> ${nk} tokens, 8 x ${headDim}`,
    group: "decoder",
    ctx,
    flops: 4 * batch * heads * nq * nk * headDim,
    run: () =>
      attention(ctx, view(q), view(k), view(v), { batch, heads, headDim, nq, nk }, {
        scale: 1 / Math.sqrt(headDim),
        out,
      }),
  });
}

// ViT windowed blocks: 25 windows x 196 tokens.
encoder("ViT-B windowed", 25, 12, 64, 14, 2);
encoder("ViT-L windowed", 25, 16, 64, 14, 2);
encoder("ViT-H windowed", 25, 16, 80, 14, 2);
// ViT global blocks: 4096 tokens.
encoder("ViT-B global", 1, 12, 64, 64, 1);
encoder("ViT-L global", 1, 16, 64, 64, 1);
encoder("ViT-H global", 1, 16, 80, 64, 1);
// Decoder (internal dim 256, 8 heads; cross attention downsampled to 128): token self
// attention, token-to-image, image-to-token; one prompt and a batch of 64 boxes.
for (const batch of [1, 64]) {
  decoder("token self", batch, 32, 7, 7);
  decoder("token-to-image", batch, 16, 7, 4096);
  decoder("image-to-token", batch, 16, 4096, 7);
}
