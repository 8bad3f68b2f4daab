/**
 * SAM 2.1 video memory modules on sam2-mini's real-width weights (fixture): the memory
 * encoder at 1024 px (a 1024x1024 mask and 64x64x256 features -> a 64x64x64 memory) and one
 * real memory-attention layer (d 256, 1 head of 256 through the GEMM path) of a 64x64 frame
 * over 1 and 6 memories plus pointers. The real models have 4 such layers: a tracked frame's
 * memory attention costs about 4 x the layer here. Skips when the fixture is absent.
 *
 *   deno bench -A bench/video/memory_bench.ts
 */
import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { sigmoidAffine } from "../../src/kernels/sigmoid_affine.ts";
import { loadSam2 } from "../../src/sam2/load.ts";
import { sam2HintsFromFixture } from "../../src/sam2/arch.ts";
import { inferSam2MemoryArch } from "../../src/sam2/memory_arch.ts";
import { MemoryAttention } from "../../src/sam2/memory_attention.ts";
import { MemoryEncoder } from "../../src/sam2/memory_encoder.ts";
import { isSoftwareAdapter } from "../report/measure.ts";

const ctx = await getContext();
const software = isSoftwareAdapter(ctx.gpu.description);

function find(file: string): URL | null {
  for (const root of ["../../tests/fixtures/sam2-mini/", "../../../shared/fixtures/sam2-mini/"]) {
    const url = new URL(root + file, import.meta.url);
    try {
      Deno.statSync(url);
      return url;
    } catch { /* next */ }
  }
  return null;
}

const pt = find("sam2-mini.pt"), fx = find("fixture.json");
if (!pt || !fx) {
  console.warn("SKIP memory_bench: sam2-mini fixture (sam2-mini.pt, fixture.json) not found");
} else {
  const fixture = JSON.parse(await Deno.readTextFile(fx));
  const { sd } = await loadSam2(pt, sam2HintsFromFixture(fixture.architecture));
  const arch = inferSam2MemoryArch(sd);
  const enc = new MemoryEncoder(ctx, sd, arch);
  const att = new MemoryAttention(ctx, sd, arch);
  const S = 1024, s = 64, N = s * s, C = arch.memoryEncoder.inDim, D = arch.memoryEncoder.outDim;
  const fill = (n: number, k: number) =>
    Float32Array.from({ length: n }, (_, i) => Math.sin(i * k));
  const pix = tensorFrom(ctx, fill(N * C, 0.37), [s, s, C]);
  const logits = tensorFrom(ctx, fill(S * S, 0.011), [S, S]);
  const once = (name: string, fn: () => Promise<void>) => {
    let runs = 0;
    return async (t: Deno.BenchContext) => {
      // Deno runs a bench at least 3 times; on a software adapter only the first measures
      // (its time is printed: Deno's average includes the skipped calls).
      if (software && runs++ > 0) return;
      t.start();
      const t0 = performance.now();
      await fn();
      t.end();
      console.log(`${name}: ${(performance.now() - t0).toFixed(0)} ms (${ctx.gpu.description})`);
    };
  };
  Deno.bench({
    name: "sam2-mini memory encoder, 1024 px",
    group: "sam2_video_memory",
    n: software ? 1 : 5,
    warmup: 0,
    fn: once("memory encoder", async () => {
      const mask = sigmoidAffine(ctx, logits, { mode: "sigmoid", scale: 20, bias: -10 });
      const out = enc.encode(pix, mask);
      await out.features.read(); // back on the CPU: the whole pass has run
      mask.destroy();
      out.features.destroy();
    }),
  });
  for (const memories of [1, 6]) {
    const ptrTokens = (memories + 1) * (C / D);
    const M = memories * N + ptrTokens;
    const curr = tensorFrom(ctx, fill(N * C, 0.13), [N, C]);
    const currPos = tensorFrom(ctx, fill(N * C, 0.29), [N, C]);
    const memory = tensorFrom(ctx, fill(M * D, 0.71), [M, D]);
    const memoryPos = tensorFrom(ctx, fill(M * D, 0.53), [M, D]);
    Deno.bench({
      name: `sam2-mini memory attention, 1 layer, 64x64 frame, ${memories} memories + ${
        memories + 1
      } pointers`,
      group: "sam2_video_memory",
      n: software ? 1 : 5,
      warmup: 0,
      fn: once(`memory attention layer, ${memories} memories`, async () => {
        const out = att.forward(curr, currPos, memory, memoryPos, ptrTokens);
        await out.read();
        out.destroy();
      }),
    });
  }
}
