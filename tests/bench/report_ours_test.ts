/**
 * The report's measurements of ours run end to end on sam-tiny (seconds on llvmpipe), so the
 * code paths a GPU machine takes (random-weight encoder, decoder batches with and without
 * upscaling, the AMG over the model, GPU timestamps where the adapter has them) are exercised
 * here too: each gives an "ok" Measure with the runs asked for.
 */
import assert from "node:assert/strict";
import type { Measure } from "../../bench/report/measure.ts";
import {
  type AmgModules,
  type DecoderModule,
  type EncoderModule,
  importAmg,
  importOurs,
  measureOursAmg,
  measureOursDecoder,
  measureOursEncoder,
  randomStateDict,
} from "../../bench/report/ours.ts";
import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { readImageFile } from "../../src/image.ts";
import { loadSam } from "../../src/weights/load.ts";
import { fixtureDir } from "../util/fixtures.ts";

const tiny = fixtureDir("sam-tiny")!;

function assertOk(m: Measure, runs: number, warmup: number): asserts m is Measure & {
  status: "ok";
} {
  assert.equal(m.status, "ok", m.status === "ok" ? "" : m.reason);
  if (m.status !== "ok") return;
  assert.equal(m.runsMs.length, runs);
  assert.equal(m.warmupMs.length, warmup);
  assert.ok(m.ms > 0);
  // GPU time is never more than the wall time around it.
  if (m.gpuMs != null) assert.ok(m.gpuMs > 0 && m.gpuMs <= m.ms * 1.01, `${m.gpuMs} vs ${m.ms}`);
}

Deno.test({
  name: "report: ours on sam-tiny (encoder with random weights, decoder, AMG)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const ctx = await getContext();
    const { sd, arch } = await loadSam(new URL("sam-tiny.pth", tiny));

    const enc = await importOurs<EncoderModule>("src/encoder/image_encoder.ts", [
      "ImageEncoder",
    ]);
    assert.equal(typeof enc, "object", typeof enc === "string" ? enc : "");
    const random = randomStateDict(arch, (n) => n.startsWith("image_encoder."));
    assert.deepEqual(random.get("image_encoder.pos_embed")!.shape, [1, 16, 16, 32]);
    assertOk(await measureOursEncoder(ctx, enc as EncoderModule, random, arch, 1, 2), 2, 1);

    const dec = await importOurs<DecoderModule>("src/decoder/mask_decoder.ts", [
      "SamDecoder",
    ]);
    assert.equal(typeof dec, "object", typeof dec === "string" ? dec : "");
    const decoder = (dec as DecoderModule).SamDecoder.create(ctx, sd, arch);
    const embedding = tensorFrom(ctx, new Float32Array(32 * 16 * 16).fill(0.1), [1, 32, 16, 16]);
    try {
      const prompt = { points: [[40, 30], [100, 80]] as [number, number][], labels: [1, 0] };
      for (const upscaled of [true, false]) {
        const one = await measureOursDecoder(
          ctx,
          decoder,
          embedding,
          [120, 180],
          [prompt],
          upscaled,
          0,
          1,
        );
        assertOk(one, 1, 0);
        assert.equal(one.perPromptMs, undefined);
        const batch = await measureOursDecoder(
          ctx,
          decoder,
          embedding,
          [120, 180],
          [prompt, prompt, prompt],
          upscaled,
          0,
          1,
        );
        assertOk(batch, 1, 0);
        assert.equal(batch.perPromptMs, batch.ms / 3);
      }
    } finally {
      embedding.destroy();
      decoder.dispose();
    }

    const amg = await importAmg();
    assert.equal(typeof amg, "object", typeof amg === "string" ? amg : "");
    const image = await readImageFile(new URL("image.png", tiny));
    const m = await measureOursAmg(ctx, amg as AmgModules, sd, arch, image, 2, 0, 1);
    assertOk(m, 1, 0);
    assert.equal(typeof m.detail?.masks, "number");
  },
});
