/**
 * SamModelBackend frees the decoder's per-image work (kept per embedding) along with the
 * embedding, when the next image replaces it and on dispose, also where the decoder is
 * shared with a predictor.
 */
import assert from "node:assert/strict";
import { SamModelBackend } from "../../src/amg/sam_backend.ts";
import { loadSam } from "../../src/weights/load.ts";
import { getContext } from "../../src/gpu/context.ts";
import { ImageEncoder } from "../../src/encoder/image_encoder.ts";
import { SamDecoder } from "../../src/decoder/mask_decoder.ts";
import { resolveModel } from "../../src/weights/registry.ts";

Deno.test("SamModelBackend releases the decoder's per-image work with each embedding", async () => {
  const ctx = await getContext();
  const { sd, arch } = await loadSam(await resolveModel("sam-tiny"));
  const encoder = ImageEncoder.fromStateDict(ctx, sd, arch);
  const decoder = SamDecoder.create(ctx, sd, arch);
  try {
    const backend = SamModelBackend.fromModules(ctx, arch, encoder, decoder);
    const image = (shade: number) => ({
      width: 40,
      height: 30,
      data: new Uint8Array(40 * 30 * 3).map((_, i) => (i * shade) % 256),
    });
    const decodeOne = async () => {
      const { lowRes } = await backend.decodePoints(new Float32Array([10, 12]), 1);
      lowRes.destroy();
    };
    await backend.setImage(image(7));
    await decodeOne();
    assert.equal(decoder.cachedImages, 1, "the first image's work is kept for its next prompts");
    await backend.setImage(image(13));
    assert.equal(decoder.cachedImages, 0, "replacing the image frees the old image's work");
    await decodeOne();
    assert.equal(decoder.cachedImages, 1);
    // An image replaced before any prompt: its encoder pass was recorded, maybe not yet
    // submitted, when its embedding is dropped; the next prompt must still run cleanly.
    await backend.setImage(image(3));
    await backend.setImage(image(5));
    await decodeOne();
    await ctx.sync();
    backend.dispose();
    assert.equal(decoder.cachedImages, 0, "dispose frees it, though the decoder lives on");
  } finally {
    encoder.dispose();
    decoder.dispose();
  }
});
