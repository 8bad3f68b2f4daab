/**
 * Ours: how our modules are reached (imported by path, so a group whose module has not landed
 * says so instead of failing), how a case is timed (wall time around the readback, GPU time
 * from timestamp queries), random weights at official shapes, and one measuring function per
 * kind of case. Each returns a Measure; none decides whether a case runs (the groups do).
 */
import { disposeSam2Features, Sam2ImageEncoder } from "../../src/sam2/image_encoder.ts";
import type { Sam2Arch } from "../../src/sam2/arch.ts";
import { expectedSam2EncoderShapes } from "../../src/sam2/load.ts";
import type { GpuContext } from "../../src/gpu/context.ts";
import type { Tensor } from "../../src/gpu/tensor.ts";
import type { Prompt, RgbImage } from "../../src/types.ts";
import { expectedShapes } from "../../src/weights/arch.ts";
import type { HostTensor, SamArch, StateDict } from "../../src/weights/types.ts";
import { median } from "../peer/ort_peer.ts";
import { encoderInput } from "./cases.ts";
import { firstLine, type Measure } from "./measure.ts";

/** The API of src/encoder/image_encoder.ts this script uses. */
export interface EncoderModule {
  ImageEncoder: {
    fromStateDict(ctx: GpuContext, sd: StateDict, arch: SamArch): {
      encode(input: Float32Array): Tensor;
      dispose(): void;
    };
  };
}

/** The API of src/decoder/mask_decoder.ts this script uses. */
export interface DecoderModule {
  SamDecoder: {
    create(ctx: GpuContext, sd: StateDict, arch: SamArch): {
      predict(embedding: Tensor, prompts: readonly Prompt[], opts: {
        originalSize: readonly [number, number];
        output?: "masks" | "logits" | "both" | "none";
        allTokens?: boolean;
      }): Promise<unknown[]>;
      dispose(): void;
    };
  };
}

/** The API of src/amg (generator, model-backed mask source, SamModelBackend) this script uses. */
export interface AmgModules {
  generator: {
    AutomaticMaskGenerator: {
      fromOfficialParams(p: Record<string, unknown>): {
        generate(image: RgbImage, source: unknown): Promise<unknown[]>;
      };
    };
  };
  source: { ModelMaskSource: new (backend: unknown) => unknown };
  backend: {
    SamModelBackend: {
      fromStateDict(ctx: GpuContext, sd: StateDict, arch: SamArch, source?: string): {
        dispose(): void;
      };
    };
  };
}

/** Imports one of our modules by its path in the repository ("src/..."), or returns why it
 * cannot be used. */
export async function importOurs<T>(path: string, exportsNeeded: string[]): Promise<T | string> {
  const url = new URL(`../../${path}`, import.meta.url);
  try {
    Deno.statSync(url);
  } catch {
    return `${path} has not landed`;
  }
  try {
    const mod = await import(url.href) as Record<string, unknown>;
    const missing = exportsNeeded.filter((e) => !(e in mod));
    if (missing.length) {
      return `${path} does not export ${missing.join(", ")}`;
    }
    return mod as T;
  } catch (e) {
    return `${path} failed to load: ${firstLine(e)}`;
  }
}

/**
 * Times `work` (which records GPU work and reads its result back) warm-up + runs times: wall
 * ms each, and GPU ms from timestamp queries where the adapter has them.
 */
export async function timeOurs(
  ctx: GpuContext,
  work: () => Promise<void>,
  warmup: number,
  runs: number,
  prompts = 1,
): Promise<Measure> {
  const warmupMs: number[] = [];
  for (let i = 0; i < warmup; i++) {
    const t = performance.now();
    await work();
    warmupMs.push(performance.now() - t);
  }
  const runsMs: number[] = [];
  const gpu: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    if (ctx.gpu.hasTimestamps) {
      const g = await ctx.timeGpu(work);
      if (g !== null) gpu.push(g);
    } else {
      await work();
    }
    runsMs.push(performance.now() - t);
  }
  const ms = median(runsMs);
  return {
    status: "ok",
    ms,
    runsMs,
    warmupMs,
    gpuMs: gpu.length ? median(gpu) : null,
    ...(prompts > 1 ? { perPromptMs: ms / prompts } : {}),
    timing: "wall+readback",
  };
}

export async function importAmg(): Promise<AmgModules | string> {
  const generator = await importOurs<AmgModules["generator"]>(
    "src/amg/automatic_mask_generator.ts",
    ["AutomaticMaskGenerator"],
  );
  if (typeof generator === "string") return generator;
  const source = await importOurs<AmgModules["source"]>("src/amg/model_source.ts", [
    "ModelMaskSource",
  ]);
  if (typeof source === "string") return source;
  const backend = await importOurs<AmgModules["backend"]>("src/amg/sam_backend.ts", [
    "SamModelBackend",
  ]);
  if (typeof backend === "string") return backend;
  return { generator, source, backend };
}

/** RGB bytes (alpha dropped). */
function toRgb(image: RgbImage): RgbImage {
  if (image.channels === 3) return image;
  const n = image.width * image.height, out = new Uint8Array(3 * n);
  for (let i = 0; i < n; i++) out.set(image.data.subarray(4 * i, 4 * i + 3), 3 * i);
  return { width: image.width, height: image.height, channels: 3, data: out };
}

/**
 * Random weights in the official layout for `arch`, the tensors whose names pass `keep`:
 * U(-1, 1) / sqrt(fan in), norms 1 and 0. Timing only: what they compute means nothing.
 */
