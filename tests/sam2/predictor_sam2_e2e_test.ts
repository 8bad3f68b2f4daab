/**
 * SAM 2.1 end to end through the public API: SamModel.load on the checkpoint (our Hiera
 * encoder, FPN neck and decoder), SamPredictor.setImage on the fixture's photo and every
 * prompt case of fixture.json through predictBatch, against the official goldens (masks,
 * IoU, low-res logits, object score). Tolerances: sam2_cases.ts ENCODER_TOL.
 */
import assert from "node:assert/strict";
import { readImageFile } from "../../src/image.ts";
import { SamModel, SamPredictor } from "../../src/predictor.ts";
import type { Prediction } from "../../src/types.ts";
import { fixtureDir, sharedFixture, skipIfMissing } from "../util/fixtures.ts";
import { type CaseResult, checkSam2Case, ENCODER_TOL, loadSam2Cases } from "./sam2_cases.ts";
import { loadProbes } from "./probes.ts";
import { fileURLToPath } from "node:url";

function asCaseResult(p: Prediction): CaseResult {
  return {
    count: p.masks.length,
    lowRes: p.lowResLogits,
    iou: p.scores,
    masks: p.masks,
    logits: p.logits,
    objScore: p.objectScore!,
  };
}

async function checkModel(
  model: SamModel,
  dir: URL,
  probes?: Awaited<ReturnType<typeof loadProbes>>,
) {
  const predictor = new SamPredictor(model);
  try {
    const image = await readImageFile(fileURLToPath(new URL("image.png", dir)));
    const info = await predictor.setImage(image);
    const { cases, imageSizeHw } = await loadSam2Cases(dir);
    assert.deepEqual([info.height, info.width], imageSizeHw);
    for (const c of cases) {
      const predictions = await predictor.predictBatch(c.prompts, { returnLogits: true });
      for (const p of predictions) {
        assert.equal(typeof p.objectScore, "number", "SAM 2 predictions carry the object score");
        assert.equal(p.lowResSize, model.decoder.lowResSize);
      }
      console.log(
        checkSam2Case(
          c,
          predictions.map(asCaseResult),
          imageSizeHw,
          model.decoder.lowResSize,
          ENCODER_TOL,
          probes,
        ),
      );
    }
  } finally {
    predictor.dispose();
  }
}

Deno.test("sam2-tiny end to end: SamModel.load('sam2-tiny') + SamPredictor reproduce every prompt golden", async () => {
  const dir = fixtureDir("sam2-tiny")!;
  const model = await SamModel.load("sam2-tiny");
  try {
    assert.equal(model.family, "sam2");
    assert.equal(model.imgSize, 256);
    await checkModel(model, dir);
  } finally {
    model.dispose();
  }
});

Deno.test("sam2-tiny end to end: loading the .pt by path finds the bundled model's hints", async () => {
  const dir = fixtureDir("sam2-tiny")!;
  const model = await SamModel.load(fileURLToPath(new URL("sam2-tiny.pt", dir)));
  try {
    assert.equal(model.name, "sam2-tiny");
    assert.equal(model.family, "sam2");
    assert.equal(model.arch.imgSize, 256);
  } finally {
    model.dispose();
  }
});

Deno.test("sam2-mini end to end (1024 input, real decoder width): every prompt case via probes", async () => {
  const dir = sharedFixture("sam2-mini/");
  if (skipIfMissing(dir, "sam2-mini end to end")) return;
  const { sam2HintsFromFixture } = await import("../../src/sam2/arch.ts");
  const fixture = JSON.parse(await Deno.readTextFile(new URL("fixture.json", dir!)));
  const model = await SamModel.load(fileURLToPath(new URL("sam2-mini.pt", dir!)), {
    sam2Hints: sam2HintsFromFixture(fixture.architecture),
  });
  try {
    await checkModel(model, dir!, await loadProbes(dir!));
  } finally {
    model.dispose();
  }
});
