/**
 * ModelMaskSource (GPU postprocess, mask_stats, packed read-back) on sam-tiny's amg.json,
 * with the official decoder export (`decoder.onnx`, ONNX Runtime) as the decoder: its
 * low-res logits are uploaded and everything after them runs on our GPU kernels. This checks
 * the model source's GPU path on real decoder output, and the generator's CPU path
 * (predictPoints) on the same logits; the end-to-end test with our own encoder and decoder is
 * amg_sam_tiny_e2e_test.ts.
 */
import assert from "node:assert/strict";
import * as ort from "onnxruntime-web";
import { AutomaticMaskGenerator, type MaskRecord } from "../../src/amg/automatic_mask_generator.ts";
import { maskBatchFromLogits, type MaskSource } from "../../src/amg/mask_source.ts";
import { ModelMaskSource, type SamGpuBackend } from "../../src/amg/model_source.ts";
import { rleToMask, type UncompressedRle } from "../../src/amg/rle.ts";
import { getContext, type GpuContext } from "../../src/gpu/context.ts";
import { type Tensor, tensorFrom } from "../../src/gpu/tensor.ts";
import { fixtureDir, loadGolden } from "../util/fixtures.ts";
import { loadSamTinyAmg } from "./fixture_records.ts";
import { assertRecordsMatch } from "./match_records.ts";

const IMG_SIZE = 256; // sam-tiny's encoder input size
const LOW = IMG_SIZE / 4; // low-res mask side

/** decoder.onnx on the fixture's embedding, one point at a time; results cached by point. */
class OnnxLowResBackend implements SamGpuBackend {
  readonly imgSize = IMG_SIZE;
  /** Per point (image pixels, "x,y"): low-res (3, l, l), IoU (3), full-size logits (3, H, W). */
  readonly byPoint = new Map<
    string,
    { low: Float32Array; iou: Float32Array; full: Float32Array }
  >();
  decodedPoints = 0;

  constructor(
    readonly ctx: GpuContext,
    private readonly session: ort.InferenceSession,
    private readonly embedding: ort.Tensor,
    private readonly photoHw: [number, number],
  ) {}

  setImage(image: { width: number; height: number }): Promise<void> {
    const [h, w] = this.photoHw;
    if (image.width !== w || image.height !== h) throw new Error("only the fixture photo");
    return Promise.resolve();
  }

  async decodePoints(points: Float32Array, n: number) {
    const [h, w] = this.photoHw, plane = h * w;
    // ResizeLongestSide.apply_coords: to the resized frame (longest side IMG_SIZE).
    const scale = IMG_SIZE / Math.max(h, w);
    const newW = Math.trunc(w * scale + 0.5), newH = Math.trunc(h * scale + 0.5);
    const coords = new Float64Array(2 * n);
    for (let i = 0; i < n; i++) {
      coords[2 * i] = points[2 * i] * (newW / w);
      coords[2 * i + 1] = points[2 * i + 1] * (newH / h);
    }
    const low = new Float32Array(n * 3 * LOW * LOW);
    const iou = new Float32Array(n * 3);
    for (let i = 0; i < n; i++) {
      const key = `${points[2 * i]},${points[2 * i + 1]}`;
      let hit = this.byPoint.get(key);
      if (!hit) {
        const out = await this.session.run({
          image_embeddings: this.embedding,
          point_coords: new ort.Tensor(
            "float32",
            Float32Array.from([coords[2 * i], coords[2 * i + 1], 0, 0]),
            [1, 2, 2],
          ),
          point_labels: new ort.Tensor("float32", Float32Array.from([1, -1]), [1, 2]),
          mask_input: new ort.Tensor("float32", new Float32Array(LOW * LOW), [1, 1, LOW, LOW]),
          has_mask_input: new ort.Tensor("float32", Float32Array.from([0]), [1]),
          orig_im_size: new ort.Tensor("float32", Float32Array.from([h, w]), [2]),
        });
        // Planes 1-3 are the multimask outputs (plane 0 is the single-mask one).
        hit = {
          low: (out.low_res_masks.data as Float32Array).slice(LOW * LOW, 4 * LOW * LOW),
          iou: (out.iou_predictions.data as Float32Array).slice(1, 4),
          full: (out.masks.data as Float32Array).slice(plane, 4 * plane),
        };
        this.byPoint.set(key, hit);
        this.decodedPoints++;
      }
      low.set(hit.low, i * 3 * LOW * LOW);
      iou.set(hit.iou, i * 3);
    }
    const lowRes: Tensor = tensorFrom(this.ctx, low, [n, 3, LOW, LOW], "onnx.low_res");
    return { lowRes, iou };
  }
}

