/**
 * `deno task segment` on the bundled SAM 2.1 test model (a child process): point2_single's
 * mask equals the golden logits > 0 (at most 0.1% of the pixels may flip) and result.json
 * carries the prompt's object score.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { decodeImage } from "../../src/image.ts";
import { fixtureDir, loadGolden } from "../util/fixtures.ts";
import { runDeno } from "../util/run_deno.ts";

Deno.test("segment CLI on sam2-tiny: the golden mask and the object score in result.json", async () => {
  const dir = fixtureDir("sam2-tiny")!;
  const out = await Deno.makeTempDir();
  try {
    const r = await runDeno(new URL("../../src/cli/segment.ts", import.meta.url), [
      fileURLToPath(new URL("image.png", dir)),
      "--point",
      "88,53.5",
      "--point",
      "32,26.75,0",
      "--model",
      "sam2-tiny",
      "--out",
      out,
    ], { env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp/xdg-runtime" } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr + r.stdout, /WARNING: Running on the bundled sam2-tiny test model/);
    const result = JSON.parse(await Deno.readTextFile(`${out}/result.json`));
    assert.equal(result.model, "sam2-tiny");
    const obj = (await loadGolden(dir, "point2_single_obj_score.npy")).data as Float32Array;
    assert.equal(result.object_scores.length, 1);
    assert.ok(Math.abs(result.object_scores[0] - obj[0]) <= 1e-4);
    const golden = (await loadGolden(dir, "point2_single_masks.npy")).data as Float32Array;
    const png = await decodeImage(await Deno.readFile(`${out}/mask_0_0.png`));
    let differ = 0;
    for (let q = 0; q < golden.length; q++) {
      if ((png.data[png.channels * q] > 127) !== (golden[q] > 0)) differ++;
    }
    assert.ok(differ <= 0.001 * golden.length, `${differ} pixels differ`);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
