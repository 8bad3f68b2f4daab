/**
 * sam2-tiny's amg.json (SAM2AutomaticMaskGenerator) reproduced end to end: our SAM 2.1
 * encoder and decoder behind ModelMaskSource, min_mask_region_area = 8 applied to each
 * low-res mask in the decoder (holes and islands, 8-connected), no generator-side pass.
 *
 * Acceptance: the same records in the same order (the generator's own order), each mask
 * with mask IoU >= 0.999 to its golden, the same area within 0.1%, predicted IoU and
 * stability within 1e-4. The fixture's thresholds sit in gaps of the candidates' scores
 * (margins 4e-4), so no record may come or go.
 */
import assert from "node:assert/strict";
import { parseAmgJson } from "../../src/amg/amg_json.ts";
import { AutomaticMaskGenerator, type MaskRecord } from "../../src/amg/automatic_mask_generator.ts";
import { ModelMaskSource } from "../../src/amg/model_source.ts";
import { SamModelBackend } from "../../src/amg/sam_backend.ts";
import type { UncompressedRle } from "../../src/amg/rle.ts";
import { fixtureDir, loadGolden } from "../util/fixtures.ts";
import { rleIou } from "../amg/match_records.ts";

Deno.test("sam2-tiny amg.json end to end (SAM2AutomaticMaskGenerator semantics)", async () => {
  const dir = fixtureDir("sam2-tiny")!;
  const fixture = parseAmgJson(await Deno.readTextFile(new URL("amg.json", dir)));
  assert.equal(fixture.params.minMaskRegionArea, 8, "the fixture exercises min_mask_region_area");
  const photo = await loadGolden(dir, "input_image.npy"); // (H, W, 3) uint8
  const [h, w] = photo.shape;
  const backend = await SamModelBackend.load("sam2-tiny");
  let records: MaskRecord<UncompressedRle>[];
  try {
    assert.equal(backend.family, "sam2");
    const generator = new AutomaticMaskGenerator(fixture.params);
    records = await generator.generate(
      { width: w, height: h, data: photo.data as Uint8Array },
      new ModelMaskSource(backend),
    ) as MaskRecord<UncompressedRle>[];
  } finally {
    backend.dispose();
  }
  const expected = fixture.records as MaskRecord<UncompressedRle>[];
  assert.equal(records.length, expected.length, "record count");
  let worstIou = 1, maxScore = 0;
  expected.forEach((e, i) => {
    const g = records[i];
    const iou = rleIou(g.segmentation, e.segmentation);
    worstIou = Math.min(worstIou, iou);
    assert.ok(iou >= 0.999, `record ${i}: mask IoU ${iou}`);
    assert.ok(
      Math.abs(g.area - e.area) <= 0.001 * e.area,
      `record ${i}: area ${g.area} vs ${e.area}`,
    );
    assert.deepEqual(g.point_coords, e.point_coords, `record ${i}: point`);
    for (const key of ["predicted_iou", "stability_score"] as const) {
      const d = Math.abs(g[key] - e[key]);
      maxScore = Math.max(maxScore, d);
      assert.ok(d <= 1e-4, `record ${i}: ${key} ${g[key]} vs ${e[key]}`);
    }
  });
  console.log(
    `${records.length} records in order; worst mask IoU ${worstIou}; largest score difference ${
      maxScore.toExponential(2)
    }`,
  );
});
