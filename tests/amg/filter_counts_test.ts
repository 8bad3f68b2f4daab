/**
 * generateWithCounts says where the candidate masks went: predicted, dropped per filter in the
 * official order, kept; the counts add up, match the records, and name the threshold that
 * emptied a run. (The stand-in source of the amg-synthetic fixture; no fixture files needed.)
 */
import assert from "node:assert/strict";
import {
  AutomaticMaskGenerator,
  describeFilterCounts,
} from "../../src/amg/automatic_mask_generator.ts";
import { SyntheticMaskSource } from "./synthetic_source.ts";

const IMAGE = { width: 450, height: 300 };

Deno.test("AMG filter counts add up and match the records (crops, NMS, small regions)", async () => {
  const params = { pointsPerSide: 4, cropNLayers: 1, pointsPerBatch: 7, minMaskRegionArea: 50 };
  const generator = new AutomaticMaskGenerator(params);
  const { records, counts } = await generator.generateWithCounts(IMAGE, new SyntheticMaskSource());
  // 16 points on the image and 16 on each of the 4 crops of layer 1, 3 masks each.
  assert.equal(counts.candidates, (16 + 4 * 16) * 3);
  const dropped = Object.values(counts.dropped).reduce((a, b) => a + b, 0);
  assert.equal(dropped + counts.kept, counts.candidates, JSON.stringify(counts));
  assert.equal(counts.kept, records.length);
  assert.ok(counts.kept > 0);
  assert.ok(counts.dropped.pred_iou_thresh > 0, "the synthetic IoUs straddle 0.88");
  assert.ok(counts.dropped.crop_nms_thresh + counts.dropped.box_nms_thresh > 0, "duplicates");
  // The same records as generate().
  const plain = await new AutomaticMaskGenerator(params).generate(IMAGE, new SyntheticMaskSource());
  assert.deepEqual(records, plain);
});

Deno.test("AMG filter counts: an empty result names the threshold that emptied it", async () => {
  const generator = new AutomaticMaskGenerator({ pointsPerSide: 3, predIouThresh: 1.5 });
  const { records, counts } = await generator.generateWithCounts(IMAGE, new SyntheticMaskSource());
  assert.equal(records.length, 0);
  assert.deepEqual(counts, {
    candidates: 27,
    dropped: {
      pred_iou_thresh: 27,
      stability_score_thresh: 0,
      near_crop_edge: 0,
      box_nms_thresh: 0,
      crop_nms_thresh: 0,
      min_mask_region_area: 0,
    },
    kept: 0,
  });
  assert.equal(
    describeFilterCounts(counts),
    "27 candidate masks; dropped 27 by pred_iou_thresh; 0 kept",
  );
  // The stability threshold is the next filter: with IoU off, it is the one named.
  const strict = new AutomaticMaskGenerator({
    pointsPerSide: 3,
    predIouThresh: 0,
    stabilityScoreThresh: 1.5,
  });
  const next = await strict.generateWithCounts(IMAGE, new SyntheticMaskSource());
  assert.equal(next.counts.dropped.stability_score_thresh, 27);
  assert.equal(next.counts.dropped.pred_iou_thresh, 0);
});
