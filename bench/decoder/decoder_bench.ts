/**
 * Decoder speed on sam-mini (decoder width 256, 64x64 embedding: the real models' decoder
 * cost): one point prompt and a batch of 64 boxes, low-res only and with masks upscaled to a
 * 1200x1800 photo, on the first call on an embedding and again. Prints ms per prompt, and
 * the dispatches, queue submits and readbacks (GPU round trips) a call makes per prompt.
 * WGSAM_BENCH_BATCH overrides the batch size (64).
 */
import { SamDecoder } from "../../src/decoder/mask_decoder.ts";
import type { DecoderPrompt } from "../../src/decoder/transforms.ts";
import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { readNpy } from "../../src/util/npy.ts";
import { loadSam } from "../../src/weights/load.ts";

const dir = new URL("../../../shared/fixtures/sam-mini/", import.meta.url);
let ready = true;
try {
  Deno.statSync(dir);
} catch {
  ready = false;
  console.warn("SKIP: decoder bench: ../shared/fixtures/sam-mini is not present");
}

if (ready) {
  const ctx = await getContext();
  const { sd, arch } = await loadSam(new URL("sam-mini.pth", dir));
  const decoder = SamDecoder.create(ctx, sd, arch);
  const emb = await readNpy(new URL("image_embeddings.npy", dir));
  const embedding = tensorFrom(ctx, emb.data as Float32Array, emb.shape, "image_embeddings");
  const originalSize: [number, number] = [1200, 1800];
  const batch = Number(Deno.env.get("WGSAM_BENCH_BATCH") ?? 64);
  const one: DecoderPrompt[] = [{ points: [[990, 600]], labels: [1], multimask: true }];
  // An 8 x 8 grid of boxes, as a detector would give.
  const boxes: DecoderPrompt[] = Array.from({ length: batch }, (_, i) => {
    const x = (i % 8) * 220 + 10, y = Math.floor(i / 8) * 145 + 10;
    return { box: [x, y, x + 200, y + 130], multimask: false };
  });
  // Compile every pipeline once before timing.
  await decoder.predict(embedding, one, { originalSize, output: "masks" });

  // "first call": the embedding's prompt-independent work (src, layer 0's image projections)
  // is dropped before, so the call makes it, as the first prompt on a new image does;
  // "again": it is kept from the call before, as every later prompt on that image.
  const timeOnce = async (
    name: string,
    prompts: DecoderPrompt[],
    output: "none" | "masks",
    first: boolean,
  ) => {
    if (first) decoder.releaseEmbedding(embedding);
    const before = { ...ctx.counters };
    const t0 = performance.now();
    await decoder.predict(embedding, prompts, { originalSize, output });
    const ms = performance.now() - t0;
    console.log(
      `decoder sam-mini ${name}, ${first ? "first call" : "again"}: ${ms.toFixed(0)} ms, ${
        (ms / prompts.length).toFixed(1)
      } ms per prompt; ${
        perPrompt(before, prompts.length)
      } (${ctx.gpu.provider}, ${ctx.gpu.description})`,
    );
  };
  /** "d dispatches, s submits, r readbacks per prompt" since `before`. */
  const perPrompt = (before: typeof ctx.counters, n: number) =>
    (["dispatches", "submits", "readbacks"] as const).map((k) =>
      `${+((ctx.counters[k] - before[k]) / n).toFixed(2)} ${k}`
    ).join(", ") + " per prompt";
  await timeOnce("1 point, 3 masks at 1200x1800", one, "masks", false);
  // The batch runs take minutes on a software adapter, so each is timed once, here, rather
  // than repeated by Deno.bench's sampling.
  await timeOnce(`${batch} boxes, low-res only`, boxes, "none", true);
  await timeOnce(`${batch} boxes, low-res only`, boxes, "none", false);
  await timeOnce(`${batch} boxes, masks at 1200x1800`, boxes, "masks", false);
  for (
    const [name, output] of [["low-res only", "none"], ["3 masks at 1200x1800", "masks"]] as const
  ) {
    Deno.bench({
      name: `decoder sam-mini: 1 point, ${name}, again`,
      n: 1,
      warmup: 0,
      async fn() {
        await decoder.predict(embedding, one, { originalSize, output });
      },
    });
  }
  Deno.bench({
    name: "decoder sam-mini: 1 point, low-res only, first call",
    n: 1,
    warmup: 0,
    async fn(t) {
      decoder.releaseEmbedding(embedding);
      t.start();
      await decoder.predict(embedding, one, { originalSize, output: "none" });
      t.end();
    },
  });
}
