/**
 * Random prompts of our own (points, boxes, mixtures, with and without a mask input, single
 * and multimask), in one batched call, against ONNX Runtime running the fixture's official
 * exports: `decoder.onnx` (all four mask tokens: plane 0 single-mask, 1-3 multimask) and
 * `decoder_single.onnx` (the web demo's choice of one mask).
 */
import assert from "node:assert/strict";
import * as ort from "onnxruntime-web";
import type { DecoderPrompt, DecoderResult } from "../../src/decoder/mask_decoder.ts";
import { preprocessShape } from "../../src/decoder/transforms.ts";
import { emptyTensor, type Tensor } from "../../src/gpu/tensor.ts";
import { assertClose } from "../util/compare.ts";
import { fixtureDir, fixtureJson, loadGolden, skipIfMissing } from "../util/fixtures.ts";
import { openDecoder } from "./decoder_fixture_check.ts";

/** mulberry32 in [0, 1). */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Prompts covering every kind: 1-3 points, box, box + points, each with/without a mask. */
function randomPrompts(seed: number, h: number, w: number, mask: Float32Array): DecoderPrompt[] {
  const r = rng(seed);
  const pt = (): [number, number] => [r() * w, r() * h];
  const box = (): [number, number, number, number] => {
    const [x0, y0] = pt(), [x1, y1] = pt();
    return [Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1)];
  };
  const labels = (n: number) => Array.from({ length: n }, () => (r() < 0.7 ? 1 : 0));
  return [
    { points: [pt()], labels: [1] },
    { points: [pt(), pt()], labels: labels(2) },
    { points: [pt(), pt(), pt()], labels: labels(3) },
    { box: box() },
    { box: box(), points: [pt()], labels: [0] },
    { box: box(), points: [pt(), pt()], labels: labels(2) },
    { points: [pt()], labels: [1], maskInput: mask },
    { box: box(), maskInput: mask },
    { points: [pt()], labels: [1] }, // same token count as the first: shares its pass
  ];
}

/** The ONNX inputs of a prompt: coords in the resized frame, pad / box-corner labels. */
function onnxFeeds(
  p: DecoderPrompt,
  hw: [number, number],
  imgSize: number,
  embedding: ort.Tensor,
  lowSide: number,
): Record<string, ort.Tensor> {
  const [h, w] = hw;
  const [nh, nw] = preprocessShape(h, w, imgSize);
  const coords: number[] = [], labels: number[] = [];
  (p.points ?? []).forEach(([x, y], i) => {
    coords.push(x * (nw / w), y * (nh / h));
    labels.push(p.labels![i]);
  });
  if (p.box) {
    const b = p.box;
    coords.push(b[0] * (nw / w), b[1] * (nh / h), b[2] * (nw / w), b[3] * (nh / h));
    labels.push(2, 3);
  } else {
    coords.push(0, 0);
    labels.push(-1);
  }
  const n = labels.length;
  return {
    image_embeddings: embedding,
    point_coords: new ort.Tensor("float32", Float32Array.from(coords), [1, n, 2]),
    point_labels: new ort.Tensor("float32", Float32Array.from(labels), [1, n]),
    mask_input: new ort.Tensor(
      "float32",
      p.maskInput ?? new Float32Array(lowSide * lowSide),
      [1, 1, lowSide, lowSide],
    ),
    has_mask_input: new ort.Tensor("float32", Float32Array.from([p.maskInput ? 1 : 0]), [1]),
    orig_im_size: new ort.Tensor("float32", Float32Array.from(hw), [2]),
  };
}

function compare(
  label: string,
  got: DecoderResult,
  ref: { lowRes: Float32Array; iou: Float32Array; masks: Float32Array },
  hw: [number, number],
  low: number,
) {
  const [h, w] = hw, C = got.count;
  assertClose(got.lowRes, ref.lowRes, {
    atol: 1e-3,
    shape: [C, low, low],
    label: `${label} low-res`,
  });
  assertClose(got.iou, ref.iou, { atol: 1e-3, label: `${label} IoU` });
  assertClose(got.logits!, ref.masks, { atol: 5e-3, shape: [C, h, w], label: `${label} logits` });
  let differ = 0;
  got.masks!.forEach((m, k) => {
    for (let q = 0; q < h * w; q++) if (m[q] !== (ref.masks[k * h * w + q] > 0 ? 1 : 0)) differ++;
  });
  assert.ok(differ <= 0.001 * C * h * w, `${label}: ${differ} mask pixels differ`);
}

