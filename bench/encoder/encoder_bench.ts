/**
 * Image encoder speed: sam-mini (1024 px input, the real models' token grid and windows,
 * 128 wide, 4 blocks) on any adapter; ViT-B / L / H shapes with random weights only where the
 * adapter is not a software one (llvmpipe would need many minutes each). Prints ms and
 * GFLOP/s in official FLOPs (flopsEncoder: matrix products as the official code runs them).
 * Each model twice where the adapter has shader-f16: precision f32, and f16 (GEMM weights and
 * the MLP hidden layer stored as float16, f32 accumulation; src/precision.ts), so the two
 * lines of one run compare them.
 *
 *   deno bench -A bench/encoder/encoder_bench.ts
 */
import { ImageEncoder } from "../../src/encoder/image_encoder.ts";
import { getContext } from "../../src/gpu/context.ts";
import { expectedShapes, OFFICIAL_ARCHS } from "../../src/weights/arch.ts";
import { loadSam } from "../../src/weights/load.ts";
import type { SamArch, StateDict } from "../../src/weights/types.ts";
import type { Precision } from "../../src/precision.ts";
import { flopsEncoder } from "../report/flops.ts";
import { isSoftwareAdapter } from "../report/measure.ts";

const ctx = await getContext();
const adapter = ctx.gpu.description;
const software = isSoftwareAdapter(adapter);

/** A deterministic normalised (3, S, S) input. */
function encoderInput(size: number): Float32Array {
  const a = new Float32Array(3 * size * size);
  for (let i = 0; i < a.length; i++) a[i] = ((i * 2654435761) % 1000) / 500 - 1;
  return a;
}

/** Random encoder weights in the official shapes (uniform, small enough to stay finite). */
function randomEncoderWeights(arch: SamArch): StateDict {
  const sd: StateDict = new Map();
  let s = 12345;
  for (const [name, shape] of expectedShapes(arch)) {
    if (!name.startsWith("image_encoder.")) continue;
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    const scale = name.endsWith("norm1.weight") || name.endsWith("norm2.weight") ? 1 : 0.02;
    for (let i = 0; i < data.length; i++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      data[i] = ((s >>> 8) / 2 ** 24 - 0.5) * 2 * scale;
    }
    sd.set(name, { name, dtype: "float32", shape, bytes: new Uint8Array(data.buffer) });
  }
  return sd;
}

function benchEncoder(
  name: string,
  arch: SamArch,
  load: () => Promise<StateDict>,
  n: number,
  precision: Precision = "f32",
) {
  let encoder: ImageEncoder | null = null;
  let runs = 0;
  const input = encoderInput(arch.imgSize);
  const flops = flopsEncoder(arch);
  Deno.bench({
    name,
    group: "encoder",
    n,
    warmup: 0,
    async fn(t) {
      // Deno runs a bench function at least 3 times whatever `n` says; on a software adapter
      // one pass takes minutes, so only the first call measures (its printed line is the
      // result, Deno's table is not).
      if (software && runs++ > 0) return;
      if (!encoder) {
        encoder = ImageEncoder.fromStateDict(ctx, await load(), arch, precision);
        // First pass outside the timing (pipeline compilation, buffer allocation), except on
        // a software adapter, where one pass takes minutes and compilation is a rounding error.
        if (!software) {
          const first = encoder.encode(input);
          await ctx.sync();
          first.destroy();
        }
      }
      t.start();
      const t0 = performance.now();
      const out = encoder.encode(input);
      await ctx.read(out.buffer); // the embedding back on the CPU, as a caller would
      const ms = performance.now() - t0;
      t.end();
      out.destroy();
      console.log(
        `${name}: ${ms.toFixed(0)} ms, ${(flops / ms / 1e6).toFixed(2)} GFLOP/s ` +
          `(${(flops / 1e9).toFixed(1)} GFLOP, ${adapter})`,
      );
    },
  });
  addEventListener("unload", () => (encoder as ImageEncoder | null)?.dispose());
}

/** f32, and f16 where the adapter has shader-f16 (said once where it has not). */
function precisions(): Precision[] {
  if (ctx.gpu.hasF16) return ["f32", "f16"];
  console.warn(`SKIP: encoder bench f16: ${adapter} has no shader-f16`);
  return ["f32"];
}

const miniDir = new URL("../../../shared/fixtures/sam-mini/", import.meta.url);
let haveMini = true;
try {
  Deno.statSync(new URL("sam-mini.pth", miniDir));
} catch {
  haveMini = false;
  console.warn("SKIP: encoder bench sam-mini: ../shared/fixtures/sam-mini is not present");
}
if (haveMini) {
  const { sd, arch } = await loadSam(new URL("sam-mini.pth", miniDir));
  for (const precision of precisions()) {
    benchEncoder(
      `encoder sam-mini (1024 px, 128 wide, 4 blocks)${precision === "f16" ? " f16" : ""}`,
      arch,
      () => Promise.resolve(sd),
      1,
      precision,
    );
  }
}

if (software) {
  console.warn(`SKIP: encoder bench ViT-B/L/H: software adapter (${adapter})`);
} else {
  for (const id of ["vit_b", "vit_l", "vit_h"] as const) {
    const arch = OFFICIAL_ARCHS[id];
    for (const precision of precisions()) {
      benchEncoder(
        `encoder ${id} shapes (random weights)${precision === "f16" ? " f16" : ""}`,
        arch,
        () => Promise.resolve(randomEncoderWeights(arch)),
        3,
        precision,
      );
    }
  }
}
