import assert from "node:assert/strict";
import { fixtureDir } from "../util/fixtures.ts";
import { loadStateDict, tensorF32 } from "../../src/weights/load.ts";

Deno.test("pth: a SAM 2 checkpoint ({'model': state_dict}) reads every tensor as state_dict.json lists", async () => {
  const dir = fixtureDir("sam2-tiny")!;
  const sd = await loadStateDict(new URL("sam2-tiny.pt", dir));
  const summary: Record<
    string,
    { shape: number[]; sum: number; abs_sum: number; first: number[] }
  > = JSON.parse(await Deno.readTextFile(new URL("state_dict.json", dir)));
  assert.deepEqual([...sd.keys()], Object.keys(summary), "tensor names and order");
  for (const [name, ref] of Object.entries(summary)) {
    const t = sd.get(name)!;
    assert.deepEqual(t.shape, ref.shape, `${name} shape`);
    const values = tensorF32(t);
    let sum = 0, absSum = 0;
    for (const v of values) {
      sum += v;
      absSum += Math.abs(v);
    }
    // float64 sums in another order than torch's: agree to ~1e-9 of the magnitude.
    const tol = 1e-9 * ref.abs_sum + 1e-12;
    assert.ok(Math.abs(sum - ref.sum) <= tol, `${name} sum ${sum} vs ${ref.sum}`);
    assert.ok(Math.abs(absSum - ref.abs_sum) <= tol, `${name} abs_sum`);
    assert.deepEqual([...values.subarray(0, ref.first.length)], ref.first, `${name} first values`);
  }
});