async function checkAgainstOnnx(
  name: string,
  seed: number,
  opts: { only?: number[]; secondPass: boolean },
) {
  const { only, secondPass } = opts;
  const dir = fixtureDir(name);
  if (skipIfMissing(dir, `${name} decoder vs ONNX`)) return;
  const { decoder, embedding, arch } = await openDecoder(dir!, name);
  const json = await fixtureJson(dir!);
  const hw = json.image_size_hw as [number, number];
  const emb = await loadGolden(dir!, "image_embeddings.npy");
  const embOrt = new ort.Tensor("float32", emb.data as Float32Array, emb.shape);
  const mask = (await loadGolden(dir!, "mask_refine_mask_input.npy")).data as Float32Array;
  const low = decoder.lowResSize;
  let prompts = randomPrompts(seed, hw[0], hw[1], mask);
  if (only) prompts = only.map((i) => prompts[i]);
  ort.env.wasm.numThreads = 1;
  const all = await ort.InferenceSession.create(await Deno.readFile(new URL("decoder.onnx", dir!)));
  const single = await ort.InferenceSession.create(
    await Deno.readFile(new URL("decoder_single.onnx", dir!)),
  );
  try {
    const ours = await decoder.predict(embedding, prompts, {
      originalSize: hw,
      output: "both",
      allTokens: true,
    });
    // decoder_single picks plane 0 when it has more than 2.5 point inputs (pads and box
    // corners included), else the best of planes 1-3 by IoU: multimask then argmax.
    const feeds = prompts.map((p) => onnxFeeds(p, hw, arch.imgSize, embOrt, low));
    const singleMode = feeds.map((f) => f.point_coords.dims[1] <= 2);
    // A second batched call with per-prompt multimask (mixed groups), or, where a pass is
    // expensive (sam-mini), the same selection made from the four planes of the first call.
    const [h, w] = hw;
    const oursSingle = secondPass
      ? await decoder.predict(
        embedding,
        prompts.map((p, i) => ({ ...p, multimask: singleMode[i] })),
        { originalSize: hw, output: "both" },
      )
      : ours.map((r, i): DecoderResult => {
        const [a, n] = singleMode[i] ? [1, 3] : [0, 1];
        return {
          count: n,
          lowRes: r.lowRes.slice(a * low * low, (a + n) * low * low),
          iou: r.iou.slice(a, a + n),
          logits: r.logits!.slice(a * h * w, (a + n) * h * w),
          masks: r.masks!.slice(a, a + n),
        };
      });
    for (let i = 0; i < prompts.length; i++) {
      const out = await all.run(feeds[i]);
      compare(
        `${name} random prompt ${i} (4 planes)`,
        ours[i],
        {
          lowRes: out.low_res_masks.data as Float32Array,
          iou: out.iou_predictions.data as Float32Array,
          masks: out.masks.data as Float32Array,
        },
        hw,
        low,
      );
      const o1 = await single.run(feeds[i]);
      const mine = oursSingle[i];
      const k = singleMode[i] ? mine.iou.indexOf(Math.max(...mine.iou)) : 0;
      compare(
        `${name} random prompt ${i} (decoder_single)`,
        {
          count: 1,
          lowRes: mine.lowRes.subarray(k * low * low, (k + 1) * low * low),
          iou: mine.iou.subarray(k, k + 1),
          logits: mine.logits!.subarray(k * h * w, (k + 1) * h * w),
          masks: [mine.masks![k]],
        },
        {
          lowRes: o1.low_res_masks.data as Float32Array,
          iou: o1.iou_predictions.data as Float32Array,
          masks: o1.masks.data as Float32Array,
        },
        hw,
        low,
      );
    }
  } finally {
    await all.release();
    await single.release();
    decoder.dispose();
    (embedding as Tensor).destroy();
  }
}

Deno.test("sam-tiny decoder matches decoder.onnx and decoder_single.onnx on 9 random prompts in one batch", async () => {
  await checkAgainstOnnx("sam-tiny", 2024, { secondPass: true });
});

Deno.test("sam-mini decoder (width 256) matches the ONNX exports on a box + two points prompt", async () => {
  // One prompt only: sam-mini costs about 3.5 GFLOP a prompt (llvmpipe: seconds each).
  await checkAgainstOnnx("sam-mini", 77, { only: [5], secondPass: false });
});

