/**
 * MobileSAM (TinyViT-5M encoder, SAM's decoder) against the official PyTorch goldens of
 * ../shared/fixtures/mobilesam/, through the public API: SamModel.load on the .pth and
 * SamPredictor on the fixture photo. One encoder pass (1024 px: the expensive part on a CPU
 * adapter) serves every check: the test spies on the model's encoder to keep a copy of each
 * stage as the predictor's setImage runs it.
 *
 * Stages: act_patch_embed (NCHW, 4 channels), act_layer0..3 (tokens, 8 channels each),
 * image_embeddings (all of it) within max-abs 1e-3 and NMSE 1e-6 (SAM's encoder test's
 * per-stage bound); the input is our preprocessing of image.png, which reproduces the official
 * input tensor bit for bit (checked on these very pixels by the sam-mini encoder test). Then
 * the six prompt cases: IoU and low-res logits within 1e-3 (the decoder's bound). Last, an
 * independent oracle: the fixture's official `encoder.onnx` export run by onnxruntime-web
 * (wasm) on our input tensor, its weights read as external data from mobilesam.pth itself
 * (every BatchNorm unfolded, bias tables gathered in the graph), against our embedding.
 */
import assert from "node:assert/strict";
import * as ort from "onnxruntime-web";
import { preprocessImage } from "../../src/encoder/preprocess.ts";
import { readImageFile } from "../../src/image.ts";
import { SamModel, SamPredictor } from "../../src/predictor.ts";
import { loadFixtureCases } from "../decoder/fixture_cases.ts";
import { assertClose } from "../util/compare.ts";
import { checkStage, fixtureStages, spyStages, STAGE_TOL } from "../util/encoder_stages.ts";
import { fixtureDir, loadGolden, skipIfMissing } from "../util/fixtures.ts";

Deno.test("MobileSAM fixture: every encoder stage and prompt case via SamModel.load + SamPredictor", async (t) => {
  const dir = fixtureDir("mobilesam");
  if (skipIfMissing(dir, "MobileSAM fixture")) return;
  const model = await SamModel.load(new URL("mobilesam.pth", dir!).pathname);
  const predictor = new SamPredictor(model);
  const kept = spyStages(model);
  try {
    assert.equal(model.family, "mobile_sam");
    assert.equal(model.arch.imgSize, 1024);
    assert.ok(!("family" in model.arch)); // SAM 1's arch record, not SAM 2's
    assert.equal(model.arch.promptEmbedDim, 32);
    const image = await readImageFile(new URL("image.png", dir!));
    const info = await predictor.setImage(image);
    console.log(`MobileSAM encoder (1024 px) on ${model.adapter}: ${info.encodeMs.toFixed(0)} ms`);
    for (const [name, s] of Object.entries(await fixtureStages(dir!))) {
      await t.step(name, async () => {
        const r = await checkStage(dir!, name, s, kept);
        console.log(
          `${name}: max abs ${r.maxAbs.toExponential(2)}, NMSE ${r.nmse.toExponential(2)}`,
        );
      });
    }

    await t.step("image_embeddings (the predictor's)", async () => {
      const { data, shape } = await predictor.getImageEmbedding();
      const golden = await loadGolden(dir!, "image_embeddings.npy");
      assert.deepEqual(shape, golden.shape);
      const r = assertClose(data, golden.data as Float32Array, {
        ...STAGE_TOL,
        shape,
        label: "image_embeddings",
      });
      console.log(
        `image_embeddings: max abs ${r.maxAbs.toExponential(2)}, NMSE ${r.nmse.toExponential(2)}`,
      );
    });

    await t.step("encoder.onnx through onnxruntime-web (external data from the .pth)", async () => {
      ort.env.wasm.numThreads = 1;
      const session = await ort.InferenceSession.create(
        await Deno.readFile(new URL("encoder.onnx", dir!)),
        {
          externalData: [{
            path: "mobilesam.pth",
            data: await Deno.readFile(new URL("mobilesam.pth", dir!)),
          }],
        },
      );
      try {
        const t0 = performance.now();
        const input = preprocessImage(image, 1024).tensor;
        const out = await session.run({
          image: new ort.Tensor("float32", input, [1, 3, 1024, 1024]),
        });
        const ref = out.image_embeddings.data as Float32Array;
        const { data } = await predictor.getImageEmbedding();
        const r = assertClose(data, ref, { ...STAGE_TOL, label: "ours vs onnxruntime-web" });
        console.log(
          `onnxruntime-web ${(performance.now() - t0).toFixed(0)} ms; max abs ${
            r.maxAbs.toExponential(2)
          }`,
        );
      } finally {
        await session.release();
      }
    });

    const { cases } = await loadFixtureCases(dir!);
    assert.equal(cases.length, 6);
    for (const c of cases) {
      await t.step(`case ${c.name}`, async () => {
        const predictions = await predictor.predictBatch(
          c.prompts.map((p) => ({ ...p, multimask: c.multimask })),
        );
        const C = c.multimask ? 3 : 1;
        const low = predictions[0].lowResSize;
        assert.equal(low, 256);
        predictions.forEach((p, b) => {
          const label = `${c.name}[${b}]`;
          assertClose(p.scores, c.iou.subarray(b * C, (b + 1) * C), {
            atol: 1e-3,
            label: `${label} IoU`,
          });
          const r = assertClose(
            p.lowResLogits,
            c.lowRes.subarray(b * C * low * low, (b + 1) * C * low * low),
            { atol: 1e-3, shape: [C, low, low], label: `${label} low-res logits` },
          );
          assert.equal(p.masks.length, C);
          assert.equal(p.masks[0].length, info.width * info.height);
          console.log(`${label}: low-res max abs ${r.maxAbs.toExponential(2)}`);
        });
      });
    }
  } finally {
    for (const x of kept.values()) x.destroy();
    predictor.dispose();
    model.dispose();
  }
});
