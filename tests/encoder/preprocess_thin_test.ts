/**
 * Images too thin for the model's input: ResizeLongestSide would round their short side to
 * 0 px (8000x1 at 256 px, 2049x1 at 1024 px). The shape computation refuses them with a clear
 * RangeError instead of handing the resampler an empty size; the segment CLI says so in one
 * line, without a stack trace.
 */
import assert from "node:assert/strict";
import { Image } from "imagescript";
import { getPreprocessShape, resizeLongestSide } from "../../src/encoder/preprocess.ts";
import { runDeno } from "../util/run_deno.ts";

Deno.test("getPreprocessShape: a short side that rounds to 0 px is a clear RangeError", () => {
  for (
    const [h, w, long] of [[1, 8000, 256], [3000, 1, 256], [1, 2049, 1024], [1, 513, 256]]
  ) {
    assert.throws(
      () => getPreprocessShape(h, w, long),
      (e: unknown) =>
        e instanceof RangeError &&
        e.message.includes(`image ${w}x${h} is too thin`) &&
        e.message.includes(`0 px at the model's ${long} px input`),
      `${w}x${h} at ${long}`,
    );
  }
  // At the limit the short side rounds half up to 1 px, as the official int(x + 0.5).
  assert.deepEqual(getPreprocessShape(1, 2048, 1024), [1, 1024]);
  assert.deepEqual(getPreprocessShape(512, 1, 256), [256, 1]);
  // Sizes that are no image at all.
  assert.throws(() => getPreprocessShape(0, 5, 256), RangeError);
  assert.throws(() => getPreprocessShape(5, NaN, 256), RangeError);
  assert.throws(() => getPreprocessShape(5, 5, 0), RangeError);
});

Deno.test("resizeLongestSide: a too thin image fails with the shape's message, not the resampler's", () => {
  const image = { width: 8000, height: 1, channels: 3 as const, data: new Uint8Array(24000) };
  assert.throws(() => resizeLongestSide(image, 256), /image 8000x1 is too thin/);
  const ok = resizeLongestSide({ ...image, width: 512, data: new Uint8Array(1536) }, 256);
  assert.deepEqual([ok.width, ok.height], [256, 1]);
});

Deno.test({
  name: "segment CLI: a too thin image exits with a one-line message, no stack trace",
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "wgsam-thin-" });
    try {
      const png = new Image(8000, 1);
      png.fill(0x808080ff);
      await Deno.writeFile(`${dir}/thin.png`, await png.encode(1));
      const cli = new URL("../../src/cli/segment.ts", import.meta.url);
      const { code, stderr } = await runDeno(
        cli,
        [`${dir}/thin.png`, "--point", "10,0", "--model", "sam-tiny", "--out", `${dir}/out`],
        { env: { WGSAM_QUIET: "1" } },
      );
      assert.equal(code, 2, stderr);
      assert.match(stderr, /segment: .*thin\.png: image 8000x1 is too thin/);
      assert.doesNotMatch(stderr, /Uncaught|\n\s+at /, "no stack trace");
      assert.throws(() => Deno.statSync(`${dir}/out`), Deno.errors.NotFound, "no output folder");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