Deno.test("a mask-only prompt and an empty prompt run with no sparse tokens, as SamPredictor allows", async () => {
  const dir = fixtureDir("sam-tiny")!;
  const { decoder, embedding } = await openDecoder(dir, "sam-tiny");
  const mask = (await loadGolden(dir, "mask_refine_mask_input.npy")).data as Float32Array;
  try {
    const [withMask, empty] = await decoder.predict(embedding, [{ maskInput: mask }, {}], {
      originalSize: [107, 160],
      multimask: true,
    });
    for (const r of [withMask, empty]) {
      assert.equal(r.count, 3);
      assert.equal(r.lowRes.length, 3 * 64 * 64);
      assert.ok(r.lowRes.every(Number.isFinite) && r.iou.every(Number.isFinite));
      assert.equal(r.masks!.length, 3);
    }
    // The mask prompt changes the answer.
    assert.ok(withMask.lowRes.some((v, i) => Math.abs(v - empty.lowRes[i]) > 1e-3));
  } finally {
    decoder.dispose();
    embedding.destroy();
  }
});

Deno.test("lowResOut keeps the low-res logits on the GPU in prompt order across passes", async () => {
  const { ctx, decoder, embedding } = await openDecoder(fixtureDir("sam-tiny")!, "sam-tiny");
  // Token counts 2, 3, 2, 4: three groups, so passes finish out of prompt order.
  const prompts: DecoderPrompt[] = [
    { points: [[20, 30]], labels: [1] },
    { points: [[50, 60], [70, 10]], labels: [1, 0] },
    { points: [[100, 90]], labels: [1] },
    { box: [10, 10, 90, 80], points: [[40, 40], [60, 50]], labels: [1, 1] },
  ];
  const opts = { originalSize: [107, 160] as [number, number], multimask: true };
  const out = emptyTensor(ctx, [4, 3, 64, 64], "low_res_out");
  try {
    const host = await decoder.predict(embedding, prompts, { ...opts, output: "none" });
    const kept = await decoder.predict(embedding, prompts, {
      ...opts,
      output: "none",
      lowResOut: out,
    });
    const gpu = await out.read();
    host.forEach((r, i) => {
      assert.equal(kept[i].lowRes.length, 0);
      assert.deepEqual(kept[i].iou, r.iou);
      assertClose(gpu.subarray(i * 3 * 4096, (i + 1) * 3 * 4096), r.lowRes, {
        atol: 0,
        label: `prompt ${i} low-res`,
      });
    });
    await assert.rejects(
      () =>
        decoder.predict(embedding, [{ box: [1, 1, 9, 9] }, prompts[0]], {
          ...opts,
          multimask: undefined,
          lowResOut: out,
        }),
      /same number of masks/,
    );
  } finally {
    out.destroy();
    decoder.dispose();
    embedding.destroy();
  }
});

Deno.test("decoder refuses bad prompts with clear errors", async () => {
  const { decoder, embedding } = await openDecoder(fixtureDir("sam-tiny")!, "sam-tiny");
  const bad = async (p: DecoderPrompt, re: RegExp) =>
    await assert.rejects(
      () =>
        decoder.predict(embedding, [{ points: [[1, 1]], labels: [1] }, p], {
          originalSize: [107, 160],
        }),
      re,
    );
  try {
    await bad({ points: [[NaN, 3]], labels: [1] }, /prompt 1 point 0 must be two finite numbers/);
    await bad({ points: [[3, Infinity]], labels: [1] }, /finite/);
    await bad({ points: [[3, 4]], labels: [2] }, /label 0 is 2/);
    await bad({ points: [[3, 4]], labels: [] }, /1 points and 0 labels/);
    await bad({ box: [0, 0, 5, NaN] }, /box must be four finite numbers/);
    await bad({ box: [0, 0, 5] as unknown as [number, number, number, number] }, /box/);
    await bad({ maskInput: new Float32Array(10) }, /maskInput must be a Float32Array of 64x64/);
    const m = new Float32Array(64 * 64);
    m[7] = NaN;
    await bad({ maskInput: m }, /maskInput\[7\] is NaN/);
    await assert.rejects(
      () => decoder.predict(embedding, [{ box: [0, 0, 1, 1] }], { originalSize: [0, 5] }),
      /original size/,
    );
  } finally {
    decoder.dispose();
    embedding.destroy();
  }
});
