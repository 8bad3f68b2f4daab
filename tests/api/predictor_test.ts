/**
 * The public predictor end to end on sam-tiny: the fixture photo in (file bytes, through our
 * decoder of PNG, preprocessing, encoder and decoder), masks out, compared with the official
 * PyTorch goldens for every prompt case; plus the embedding cache and the errors.
 */
import assert from "node:assert/strict";
import { readImageFile } from "../../src/image.ts";
import { SamModel, SamPredictor } from "../../src/predictor.ts";
import { loadFixtureCases } from "../decoder/fixture_cases.ts";
import { loadGolden, LOCAL_FIXTURES } from "../util/fixtures.ts";
import { assertClose } from "../util/compare.ts";

const tiny = new URL("sam-tiny/", LOCAL_FIXTURES);

Deno.test("SamPredictor on sam-tiny: image file in, the fixture's masks out", async (t) => {
  const model = await SamModel.load("sam-tiny");
  const predictor = new SamPredictor(model);
  try {
    assert.equal(model.name, "sam-tiny");
    assert.equal(model.arch.imgSize, 256);
    const image = await readImageFile(new URL("image.png", tiny));
    const info = await predictor.setImage(image);
    assert.equal(info.cached, false);
    assert.deepEqual([info.height, info.width], [107, 160]);

    await t.step("the embedding agrees with the golden", async () => {
      const { data, shape } = await predictor.getImageEmbedding();
      const golden = await loadGolden(tiny, "image_embeddings.npy");
      assert.deepEqual(shape, golden.shape);
      assertClose(data, golden.data as Float32Array, {
        atol: 1e-2,
        nmse: 1e-5,
        shape,
        label: "image_embeddings from image.png",
      });
    });

    const { cases } = await loadFixtureCases(tiny);
    for (const c of cases) {
      await t.step(`case ${c.name}`, async () => {
        const predictions = await predictor.predictBatch(
          c.prompts.map((p) => ({ ...p, multimask: c.multimask })),
          { returnLogits: true },
        );
        const C = c.multimask ? 3 : 1;
        const plane = info.width * info.height;
        const lowPlane = 64 * 64;
        predictions.forEach((p, b) => {
          const label = `${c.name}[${b}]`;
          assert.equal(p.masks.length, C, label);
          assert.equal(p.lowResSize, 64);
          assertClose(p.scores, c.iou.subarray(b * C, (b + 1) * C), {
            atol: 1e-3,
            label: `${label} iou`,
          });
          assertClose(p.lowResLogits, c.lowRes.subarray(b * C * lowPlane, (b + 1) * C * lowPlane), {
            // From the photo, not the golden embedding: measured max abs 2.3e-5.
            atol: 1e-3,
            nmse: 1e-6,
            label: `${label} low-res logits`,
          });
          let differ = 0;
          p.masks.forEach((mask, k) => {
            const ref = c.masks.subarray((b * C + k) * plane, (b * C + k + 1) * plane);
            for (let i = 0; i < plane; i++) if (mask[i] !== (ref[i] > 0 ? 1 : 0)) differ++;
          });
          assert.ok(differ <= 0.001 * C * plane, `${label}: ${differ} mask pixels differ`);
          assert.equal(p.logits?.length, C * plane);
        });
      });
    }

    await t.step("setImage again: the embedding comes from the cache", async () => {
      const again = await predictor.setImage(image);
      assert.equal(again.cached, true);
      assert.equal(again.id, info.id);
      assert.equal(again.encodeMs, 0);
    });

    await t.step("bad prompts are refused with a clear error", async () => {
      await assert.rejects(() => predictor.predict({ points: [[NaN, 3]], labels: [1] }));
      await assert.rejects(() => predictor.predict({ points: [[3, 3]], labels: [7] }));
      await assert.rejects(() => predictor.predict({ points: [[3, 3]], labels: [1, 0] }));
      await assert.rejects(() =>
        predictor.predict({ points: [[3, 3]], labels: [1], maskInput: new Float32Array(5) })
      );
      await assert.rejects(
        () => predictor.predict({ points: [[1e30, 1e30]], labels: [1] }),
        /outside the 160x107 image/,
      );
      await assert.rejects(() => predictor.predict({ box: [100, 10, 20, 90] }), /x0 <= x1/);
      await assert.rejects(() => predictor.predict({ box: [-500, 0, 20, 90] }), /outside/);
      // A point a little outside the photo (within a quarter of its long side) is fine.
      assert.equal(
        (await predictor.predict({ points: [[-20, 110]], multimask: false })).masks.length,
        1,
      );
      // Labels default to foreground.
      const implicit = await predictor.predict({ points: [[88, 53.5]], multimask: false });
      const explicit = await predictor.predict({
        points: [[88, 53.5]],
        labels: [1],
        multimask: false,
      });
      assert.deepEqual(implicit.scores, explicit.scores);
      // The predictor still answers after the refusals.
      const ok = await predictor.predict({ points: [[88, 53.5]], labels: [1], multimask: false });
      assert.equal(ok.masks.length, 1);
    });
  } finally {
    predictor.dispose();
    model.dispose();
  }
});

