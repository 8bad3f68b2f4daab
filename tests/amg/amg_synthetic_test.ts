/**
 * The whole generator (grids, crops, batching, thresholds, stability, NMS within and across
 * crops, crop-edge filter, uncropping, RLE) against the official output on the amg-synthetic
 * fixture: a 600 x 900 image, points_per_side 16, crop_n_layers 1, a stand-in model.
 *
 * The fixture's records are in the official generator's own order (the crop NMS order:
 * layer-1 crops first, as their smaller area scores higher, then the whole image; within a
 * crop by predicted IoU), not sorted by area. Beyond the required one-to-one match, the tests
 * check that the order and every RLE are identical.
 */
import assert from "node:assert/strict";
import { AutomaticMaskGenerator, type MaskRecord } from "../../src/amg/automatic_mask_generator.ts";
import { cocoDecodeRle, type CocoRle, rleToMask, type UncompressedRle } from "../../src/amg/rle.ts";
import { loadSyntheticAmg } from "./fixture_records.ts";
import { assertRecordsMatch } from "./match_records.ts";
import { SyntheticBatchSource, SyntheticMaskSource } from "./synthetic_source.ts";

const TOLERANCES = { minIou: 0.99, atol: 1e-3 };

function assertSameOrderAndMasks(
  got: MaskRecord<UncompressedRle>[],
  expected: MaskRecord<UncompressedRle>[],
  matchOf: number[],
) {
  assert.deepEqual(matchOf, expected.map((_, i) => i), "records in the official order");
  expected.forEach((exp, i) => {
    assert.deepEqual(got[i].segmentation, exp.segmentation, `RLE of mask ${i}`);
    assert.equal(got[i].predicted_iou, exp.predicted_iou, `predicted_iou of mask ${i}`);
    assert.equal(got[i].stability_score, exp.stability_score, `stability of mask ${i}`);
    assert.deepEqual(got[i].point_coords, exp.point_coords, `point of mask ${i}`);
    assert.deepEqual(got[i].crop_box, exp.crop_box, `crop box of mask ${i}`);
  });
}

Deno.test("amg-synthetic: logits through predictPoints reproduce the official records", async () => {
  const fixture = await loadSyntheticAmg("amg-synthetic through predictPoints");
  if (!fixture) return;
  assert.deepEqual(fixture.params, {
    pointsPerSide: 16,
    cropNLayers: 1,
    outputMode: "uncompressed_rle",
  });
  const [h, w] = fixture.imageSizeHw!;
  // Batches of 16 points instead of the default 64 keep the logits of one batch at 100 MB
  // (64 points of the whole image would be 415 MB); batching does not change the result.
  const generator = new AutomaticMaskGenerator({ ...fixture.params, pointsPerBatch: 16 });
  const source = new SyntheticMaskSource();
  const progress: number[] = [];
  const records = await generator.generate(
    { width: w, height: h },
    source,
    (p) => progress.push(p.batchesDone / p.batchesTotal),
  ) as MaskRecord<UncompressedRle>[];
  assert.equal(source.imagesSet, 5, "the image and four crops");
  assert.equal(source.pointsPredicted, 5 * 256);
  assert.equal(progress.length, 5 * 16);
  assert.equal(progress.at(-1), 1);
  const expected = fixture.records as MaskRecord<UncompressedRle>[];
  const matchOf = assertRecordsMatch(records, expected, TOLERANCES);
  assertSameOrderAndMasks(records, expected, matchOf);
});

Deno.test("amg-synthetic: predictBatch path (lazy masks, default batch), coco_rle output", async () => {
  const fixture = await loadSyntheticAmg("amg-synthetic through predictBatch");
  if (!fixture) return;
  const [h, w] = fixture.imageSizeHw!;
  const generator = new AutomaticMaskGenerator({ ...fixture.params, outputMode: "coco_rle" });
  assert.equal(generator.params.pointsPerBatch, 64);
  const source = new SyntheticBatchSource();
  const records = await generator.generate({ width: w, height: h }, source);
  // Only masks that pass the filters are read back: far fewer than the 3 per point.
  assert.ok(source.masksRead >= records.length && source.masksRead < source.pointsPredicted);
  const decoded = records.map((r) => ({
    ...r,
    segmentation: cocoDecodeRle(r.segmentation as CocoRle),
  }));
  const expected = fixture.records as MaskRecord<UncompressedRle>[];
  const matchOf = assertRecordsMatch(decoded, expected, TOLERANCES);
  assertSameOrderAndMasks(decoded, expected, matchOf);
});

Deno.test("amg-synthetic image, coarse grid: binary_mask output equals the decoded RLE output", async () => {
  const params = { pointsPerSide: 4, cropNLayers: 1, pointsPerBatch: 5 };
  const image = { width: 900, height: 600 };
  const rle = await new AutomaticMaskGenerator({ ...params, outputMode: "uncompressed_rle" })
    .generate(image, new SyntheticMaskSource());
  const binary = await new AutomaticMaskGenerator(params).generate(
    image,
    new SyntheticMaskSource(),
  );
  assert.ok(rle.length > 0);
  assert.equal(binary.length, rle.length);
  binary.forEach((r, i) => {
    const mask = r.segmentation as Uint8Array;
    assert.deepEqual(mask, rleToMask(rle[i].segmentation as UncompressedRle));
    assert.equal(mask.reduce((a, b) => a + b, 0), r.area);
    assert.deepEqual({ ...r, segmentation: null }, { ...rle[i], segmentation: null });
  });
});
