/**
 * Detect-then-segment with the real predictor on sam-tiny (GPU) and the fixture stand-in
 * detector on sam-tiny's photo (160 x 107): the three detections' masks from the one
 * batched box pass must be what the same boxes give as direct single box prompts
 * (`predict`), and close to the official decoder export (ONNX Runtime on the fixture's
 * official embedding, plane 0 = the single-mask output) as an independent oracle.
 */
import assert from "node:assert/strict";
// The detector's ONNX Runtime build, so its wasm is compiled once for both sessions.
import * as ort from "onnxruntime-web/webgpu";
import { SamModel, SamPredictor } from "../../src/predictor.ts";
import { cocoDecodeRle, rleToMask } from "../../src/amg/rle.ts";
import { type BoxPredictor, detectAndSegment } from "../../src/detect/detect_segment.ts";
import { Detector } from "../../src/detect/detector.ts";
import { readImageFile } from "../../src/image.ts";
import type { Prediction } from "../../src/types.ts";
import { assertClose } from "../util/compare.ts";
import { fixtureDir, loadGolden, sharedFixture, skipIfMissing } from "../util/fixtures.ts";

const IMG_SIZE = 256; // sam-tiny's encoder input

/** Intersection over union of two binary masks. */
function maskIou(a: Uint8Array, b: Uint8Array): number {
  let inter = 0, union = 0;
  for (let i = 0; i < a.length; i++) {
    inter += a[i] & b[i];
    union += a[i] | b[i];
  }
  return union ? inter / union : 1;
}

Deno.test({
  name:
    "sam-tiny: detect-then-segment masks = direct box prompts (and the official decoder export)",
  sanitizeResources: false, // the GPU device lives for the process
  sanitizeOps: false,
  fn: async () => {
    const detectorFile = sharedFixture("detector/yolo_nas_raw.onnx");
    if (skipIfMissing(detectorFile, "detector fixtures")) return;
    const dir = fixtureDir("sam-tiny")!;
    const image = await readImageFile(new URL("image.png", dir));
    const detector = await Detector.load(detectorFile!.pathname, { executionProvider: "wasm" });
    const model = await SamModel.load("sam-tiny", { quiet: true });
    const predictor = new SamPredictor(model);
    try {
      // The batched pass, asking for logits so that near-threshold pixels can be told apart.
      const batched: Prediction[] = [];
      const withLogits: BoxPredictor = {
        setImage: (img) => predictor.setImage(img),
        predictBatch: async (prompts) => {
          const out = await predictor.predictBatch(prompts, { returnLogits: true });
          batched.push(...out);
          return out;
        },
      };
      const result = await detectAndSegment(image, detector, withLogits);
      assert.deepEqual(result.annotations.map((a) => a.category_name), ["dog", "car", "person"]);
      assert.equal(batched.length, 3);
      const { width: w, height: h } = image;
      for (const [i, det] of result.detections.entries()) {
        const direct = await predictor.predict({ box: det.box, multimask: false }, {
          returnLogits: true,
        });
        assert.equal(direct.masks.length, 1);
        // Same logits up to float rounding of a batched vs single decoder pass.
        assertClose(batched[i].logits!, direct.logits!, {
          atol: 1e-4,
          rtol: 1e-4,
          label: `${det.className} logits, batched vs direct`,
        });
        assertClose(batched[i].scores, direct.scores, { atol: 1e-5, label: "IoU prediction" });
        // Masks equal except where a logit is within that rounding of the threshold.
        const fromRle = rleToMask(cocoDecodeRle(result.annotations[i].segmentation));
        assert.deepEqual(fromRle, result.masks[i], "the annotation's RLE is the mask");
        let excused = 0;
        for (let p = 0; p < w * h; p++) {
          if (fromRle[p] === direct.masks[0][p]) continue;
          assert.ok(Math.abs(direct.logits![p]) <= 1e-4, `${det.className}: pixel ${p} differs`);
          excused++;
        }
        assert.ok(excused <= 3, `${det.className}: ${excused} pixels differ near the threshold`);
        assert.equal(result.annotations[i].area, fromRle.reduce((s, v) => s + v, 0));
      }

      // Oracle: the official decoder export on the official embedding, box corners as
      // labels 2 and 3 in the resized frame (ResizeLongestSide.apply_boxes), plane 0.
      const session = await ort.InferenceSession.create(
        await Deno.readFile(new URL("decoder.onnx", dir)),
        { executionProviders: ["wasm"] },
      );
      const embedding = await loadGolden(dir, "image_embeddings.npy");
      const scale = IMG_SIZE / Math.max(h, w);
      const newW = Math.trunc(w * scale + 0.5), newH = Math.trunc(h * scale + 0.5);
      for (const [i, det] of result.detections.entries()) {
        const [x0, y0, x1, y1] = det.box;
        const sx = newW / w, sy = newH / h;
        const out = await session.run({
          image_embeddings: new ort.Tensor(
            "float32",
            embedding.data as Float32Array,
            embedding.shape,
          ),
          point_coords: new ort.Tensor(
            "float32",
            Float32Array.of(x0 * sx, y0 * sy, x1 * sx, y1 * sy),
            [1, 2, 2],
          ),
          point_labels: new ort.Tensor("float32", Float32Array.of(2, 3), [1, 2]),
          mask_input: new ort.Tensor("float32", new Float32Array((IMG_SIZE / 4) ** 2), [
            1,
            1,
            64,
            64,
          ]),
          has_mask_input: new ort.Tensor("float32", Float32Array.of(0), [1]),
          orig_im_size: new ort.Tensor("float32", Float32Array.of(h, w), [2]),
        });
        const logits = (out.masks.data as Float32Array).subarray(0, w * h); // plane 0
        const oracle = Uint8Array.from(logits, (v) => (v > 0 ? 1 : 0));
        const iou = maskIou(result.masks[i], oracle);
        assert.ok(iou >= 0.99, `${det.className}: mask IoU with the official export ${iou}`);
      }
      await session.release();
    } finally {
      predictor.dispose();
      model.dispose();
      await detector.dispose();
    }
  },
});
