/**
 * Automatic mask generation end to end (encoder, decoder batches, GPU postprocess and
 * statistics, kept-mask read-back, NMS, RLE):
 *
 * - sam-mini (../shared/fixtures/sam-mini: real-size decoder, small encoder) on its 900x600
 *   photo with a coarse grid. On llvmpipe (2 shared cores) its encoder alone took about 4 min
 *   and the real-size decoder about 25 s a point, so the default grid is 1 point (3 masks):
 *   about 5 min there. WGSAM_AMG_BENCH_POINTS sets the points per side (0: skip this case).
 * - Where the adapter is not llvmpipe: ViT-B shapes with random weights (timing only; the
 *   masks mean nothing) on the 1800x1200 truck photo with the official default 32 x 32 grid.
 *
 * Those runs take minutes on a software adapter, so each is timed once, at load, and prints
 * where the time went. Deno.bench then samples what the generator adds per point batch on
 * top of the model: ModelMaskSource's GPU postprocess to crop size, mask_stats and the
 * packed read-back of the kept masks (64 points x 3 masks on a 900x600 crop, the decoder's
 * low-res logits given).
 */
import { sharedFixture } from "../../tests/util/fixtures.ts";
import { AutomaticMaskGenerator } from "../../src/amg/automatic_mask_generator.ts";
import { ModelMaskSource, type SamGpuBackend } from "../../src/amg/model_source.ts";
import { SamModelBackend } from "../../src/amg/sam_backend.ts";
import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { readImageFile } from "../../src/image.ts";
import { expectedShapes, OFFICIAL_ARCHS } from "../../src/weights/arch.ts";
import { loadSam } from "../../src/weights/load.ts";
import type { HostTensor, StateDict } from "../../src/weights/types.ts";

const ctx = await getContext();
const adapter = ctx.gpu.description;
const software = ctx.gpu.software;

/** Runs the generator once, timing the encoder, the decoder and the rest. */
async function timedAmg(
  label: string,
  backend: SamModelBackend,
  image: { width: number; height: number; data: Uint8Array },
  params: Record<string, unknown>,
) {
  let encodeMs = 0, decodeMs = 0, points = 0;
  const setImage = backend.setImage.bind(backend);
  const decodePoints = backend.decodePoints.bind(backend);
  backend.setImage = async (im) => {
    const t = performance.now();
    await setImage(im);
    await backend.ctx.sync();
    encodeMs += performance.now() - t;
  };
  backend.decodePoints = async (p, n) => {
    const t = performance.now();
    const out = await decodePoints(p, n);
    decodeMs += performance.now() - t;
    points += n;
    return out;
  };
  const generator = AutomaticMaskGenerator.fromOfficialParams(params);
  const t0 = performance.now();
  const records = await generator.generate(image, new ModelMaskSource(backend));
  const total = performance.now() - t0;
  console.log(
    `${label} [${adapter}]: ${records.length} masks from ${points} points in ` +
      `${(total / 1000).toFixed(1)} s (encoder ${(encodeMs / 1000).toFixed(1)} s, decoder ` +
      `${(decodeMs / 1000).toFixed(1)} s, postprocess + statistics + NMS + RLE ` +
      `${((total - encodeMs - decodeMs) / 1000).toFixed(1)} s)`,
  );
}

function rgb(image: { width: number; height: number; channels: number; data: Uint8Array }) {
  if (image.channels === 3) return image;
  const n = image.width * image.height, out = new Uint8Array(3 * n);
  for (let i = 0; i < n; i++) out.set(image.data.subarray(4 * i, 4 * i + 3), 3 * i);
  return { ...image, data: out };
}

