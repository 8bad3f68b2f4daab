/**
 * SAM 2.1 image encoder speed (Hiera trunk + FPN neck + the predictor's conv_s0 / conv_s1):
 * sam2-mini (1024 px, the real grids and windows, 8 wide) on any adapter; Hiera-T and
 * Hiera-B+ shapes (officialSam2Arch, random weights) only where the adapter is not a software
 * one (llvmpipe would need minutes each). Prints ms and GFLOP/s in official FLOPs
 * (flopsSam2Encoder in sam2_flops.ts: the matrix products as the official code runs them).
 *
 *   deno bench -A bench/encoder/sam2_encoder_bench.ts
 */
import { getContext } from "../../src/gpu/context.ts";
import { officialSam2Arch, type Sam2Arch, sam2HintsFromFixture } from "../../src/sam2/arch.ts";
import { disposeSam2Features, Sam2ImageEncoder } from "../../src/sam2/image_encoder.ts";
import { loadSam2 } from "../../src/sam2/load.ts";
import type { StateDict } from "../../src/weights/types.ts";
import { isSoftwareAdapter } from "../report/measure.ts";
import { randomSam2EncoderWeights } from "../report/ours.ts";
import { flopsSam2Encoder } from "./sam2_flops.ts";

const ctx = await getContext();
const adapter = ctx.gpu.description;
const software = isSoftwareAdapter(adapter);

function input(size: number): Float32Array {
  const a = new Float32Array(3 * size * size);
  for (let i = 0; i < a.length; i++) a[i] = ((i * 2654435761) % 1000) / 500 - 1;
  return a;
}

function benchSam2Encoder(name: string, arch: Sam2Arch, load: () => Promise<StateDict>) {
  let encoder: Sam2ImageEncoder | null = null;
  let runs = 0;
  const x = input(arch.imgSize);
  const flops = flopsSam2Encoder(arch);
  Deno.bench({
    name,
    group: "sam2_encoder",
    n: software ? 1 : 3,
    warmup: 0,
    async fn(t) {
      // Deno calls a bench at least 3 times; on a software adapter only the first measures.
      if (software && runs++ > 0) return;
      if (!encoder) {
        encoder = Sam2ImageEncoder.fromStateDict(ctx, await load(), arch);
        if (!software) {
          disposeSam2Features(encoder.encode(x)); // compile pipelines, allocate buffers
          await ctx.sync();
        }
      }
      t.start();
      const t0 = performance.now();
      const f = encoder.encode(x);
      await f.imageEmbed.read(); // features back on the CPU: the whole pass has run
      const ms = performance.now() - t0;
      t.end();
      disposeSam2Features(f);
      console.log(
        `${name}: ${ms.toFixed(0)} ms, ${(flops / ms / 1e6).toFixed(2)} GFLOP/s ` +
          `(${(flops / 1e9).toFixed(1)} GFLOP, ${adapter})`,
      );
    },
  });
  addEventListener("unload", () => (encoder as Sam2ImageEncoder | null)?.dispose());
}

const miniDir = new URL("../../../shared/fixtures/sam2-mini/", import.meta.url);
let fixture: { architecture: Parameters<typeof sam2HintsFromFixture>[0] } | null = null;
try {
  fixture = JSON.parse(Deno.readTextFileSync(new URL("fixture.json", miniDir)));
} catch {
  console.warn("SKIP: sam2 encoder bench sam2-mini: ../shared/fixtures/sam2-mini is not present");
}
if (fixture) {
  const { sd, arch } = await loadSam2(
    new URL("sam2-mini.pt", miniDir),
    sam2HintsFromFixture(fixture.architecture),
  );
  benchSam2Encoder(
    "sam2 encoder sam2-mini (1024 px, Hiera 8 wide)",
    arch,
    () => Promise.resolve(sd),
  );
}

if (software) {
  console.warn(`SKIP: sam2 encoder bench Hiera-T/B+: software adapter (${adapter})`);
} else {
  for (const id of ["hiera_t", "hiera_b_plus"] as const) {
    const arch = officialSam2Arch(id);
    benchSam2Encoder(
      `sam2.1 encoder ${id} shapes (random weights)`,
      arch,
      () => Promise.resolve(randomSam2EncoderWeights(arch)),
    );
  }
}
