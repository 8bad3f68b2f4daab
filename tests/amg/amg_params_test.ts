import assert from "node:assert/strict";
import {
  AutomaticMaskGenerator,
  cropImage,
  DEFAULT_AMG_PARAMS,
  officialToAmgParams,
} from "../../src/amg/automatic_mask_generator.ts";
import { parseAmgJson } from "../../src/amg/amg_json.ts";
import { loadSamTinyAmg } from "./fixture_records.ts";

Deno.test("defaults are the official ones", () => {
  const g = new AutomaticMaskGenerator();
  assert.deepEqual(g.params, {
    pointsPerSide: 32,
    pointsPerBatch: 64,
    predIouThresh: 0.88,
    stabilityScoreThresh: 0.95,
    stabilityScoreOffset: 1.0,
    boxNmsThresh: 0.7,
    cropNLayers: 0,
    cropNmsThresh: 0.7,
    cropOverlapRatio: 512 / 1500,
    cropNPointsDownscaleFactor: 1,
    pointGrids: null,
    minMaskRegionArea: 0,
    outputMode: "binary_mask",
  });
  assert.equal(g.pointGrids.length, 1);
  assert.equal(g.pointGrids[0].length, 32 * 32 * 2);
});

Deno.test("sam-tiny amg.json: its params parse into a generator", async () => {
  const amg = await loadSamTinyAmg();
  assert.deepEqual(amg.params, {
    pointsPerSide: 8,
    pointsPerBatch: 32,
    predIouThresh: 0.0,
    stabilityScoreThresh: 0.3,
    boxNmsThresh: 1.0,
    cropNLayers: 0,
    minMaskRegionArea: 20,
    outputMode: "uncompressed_rle",
  });
  assert.deepEqual(amg.imageSizeHw, [107, 160]);
  assert.equal(amg.records.length, 168);
  const g = new AutomaticMaskGenerator(amg.params);
  assert.equal(g.params.stabilityScoreOffset, DEFAULT_AMG_PARAMS.stabilityScoreOffset);
  assert.equal(g.params.cropNmsThresh, 0.7);
  assert.equal(g.pointGrids[0].length, 8 * 8 * 2);
});

Deno.test("official parameter names: mapping, point grids, errors", () => {
  assert.throws(() => officialToAmgParams({ points_per_sid: 4 }), /unknown .* "points_per_sid"/);
  const grids = [[[0.5, 0.5]], [[0.25, 0.25], [0.75, 0.75]]];
  const g = AutomaticMaskGenerator.fromOfficialParams({
    points_per_side: null,
    point_grids: grids,
    crop_n_layers: 1,
  });
  assert.deepEqual(g.pointGrids.map((p) => Array.from(p)), [[0.5, 0.5], [0.25, 0.25, 0.75, 0.75]]);
  // Explicit grids alone are enough (the default of 32 a side yields to them) ...
  assert.equal(
    new AutomaticMaskGenerator({ pointGrids: [new Float64Array(2)] }).pointGrids.length,
    1,
  );
  // ... but not both, nor neither, nor too few grids for the crop layers.
  assert.throws(
    () => new AutomaticMaskGenerator({ pointsPerSide: 4, pointGrids: [new Float64Array(2)] }),
    /exactly one/,
  );
  assert.throws(() => new AutomaticMaskGenerator({ pointsPerSide: null }), /exactly one/);
  assert.throws(
    () => new AutomaticMaskGenerator({ pointGrids: [new Float64Array(2)], cropNLayers: 1 }),
    /1 point grids for 2 crop layers/,
  );
  assert.throws(
    () => AutomaticMaskGenerator.fromOfficialParams({ output_mode: "polygons" }),
    /unknown output mode/,
  );
  assert.throws(() => parseAmgJson({ annotations: [{ area: 1 }] }), /no "segmentation"/);
});

Deno.test("cropImage copies the crop's RGB rows", () => {
  const w = 5, h = 4;
  const data = Uint8Array.from({ length: w * h * 3 }, (_, i) => i);
  const crop = cropImage({ width: w, height: h, data }, [1, 2, 4, 4]);
  assert.equal(crop.width, 3);
  assert.equal(crop.height, 2);
  // Row 2, columns 1-3, then row 3: pixel (y, x) starts at byte (y * 5 + x) * 3.
  const expected = [11, 12, 13, 16, 17, 18].flatMap((p) => [3 * p, 3 * p + 1, 3 * p + 2]);
  assert.deepEqual(Array.from(crop.data!), expected);
  assert.deepEqual(cropImage({ width: w, height: h }, [1, 2, 4, 4]), { width: 3, height: 2 });
  assert.throws(() => cropImage({ width: w, height: h, data: new Uint8Array(5) }, [0, 0, 1, 1]));
});