/** Random float32 weights in the official shapes: U(-1, 1) / sqrt(fan in); norms 1 and 0. */
function randomStateDict(shapes: Map<string, number[]>, seed: number): StateDict {
  let s = seed >>> 0;
  const sd: StateDict = new Map();
  for (const [name, shape] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const isNorm = /norm|neck\.[13]\.|output_upscaling\.1\./.test(name) && shape.length === 1;
    if (isNorm) data.fill(name.endsWith(".weight") ? 1 : 0);
    else {
      const fanIn = shape.length > 1 ? n / shape[0] : shape[0];
      const scale = 1 / Math.sqrt(fanIn);
      for (let i = 0; i < n; i++) {
        s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
        data[i] = (s / 2 ** 31 - 1) * scale;
      }
    }
    const tensor: HostTensor = {
      name,
      dtype: "float32",
      shape,
      bytes: new Uint8Array(data.buffer),
    };
    sd.set(name, tensor);
  }
  return sd;
}

const miniPth = sharedFixture("sam-mini/sam-mini.pth");
const pointsPerSide = Number(Deno.env.get("WGSAM_AMG_BENCH_POINTS") ?? (software ? 1 : 8));
if (miniPth && pointsPerSide > 0) {
  const { sd, arch } = await loadSam(miniPth);
  const backend = SamModelBackend.fromStateDict(ctx, sd, arch, "sam-mini");
  const image = rgb(await readImageFile(sharedFixture("sam-mini/image.png")!));
  await timedAmg(`sam-mini 900x600, ${pointsPerSide}x${pointsPerSide} points`, backend, image, {
    points_per_side: pointsPerSide,
    // Random weights: keep every mask (the default thresholds drop most of them), so the
    // read-back, RLE and NMS of kept masks are part of the timing.
    pred_iou_thresh: 0,
    stability_score_thresh: 0,
  });
  backend.dispose();
} else if (pointsPerSide > 0) {
  console.warn("SKIP: amg bench on sam-mini: ../shared/fixtures/sam-mini is not present");
}

const truck = sharedFixture("images/truck.jpg");
if (!software && truck) {
  const arch = OFFICIAL_ARCHS.vit_b;
  const backend = SamModelBackend.fromStateDict(
    ctx,
    randomStateDict(expectedShapes(arch), 1),
    arch,
    "vit_b random",
  );
  const image = rgb(await readImageFile(truck));
  await timedAmg("ViT-B shapes (random weights) 1800x1200, 32x32 points", backend, image, {
    points_per_side: 32,
    pred_iou_thresh: 0,
    stability_score_thresh: 0.3,
  });
  backend.dispose();
} else if (software) {
  console.log(`amg bench: ViT-B 32x32 case skipped on the software adapter (${adapter})`);
}

// The generator's own GPU work per batch, on fixed low-res logits (smooth blobs).
{
  const [h, w, n, l] = [600, 900, 64, 256];
  const low = new Float32Array(n * 3 * l * l);
  for (let i = 0; i < low.length; i++) {
    const x = i % l, y = Math.floor(i / l) % l, p = Math.floor(i / (l * l));
    low[i] = 20 + 10 * (p % 3) - Math.hypot(x - (p * 37) % l, y - (p * 61) % l);
  }
  const fixed: SamGpuBackend = {
    ctx,
    imgSize: 1024,
    setImage: () => Promise.resolve(),
    decodePoints: (_points, count) =>
      Promise.resolve({
        lowRes: tensorFrom(ctx, low.subarray(0, count * 3 * l * l), [count, 3, l, l]),
        iou: new Float32Array(count * 3).fill(0.9),
      }),
  };
  const source = new ModelMaskSource(fixed);
  await source.setImage({ width: w, height: h, data: new Uint8Array(w * h * 3) });
  const request = {
    points: new Float32Array(2 * n),
    n,
    maskThreshold: 0,
    predIouThresh: 0.88,
    stabilityScoreThresh: 0.95,
    stabilityScoreOffset: 1,
  };
  const kept = Array.from({ length: 24 }, (_, i) => i * 8); // a typical share of kept masks
  Deno.bench({
    name: `amg per batch: postprocess + mask_stats + 24 kept masks, ${n}x3 masks at ${w}x${h}`,
    // Seconds an iteration on llvmpipe: a few samples.
    n: software ? 3 : undefined,
    warmup: software ? 1 : undefined,
    async fn() {
      const batch = await source.predictBatch(request);
      await batch.readMasks(kept);
      batch.release?.();
    },
  });
}
