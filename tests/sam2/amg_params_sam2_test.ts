import assert from "node:assert/strict";
import { officialToAmgParams } from "../../src/amg/automatic_mask_generator.ts";

Deno.test("SAM2AutomaticMaskGenerator's extra arguments: accepted at the implemented values only", () => {
  assert.deepEqual(
    officialToAmgParams({
      points_per_side: 8,
      mask_threshold: 0.0,
      use_m2m: false,
      multimask_output: true,
    }),
    { pointsPerSide: 8 },
  );
  assert.throws(() => officialToAmgParams({ use_m2m: true }), /"use_m2m" = true is not supported/);
  assert.throws(() => officialToAmgParams({ mask_threshold: 0.5 }), /only 0/);
  assert.throws(() => officialToAmgParams({ multimask_output: false }), /only true/);
});