export function randomStateDict(
  arch: SamArch,
  keep: (name: string) => boolean,
  seed = 1,
): StateDict {
  const sd: StateDict = new Map();
  let x = seed >>> 0;
  for (const [name, shape] of expectedShapes(arch)) {
    if (!keep(name)) continue;
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const isNorm = /norm|neck\.[13]\.|output_upscaling\.1\./.test(name) && shape.length === 1;
    if (isNorm) data.fill(name.endsWith(".weight") ? 1 : 0);
    else {
      const scale = 1 / Math.sqrt(shape.length > 1 ? n / shape[0] : shape[0]);
      for (let i = 0; i < n; i++) {
        x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
        data[i] = (x / 2 ** 31 - 1) * scale;
      }
    }
    const t: HostTensor = { name, dtype: "float32", shape, bytes: new Uint8Array(data.buffer) };
    sd.set(name, t);
  }
  return sd;
}

/** Ours: the image encoder on a normalised input, embedding read back. */
export async function measureOursEncoder(
  ctx: GpuContext,
  mod: EncoderModule,
  sd: StateDict,
  arch: SamArch,
  warmup: number,
  runs: number,
): Promise<Measure> {
  return await measureOursImageEncoder(
    ctx,
    mod.ImageEncoder.fromStateDict(ctx, sd, arch),
    arch.imgSize,
    warmup,
    runs,
  );
}

/** An image encoder that returns one (1, D, s, s) embedding: SAM's ViT, MobileSAM's TinyViT. */
export interface EmbeddingEncoder {
  encode(input: Float32Array): Tensor;
  dispose(): void;
}

/** Ours: `enc` on a normalised (3, size, size) input, embedding read back; disposes `enc`. */
export async function measureOursImageEncoder(
  ctx: GpuContext,
  enc: EmbeddingEncoder,
  size: number,
  warmup: number,
  runs: number,
): Promise<Measure> {
  try {
    const input = encoderInput(size);
    const work = async () => {
      const emb = enc.encode(input);
      await ctx.read(emb.buffer); // (1, D, s, s) back on the CPU, as the peer's output
      emb.destroy();
    };
    return await timeOurs(ctx, work, warmup, runs);
  } finally {
    enc.dispose();
  }
}

/** Ours: the SAM 2.1 image encoder on a normalised input, its three features read back. */
export async function measureOursSam2Encoder(
  ctx: GpuContext,
  sd: StateDict,
  arch: Sam2Arch,
  warmup: number,
  runs: number,
): Promise<Measure> {
  const enc = Sam2ImageEncoder.fromStateDict(ctx, sd, arch);
  try {
    const input = encoderInput(arch.imgSize);
    const work = async () => {
      const f = enc.encode(input);
      for (const t of [f.imageEmbed, f.highRes0, f.highRes1]) await ctx.read(t.buffer);
      disposeSam2Features(f);
    };
    return await timeOurs(ctx, work, warmup, runs);
  } finally {
    enc.dispose();
  }
}

/** Random weights in the official shapes of a SAM 2 encoder (LayerNorms 1 / 0). */
export function randomSam2EncoderWeights(arch: Sam2Arch): StateDict {
  const sd: StateDict = new Map();
  let x = 7;
  for (const [name, shape] of expectedSam2EncoderShapes(arch)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (/norm[12]\./.test(name)) data.fill(name.endsWith(".weight") ? 1 : 0);
    else {
      const scale = 1 / Math.sqrt(shape.length > 1 ? n / shape[0] : shape[0]);
      for (let i = 0; i < n; i++) {
        x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
        data[i] = (x / 2 ** 31 - 1) * scale;
      }
    }
    sd.set(name, { name, dtype: "float32", shape, bytes: new Uint8Array(data.buffer) });
  }
  return sd;
}

/**
 * Ours: one SamDecoder.predict call with `prompts` on a given embedding, all 4 mask tokens (as
 * the official export); upscaled: float logits at `origHw` read back; else low-res only.
 */
export async function measureOursDecoder(
  ctx: GpuContext,
  decoder: ReturnType<DecoderModule["SamDecoder"]["create"]>,
  embedding: Tensor,
  origHw: [number, number],
  prompts: Prompt[],
  upscaled: boolean,
  warmup: number,
  runs: number,
): Promise<Measure> {
  const work = async () => {
    await decoder.predict(embedding, prompts, {
      originalSize: origHw,
      output: upscaled ? "logits" : "none",
      allTokens: true,
    });
  };
  return await timeOurs(ctx, work, warmup, runs, prompts.length);
}

/**
 * Ours: the automatic mask generator over the model (encoder + decoder + GPU postprocess and
 * statistics + NMS + RLE) on `image`, pointsPerSide^2 points, thresholds lowered so that
 * random-weight masks survive as a trained model's do.
 */
export async function measureOursAmg(
  ctx: GpuContext,
  mods: AmgModules,
  sd: StateDict,
  arch: SamArch,
  image: RgbImage,
  pointsPerSide: number,
  warmup: number,
  runs: number,
): Promise<Measure> {
  const backend = mods.backend.SamModelBackend.fromStateDict(ctx, sd, arch, "benchmark");
  try {
    const rgb = toRgb(image);
    const generator = mods.generator.AutomaticMaskGenerator.fromOfficialParams({
      points_per_side: pointsPerSide,
      pred_iou_thresh: 0,
      stability_score_thresh: 0.3,
    });
    let masks = 0;
    const m = await timeOurs(
      ctx,
      async () => {
        const source = new mods.source.ModelMaskSource(backend);
        masks = (await generator.generate(rgb, source)).length;
      },
      warmup,
      runs,
    );
    if (m.status === "ok") m.detail = { masks };
    return m;
  } finally {
    backend.dispose();
  }
}