Deno.test("SamPredictor: the embedding LRU evicts by bytes; evicted images are encoded again", async () => {
  const model = await SamModel.load("sam-tiny");
  const embeddingBytes = 32 * 16 * 16 * 4;
  const predictor = new SamPredictor(model, { cacheBytes: 2 * embeddingBytes });
  try {
    const photo = await readImageFile(new URL("image.png", tiny));
    const variant = (k: number) => ({
      ...photo,
      data: photo.data.map((v, i) => (i === k ? v ^ 1 : v)),
    });
    const a = await predictor.setImage(variant(0));
    const b = await predictor.setImage(variant(1));
    assert.notEqual(a.id, b.id);
    assert.equal((await predictor.setImage(variant(0))).cached, true);
    await predictor.setImage(variant(2)); // evicts b, the least recently used
    assert.equal((await predictor.setImage(variant(1))).cached, false);
    // forget drops one embedding: the next setImage of those pixels runs the encoder again.
    // (b is current: it stays usable until another image is set.)
    assert.equal(predictor.forget(b.id), true);
    assert.equal(predictor.forget(b.id), false);
    assert.equal((await predictor.predict({ box: [16, 21.4, 112, 90.95] })).masks.length, 1);
    assert.equal((await predictor.setImage(variant(1))).cached, false);
    // The current image still answers after evictions around it.
    const p = await predictor.predict({ box: [16, 21.4, 112, 90.95], multimask: false });
    assert.equal(p.masks.length, 1);
    // RGBA input: alpha is ignored, so the id and the embedding are those of the RGB pixels.
    const rgba = new Uint8Array(photo.width * photo.height * 4);
    for (let i = 0; i < photo.width * photo.height; i++) {
      rgba.set(photo.data.subarray(3 * i, 3 * i + 3), 4 * i);
      rgba[4 * i + 3] = i % 256;
    }
    // Setting the same pixel array again (as the server does before every prompt) is not
    // hashed again: the id of a known array is remembered.
    const digest = crypto.subtle.digest.bind(crypto.subtle);
    let digests = 0;
    crypto.subtle.digest = (...args: Parameters<SubtleCrypto["digest"]>) => {
      digests++;
      return digest(...args);
    };
    try {
      const once = await predictor.setImage(photo);
      const twice = await predictor.setImage(photo);
      assert.equal(twice.id, once.id);
      assert.equal(digests, 1);
    } finally {
      crypto.subtle.digest = digest;
    }
    const fromRgb = await predictor.setImage(photo);
    const fromRgba = await predictor.setImage({ ...photo, channels: 4, data: rgba });
    assert.equal(fromRgba.id, fromRgb.id);
    assert.equal(fromRgba.cached, true);
    await assert.rejects(
      () => predictor.setImage({ ...photo, data: photo.data.subarray(1) }),
      /bytes for 160x107x3/,
    );
  } finally {
    predictor.dispose();
    model.dispose();
  }
  await assert.rejects(() => predictor.predict({ points: [[1, 1]], labels: [1] }), /after dispose/);
});

Deno.test("SamPredictor: the decoder's per-image work goes with its embedding (forget, eviction, dispose)", async () => {
  const model = await SamModel.load("sam-tiny");
  const embeddingBytes = 32 * 16 * 16 * 4;
  const predictor = new SamPredictor(model, { cacheBytes: 2 * embeddingBytes });
  const decoder = model.decoder;
  try {
    const photo = await readImageFile(new URL("image.png", tiny));
    const variant = (k: number) => ({
      ...photo,
      data: photo.data.map((v, i) => (i === k ? v ^ 1 : v)),
    });
    const box = { box: [16, 21.4, 112, 90.95] as [number, number, number, number] };
    const a = await predictor.setImage(variant(0));
    const embA = predictor.embeddingTensor!;
    const first = await predictor.predict(box);
    assert.ok(decoder.hasImageCached(embA));
    await predictor.setImage(variant(1));
    const embB = predictor.embeddingTensor!;
    await predictor.predict(box);
    assert.ok(decoder.hasImageCached(embA) && decoder.hasImageCached(embB));
    // Forgetting a (not current) frees its embedding, and the decoder's work on it.
    assert.equal(predictor.forget(a.id), true);
    assert.ok(!decoder.hasImageCached(embA));
    assert.ok(decoder.hasImageCached(embB));
    // Eviction by the LRU: b, c fill it; b goes (destroyed) once d is set.
    await predictor.setImage(variant(2));
    await predictor.predict(box);
    await predictor.setImage(variant(3));
    assert.ok(!decoder.hasImageCached(embB));
    // The same pixels again: encoded anew, the answer unchanged (nothing stale).
    await predictor.setImage(variant(0));
    assert.notEqual(predictor.embeddingTensor, embA);
    const again = await predictor.predict(box);
    assert.deepEqual(again.scores, first.scores);
    assert.deepEqual(again.lowResLogits, first.lowResLogits);
    assert.ok(decoder.cachedImages > 0);
  } finally {
    predictor.dispose();
  }
  assert.equal(decoder.cachedImages, 0);
  model.dispose();
});

Deno.test("SamModel.load: unknown names and missing files say what to do", async () => {
  await assert.rejects(() => SamModel.load("vit_q"), /vit_q/);
  await assert.rejects(() => SamModel.load("/nonexistent/model.pth"), /nonexistent/);
});
