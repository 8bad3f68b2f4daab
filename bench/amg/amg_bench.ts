/**
 * Automatic mask generation end to end (encoder, decoder batches, GPU postprocess and
 * statistics, kept-mask read-back, NMS, RLE):
 *
 * - sam-mini (../shared/fixtures/sam-mini: real-size decoder, small encoder) on its 900x600
 *   photo with a coarse grid. On llvmpipe (2 shared cores) its encoder alone took about 4 min
 *   and the real-size decoder about 25 s a point, so the default grid is 1 point (3 masks):
 *   about 5 min there. WGSAM_AMG_BENCH_POINTS sets the points per side.
 * - Where the adapter is not llvmpipe: ViT-B shapes with random weights (timing only; the
 *   masks mean nothing) on the 1800x1200 truck photo with the official default 32 x 32 grid.
 *
 * Each case runs once (Deno.bench n 1) and prints where the time went.
 */
import { AutomaticMaskGenerator } from "../../src/amg/automatic_mask_generator.ts";
import { ModelMaskSource } from "../../src/amg/model_source.ts";
import { SamModelBackend } from "../../src/amg/sam_backend.ts";
import { getContext } from "../../src/gpu/context.ts";
import { readImageFile } from "../../src/image.ts";
import { expectedShapes, OFFICIAL_ARCHS } from "../../src/weights/arch.ts";
import { loadSam } from "../../src/weights/load.ts";
import type { HostTensor, StateDict } from "../../src/weights/types.ts";

const ctx = await getContext();
const adapter = ctx.gpu.description;
const software = /llvmpipe|swiftshader|software/i.test(adapter);
const shared = new URL("../../../shared/fixtures/", import.meta.url);

function exists(url: URL): boolean {
  try {
    Deno.statSync(url);
    return true;
  } catch {
    return false;
  }
}

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

const miniPth = new URL("sam-mini/sam-mini.pth", shared);
Deno.bench({
  name: "amg sam-mini 900x600",
  n: 1,
  warmup: 0,
  ignore: !exists(miniPth),
  async fn() {
    const pointsPerSide = Number(Deno.env.get("WGSAM_AMG_BENCH_POINTS") ?? (software ? 1 : 8));
    const { sd, arch } = await loadSam(miniPth);
    const backend = SamModelBackend.fromStateDict(ctx, sd, arch, "sam-mini");
    const image = rgb(await readImageFile(new URL("sam-mini/image.png", shared)));
    await timedAmg(`sam-mini, ${pointsPerSide}x${pointsPerSide} points`, backend, image, {
      points_per_side: pointsPerSide,
      // Random weights: keep the masks the default thresholds would mostly drop.
      pred_iou_thresh: 0,
      stability_score_thresh: 0.3,
    });
    backend.dispose();
  },
});

const truck = new URL("images/truck.jpg", shared);
Deno.bench({
  name: "amg ViT-B shapes (random weights) 1800x1200, 32x32 points",
  n: 1,
  warmup: 0,
  ignore: software || !exists(truck),
  async fn() {
    const arch = OFFICIAL_ARCHS.vit_b;
    const backend = SamModelBackend.fromStateDict(
      ctx,
      randomStateDict(expectedShapes(arch), 1),
      arch,
      "vit_b random",
    );
    const image = rgb(await readImageFile(truck));
    await timedAmg("ViT-B shapes, 32x32 points", backend, image, {
      points_per_side: 32,
      pred_iou_thresh: 0,
      stability_score_thresh: 0.3,
    });
    backend.dispose();
  },
});
