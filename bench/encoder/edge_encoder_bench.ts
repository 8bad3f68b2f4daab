/**
 * Light encoders at their released shapes with random weights (speed does not depend on the
 * values): MobileSAM's TinyViT-5M and SlimSAM-77-uniform's 12-block ViT (width 168, 12 heads
 * of 14, MLP 696), both with SAM's 256-wide neck. Prints ms and GFLOP/s in official FLOPs
 * (a multiply-add = 2; matrix products and convolutions as the official code runs them, the
 * zero-padded window rows included): bench/report/flops.ts's flopsTinyVit and flopsEncoder.
 * `deno task bench:report` has the same rows beside ViT-B and onnxruntime-web.
 *
 *   deno bench -A bench/encoder/edge_encoder_bench.ts
 *
 * On a software adapter each runs once (a pass takes minutes on llvmpipe).
 */
import { getContext } from "../../src/gpu/context.ts";
import {
  randomMobileSamEncoder,
  randomSlimSam77Encoder,
  SLIMSAM_77,
  TINYVIT_5M,
} from "../report/edge_models.ts";
import { encoderInput } from "../report/cases.ts";
import type { EmbeddingEncoder } from "../report/ours.ts";
import { flopsEncoder, flopsTinyVit } from "../report/flops.ts";
import { isSoftwareAdapter } from "../report/measure.ts";

const ctx = await getContext();
const software = isSoftwareAdapter(ctx.gpu.description);

function bench(name: string, flops: number, make: () => EmbeddingEncoder) {
  let encoder: EmbeddingEncoder | null = null;
  let runs = 0;
  const input = encoderInput(1024);
  Deno.bench({
    name,
    group: "edge encoders",
    n: software ? 1 : 10,
    warmup: software ? 0 : 2,
    async fn(t) {
      // Deno calls a bench at least 3 times; on a software adapter only the first measures.
      if (software && runs++ > 0) return;
      encoder ??= make();
      t.start();
      const t0 = performance.now();
      const out = encoder.encode(input);
      await ctx.sync();
      out.destroy();
      const ms = performance.now() - t0;
      t.end();
      console.log(
        `${name}: ${ms.toFixed(0)} ms, ${(flops / 1e9).toFixed(1)} GFLOP, ` +
          `${(flops / 1e6 / ms).toFixed(2)} GFLOP/s on ${ctx.gpu.description}`,
      );
    },
  });
  addEventListener("unload", () => (encoder as EmbeddingEncoder | null)?.dispose());
}

bench(
  "MobileSAM encoder (TinyViT-5M, 1024 px)",
  flopsTinyVit(TINYVIT_5M),
  () => randomMobileSamEncoder(ctx),
);
bench(
  "SlimSAM-77 encoder (ViT 168 wide, 12 blocks, 1024 px)",
  flopsEncoder(SLIMSAM_77),
  () => randomSlimSam77Encoder(ctx),
);