Deno.test("sam-tiny amg.json through ModelMaskSource (GPU postprocess + mask_stats), official decoder export", async () => {
  const ctx = await getContext();
  const dir = fixtureDir("sam-tiny")!;
  const fixture = await loadSamTinyAmg();
  const photo = await loadGolden(dir, "input_image.npy"); // (H, W, 3) uint8
  const [h, w] = photo.shape;
  const embedding = await loadGolden(dir, "image_embeddings.npy");
  ort.env.wasm.numThreads = 1;
  const session = await ort.InferenceSession.create(
    await Deno.readFile(new URL("decoder.onnx", dir)),
  );
  const backend = new OnnxLowResBackend(
    ctx,
    session,
    new ort.Tensor("float32", embedding.data as Float32Array, embedding.shape),
    [h, w],
  );
  const generator = new AutomaticMaskGenerator(fixture.params);
  const image = { width: w, height: h, data: photo.data as Uint8Array };
  const records = await generator.generate(image, new ModelMaskSource(backend)) as MaskRecord<
    UncompressedRle
  >[];

  // ONNX Runtime's low-res logits differ from PyTorch's by up to 2e-5 (fixtures README): a
  // pixel whose logit (ONNX's full-size output) is within 2e-4 of the threshold may fall
  // either way; any other difference is a failure.
  let excused = 0;
  const checkMaskDiff = (
    got: MaskRecord<UncompressedRle>,
    expected: MaskRecord<UncompressedRle>,
  ) => {
    const [px, py] = got.point_coords[0];
    const hit = backend.byPoint.get(`${px},${py}`)!;
    const k = hit.iou.indexOf(got.predicted_iou);
    assert.ok(k >= 0, "the record's IoU is one of its point's three");
    const a = rleToMask(got.segmentation), b = rleToMask(expected.segmentation);
    for (let i = 0; i < a.length; i++) {
      if (a[i] === b[i]) continue;
      const logit = hit.full[k * h * w + i];
      assert.ok(Math.abs(logit) <= 2e-4, `pixel ${i} differs with logit ${logit}`);
      excused++;
    }
  };
  assertRecordsMatch(records, fixture.records as MaskRecord<UncompressedRle>[], {
    minIou: 0.99,
    atol: 1e-3,
    checkMaskDiff,
  });
  assert.ok(excused <= 5, `${excused} pixels differ near the threshold`);

  // The chunked path (3 masks of logits at a time, kept masks postprocessed again to bits)
  // gives the same records, bit for bit: same kernels, same inputs (decoder outputs cached).
  const decoded = backend.decodedPoints;
  const chunked = await generator.generate(
    image,
    new ModelMaskSource(backend, { chunkBytes: 3 * h * w * 4 }),
  );
  assert.equal(backend.decodedPoints, decoded, "the second run reuses the decoder outputs");
  assert.deepEqual(chunked, records);

  // The generator's CPU path on the same logits (read back through predictPoints; statistics
  // and masks by maskBatchFromLogits) gives the same records too.
  const gpuSource = new ModelMaskSource(backend);
  const cpuPath: MaskSource = {
    setImage: (im) => gpuSource.setImage(im),
    predictPoints: (points, n) => gpuSource.predictPoints(points, n),
  };
  assert.deepEqual(await generator.generate(image, cpuPath), records, "CPU path");
  await session.release();
});

Deno.test("ModelMaskSource: GPU statistics and masks equal the CPU ones on the same logits", async () => {
  // predictPoints reads back the postprocessed logits; maskBatchFromLogits computes the
  // statistics and masks from them on the CPU (logitMaskStats, thresholdMask). predictBatch
  // must give the same bits: same logits, exact integer counts.
  const ctx = await getContext();
  const [h, w] = [107, 160];
  const n = 6, m = 3, l = 64;
  const backend: SamGpuBackend = {
    ctx,
    imgSize: IMG_SIZE,
    setImage: () => Promise.resolve(),
    decodePoints: (points, count) => {
      // Smooth blobs around each point plus noise, in the low-res frame; exact zeros too.
      const low = new Float32Array(count * m * l * l);
      for (let i = 0; i < count; i++) {
        for (let k = 0; k < m; k++) {
          for (let y = 0; y < l; y++) {
            for (let x = 0; x < l; x++) {
              const dx = x - points[2 * i] * l / w, dy = y - points[2 * i + 1] * l / w;
              const v = (4 + 6 * k) - Math.sqrt(dx * dx + dy * dy) + Math.sin(x * 7 + y * 3);
              low[((i * m + k) * l + y) * l + x] = (x + y) % 17 === 0 ? 0 : v;
            }
          }
        }
      }
      const iou = Float32Array.from({ length: count * m }, (_, j) => 0.5 + j / 100);
      return Promise.resolve({ lowRes: tensorFrom(ctx, low, [count, m, l, l]), iou });
    },
  };
  const source = new ModelMaskSource(backend);
  await source.setImage({ width: w, height: h, data: new Uint8Array(w * h * 3) });
  const points = Float32Array.from([5, 5, 80, 50, 159, 106, 20, 90, 140, 10, 79.5, 53.25]);
  const request = {
    points,
    n,
    maskThreshold: 0,
    predIouThresh: 0,
    stabilityScoreThresh: 0,
    stabilityScoreOffset: 1,
  };
  const cpu = maskBatchFromLogits(await source.predictPoints(points, n), request, h, w);
  const all = [...Array(n * m).keys()];
  for (const chunkBytes of [undefined, 4 * h * w * 4]) {
    const gpuSource = new ModelMaskSource(backend, { chunkBytes });
    await gpuSource.setImage({ width: w, height: h, data: new Uint8Array(w * h * 3) });
    const gpu = await gpuSource.predictBatch(request);
    const label = chunkBytes ? "chunked" : "one chunk";
    assert.deepEqual(Array.from(gpu.stability), Array.from(cpu.stability), `${label}: stability`);
    assert.deepEqual(Array.from(gpu.boxes), Array.from(cpu.boxes), `${label}: boxes`);
    assert.deepEqual(await gpu.readMasks(all), await cpu.readMasks(all), `${label}: masks`);
    gpu.release?.();
  }
});
