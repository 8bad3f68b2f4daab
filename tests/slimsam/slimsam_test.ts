/**
 * SlimSAM (SAM's ViT pruned to SlimSAM-77-uniform's widths: embed 168, 12 heads of head_dim
 * 14, MLP 696) against the official goldens of ../shared/fixtures/slimsam/, through the public
 * API: SamModel.load on slimsam.pth and SamPredictor on the fixture photo, one encoder pass
 * for every check (stages, embedding, the official encoder.onnx through onnxruntime-web with
 * its weights as external data from the .pth, the six prompt cases with full-size masks); and
 * SlimSAM's non-uniform "global" releases (whole pickled models) refused with a clear message.
 */
import assert from "node:assert/strict";
import * as ort from "onnxruntime-web";
import { preprocessImage } from "../../src/encoder/preprocess.ts";
import { readImageFile } from "../../src/image.ts";
import { SamModel, SamPredictor } from "../../src/predictor.ts";
import { loadSam } from "../../src/weights/load.ts";
import { loadFixtureCases } from "../decoder/fixture_cases.ts";
import { assertClose } from "../util/compare.ts";
import { checkStage, fixtureStages, spyStages, STAGE_TOL } from "../util/encoder_stages.ts";
import { fixtureDir, loadGolden, skipIfMissing } from "../util/fixtures.ts";
import { buildPth, PickleWriter, withTempDir, writeTemp } from "../weights/helpers.ts";

Deno.test("SlimSAM fixture: every encoder stage and prompt case via SamModel.load + SamPredictor", async (t) => {
  const dir = fixtureDir("slimsam");
  if (skipIfMissing(dir, "SlimSAM fixture")) return;
  const model = await SamModel.load(new URL("slimsam.pth", dir!).pathname);
  const predictor = new SamPredictor(model);
  const kept = spyStages(model);
  try {
    assert.equal(model.family, "slimsam");
    assert.ok(!("family" in model.arch)); // SAM 1's arch record, not SAM 2's
    assert.deepEqual([model.arch.embedDim, model.arch.numHeads, model.arch.encoderMlpDim], [
      168,
      12,
      696,
    ]);
    const image = await readImageFile(new URL("image.png", dir!));
    const pixels = await loadGolden(dir!, "input_image.npy");
    assert.deepEqual(image.data, pixels.data, "decoded photo = the fixture's input_image");
    const info = await predictor.setImage(image);
    console.log(`SlimSAM encoder (1024 px) on ${model.adapter}: ${info.encodeMs.toFixed(0)} ms`);
    for (const [name, s] of Object.entries(await fixtureStages(dir!))) {
      await t.step(name, async () => {
        const r = await checkStage(dir!, name, s, kept);
        console.log(`${name}: max abs ${r.maxAbs.toExponential(2)}`);
      });
    }
    await t.step("image_embeddings", async () => {
      const { data, shape } = await predictor.getImageEmbedding();
      const golden = await loadGolden(dir!, "image_embeddings.npy");
      assert.deepEqual(shape, golden.shape);
      assertClose(data, golden.data as Float32Array, { ...STAGE_TOL, shape, label: "embedding" });
    });
    await t.step("encoder.onnx through onnxruntime-web (external data from the .pth)", async () => {
      ort.env.wasm.numThreads = 1;
      const session = await ort.InferenceSession.create(
        await Deno.readFile(new URL("encoder.onnx", dir!)),
        {
          externalData: [{
            path: "slimsam.pth",
            data: await Deno.readFile(new URL("slimsam.pth", dir!)),
          }],
        },
      );
      try {
        const input = preprocessImage(image, 1024).tensor;
        const out = await session.run({
          image: new ort.Tensor("float32", input, [1, 3, 1024, 1024]),
        });
        const { data } = await predictor.getImageEmbedding();
        assertClose(data, out.image_embeddings.data as Float32Array, {
          ...STAGE_TOL,
          label: "ours vs onnxruntime-web",
        });
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
          { returnLogits: true },
        );
        const C = c.multimask ? 3 : 1;
        const low = predictions[0].lowResSize, lowPlane = low * low;
        const plane = info.width * info.height;
        predictions.forEach((p, b) => {
          const label = `${c.name}[${b}]`;
          assertClose(p.scores, c.iou.subarray(b * C, (b + 1) * C), {
            atol: 1e-3,
            label: `${label} IoU`,
          });
          assertClose(p.lowResLogits, c.lowRes.subarray(b * C * lowPlane, (b + 1) * C * lowPlane), {
            atol: 1e-3,
            label: `${label} low-res logits`,
          });
          const ref = c.masks.subarray(b * C * plane, (b + 1) * C * plane);
          assertClose(p.logits!, ref, { atol: 5e-3, label: `${label} logits` });
          let differ = 0;
          p.masks.forEach((mask, k) => {
            for (let i = 0; i < plane; i++) {
              if (mask[i] !== (ref[k * plane + i] > 0 ? 1 : 0)) differ++;
            }
          });
          assert.ok(differ <= 0.001 * C * plane, `${label}: ${differ} mask pixels differ`);
        });
      });
    }
  } finally {
    for (const x of kept.values()) x.destroy();
    predictor.dispose();
    model.dispose();
  }
});

/** A torch.save(model) pickle: protocol 2 names the model's class first (NEWOBJ). */
function wholeModelPickle(module: string, name: string): Uint8Array {
  return new PickleWriter().proto(2).global(module, name).emptyTuple().op(0x81).emptyDict()
    .build().stop().done();
}

Deno.test("SlimSAM's non-uniform 'global' releases (whole pickled models) are refused, pointing to the uniform ones", async () => {
  await withTempDir(async (dir) => {
    const kd = await writeTemp(
      dir,
      "SlimSAM-77.pth",
      await buildPth(wholeModelPickle("segment_anything_kd.modeling.sam", "Sam"), {}),
    );
    await assert.rejects(
      () => SamModel.load(kd),
      (e: Error) => {
        assert.match(e.message, /non-uniform "global" releases/);
        assert.match(e.message, /segment_anything_kd\.modeling\.sam\.Sam/);
        assert.match(e.message, /SlimSAM-77-uniform/);
        assert.match(e.message, /slimsam_50 \/ slimsam_77/);
        return true;
      },
    );
    // Any other whole model: named as such, with the way out.
    const seq = await writeTemp(
      dir,
      "model.pth",
      await buildPth(wholeModelPickle("torch.nn.modules.container", "Sequential"), {}),
    );
    await assert.rejects(() => loadSam(seq), /whole pickled model .*model\.state_dict\(\)/);
    // A hostile global is still refused as before, not dressed up as a model.
    const evil = await writeTemp(
      dir,
      "evil.pth",
      await buildPth(new PickleWriter().proto(2).global("os", "system").stop().done(), {}),
    );
    await assert.rejects(() => loadSam(evil), /pickle: refusing global 'os\.system'/);
  });
});
