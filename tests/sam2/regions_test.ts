import assert from "node:assert/strict";
import { removeSmallRegions } from "../../src/sam2/regions.ts";

Deno.test("removeSmallRegions: fills small 8-connected holes, removes small islands, keeps large ones", () => {
  // 6 x 6 logits: a foreground block with a 1-pixel hole, a diagonal 2-pixel island (one
  // 8-connected region), and a 3-pixel island.
  const rows = [
    "++++..",
    "+.++..",
    "++++..",
    "......",
    "+....+",
    ".+..++",
  ];
  const plane = Float32Array.from(rows.join(""), (c) => (c === "+" ? 5 : -5));
  const changed = removeSmallRegions(plane, 6, 6, 1, 2);
  const out = [...plane].map((v) => (v === 10 ? "H" : v === -10 ? "S" : v > 0 ? "+" : "."));
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5].map((r) => out.slice(6 * r, 6 * r + 6).join("")),
    ["++++..", "+H++..", "++++..", "......", "S....+", ".S..++"],
  );
  assert.equal(changed, 3);
  // Off by default values: nothing changes.
  const copy = Float32Array.from(rows.join(""), (c) => (c === "+" ? 5 : -5));
  assert.equal(removeSmallRegions(copy, 6, 6, 0, 0), 0);
});
