/**
 * The predictor's shared embedding store (several hosts, e.g. Redis) with a SAM 2.1 model: an
 * encode puts all three feature tensors (the embedding under the image id, the high-res
 * features under `<id>/<name>`); another predictor finds them without encoding and predicts
 * exactly what the first did. A store missing one of them is not used.
 */
import assert from "node:assert/strict";
import { readImageFile } from "../../src/image.ts";
import { type EmbeddingEvent, SamModel, SamPredictor } from "../../src/predictor.ts";
import { fixtureDir } from "../util/fixtures.ts";
import { fileURLToPath } from "node:url";

Deno.test("shared embedding store with sam2-tiny: three tensors put, found, same predictions", async () => {
  const store = new Map<string, { data: Float32Array; shape: number[] }>();
  const shared = {
    get: (id: string) => Promise.resolve(store.get(id) ?? null),
    put: (id: string, e: { data: Float32Array; shape: number[] }) => {
      store.set(id, e);
      return Promise.resolve();
    },
  };
  const model = await SamModel.load("sam2-tiny");
  const image = await readImageFile(fileURLToPath(new URL("image.png", fixtureDir("sam2-tiny")!)));
  const prompt = { points: [[88, 53.5], [32, 26.75]] as [number, number][], labels: [1, 0] };
  const events: EmbeddingEvent["kind"][] = [];
  const a = new SamPredictor(model, { shared });
  const b = new SamPredictor(model, { shared, onEmbedding: (e) => events.push(e.kind) });
  const c = new SamPredictor(model, { shared, onEmbedding: (e) => events.push(e.kind) });
  try {
    const info = await a.setImage(image);
    assert.deepEqual(
      [...store.keys()].sort(),
      [info.id, `${info.id}/high_res_feats_0`, `${info.id}/high_res_feats_1`].sort(),
    );
    assert.deepEqual(store.get(`${info.id}/high_res_feats_0`)!.shape, [1, 4, 64, 64]);
    const want = await a.predict({ ...prompt, multimask: false }, { returnLogits: true });

    const got = await b.setImage(image);
    assert.equal(got.cached, true);
    assert.deepEqual(events, ["shared-hit"]);
    const pred = await b.predict({ ...prompt, multimask: false }, { returnLogits: true });
    assert.deepEqual(pred.logits, want.logits);
    assert.deepEqual(pred.scores, want.scores);
    assert.equal(pred.objectScore, want.objectScore);

    // One tensor missing: not usable, so the image is encoded.
    store.delete(`${info.id}/high_res_feats_1`);
    await c.setImage(image);
    assert.deepEqual(events, ["shared-hit", "encode"]);
  } finally {
    a.dispose();
    b.dispose();
    c.dispose();
    model.dispose();
  }
});
