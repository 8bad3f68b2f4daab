/**
 * The SAM 2.1 prompt encoder and mask decoder on sam2-tiny, fed the features the official
 * predictor keeps (image_embed, high_res_feats_0/1 goldens), against every prompt case.
 * Tolerances: see sam2_cases.ts.
 */
import assert from "node:assert/strict";
import { getContext } from "../../src/gpu/context.ts";
import { emptyTensor, tensorFrom } from "../../src/gpu/tensor.ts";
import { Sam2Decoder, type Sam2Features } from "../../src/sam2/mask_decoder.ts";
import { sam2HintsFromFixture } from "../../src/sam2/arch.ts";
import { loadSam2 } from "../../src/sam2/load.ts";
import { assertClose } from "../util/compare.ts";
import { fixtureDir, fixtureJson, loadGolden } from "../util/fixtures.ts";
import { checkSam2Case, loadSam2Cases } from "./sam2_cases.ts";

const dir = fixtureDir("sam2-tiny")!;

export async function openSam2Decoder(dir: URL, checkpoint: string) {
  const ctx = await getContext();
  const hints = sam2HintsFromFixture((await fixtureJson(dir)).architecture);
  const { sd, arch } = await loadSam2(new URL(checkpoint, dir), hints);
  const decoder = Sam2Decoder.create(ctx, sd, arch);
  const up = async (name: string) => {
    const g = await loadGolden(dir, `${name}.npy`);
    return tensorFrom(ctx, g.data as Float32Array, g.shape, name);
  };
  const features: Sam2Features = {
    imageEmbed: await up("image_embed"),
    highRes0: await up("high_res_feats_0"),
    highRes1: await up("high_res_feats_1"),
  };
  const close = () => {
    decoder.dispose();
    for (const t of Object.values(features)) t.destroy();
  };
  return { ctx, decoder, features, close };
}

Deno.test("sam2-tiny decoder: sizes as fixture.json lists them", async () => {
  const { decoder, close } = await openSam2Decoder(dir, "sam2-tiny.pt");
  try {
    const a = decoder.arch.decoder;
    assert.deepEqual(
      [decoder.arch.imgSize, decoder.dim, a.mlpDim, a.numHeads, a.iouHeadHiddenDim],
      [256, 32, 2048, 8, 256],
    );
    assert.equal(a.numMultimaskOutputs, 3);
    assert.equal(a.objScoreHeadDepth, 3);
    assert.equal(decoder.lowResSize, 64);
  } finally {
    close();
  }
});

Deno.test("sam2-tiny prompt encoder: image_pe, point1 sparse and dense embeddings within 1e-5", async () => {
  const { decoder, close } = await openSam2Decoder(dir, "sam2-tiny.pt");
  try {
    const { cases, imageSizeHw } = await loadSam2Cases(dir);
    // Computed on the CPU in float32 as torch does: only sin / cos rounding differs.
    const pe = await loadGolden(dir, "image_pe.npy");
    assertClose(decoder.promptEncoder.densePe(), pe.data as Float32Array, {
      atol: 1e-5,
      shape: pe.shape,
      label: "image_pe",
    });
    const point1 = cases.find((c) => c.name === "point1_multi")!.prompts[0];
    const sparse = await loadGolden(dir, "point1_sparse_embeddings.npy");
    assert.deepEqual(sparse.shape, [1, 2, 32]);
    assertClose(decoder.sparseEmbeddings(point1, imageSizeHw), sparse.data as Float32Array, {
      atol: 1e-5,
      shape: sparse.shape,
      label: "point1_sparse_embeddings",
    });
    const dense = await loadGolden(dir, "point1_dense_embeddings.npy");
    const [, D, s] = dense.shape;
    const noMask = decoder.promptEncoder.noMaskEmbed;
    const expanded = new Float32Array(D * s * s);
    for (let c = 0; c < D; c++) expanded.fill(noMask[c], c * s * s, (c + 1) * s * s);
    assertClose(expanded, dense.data as Float32Array, { atol: 0, label: "point1_dense" });
  } finally {
    close();
  }
});

Deno.test("sam2-tiny decoder: every prompt case (masks, IoU, low-res, object score) matches", async () => {
  const { decoder, features, close } = await openSam2Decoder(dir, "sam2-tiny.pt");
  const { cases, imageSizeHw } = await loadSam2Cases(dir);
  try {
    for (const c of cases) {
      const results = await decoder.predict(features, c.prompts, {
        originalSize: imageSizeHw,
        output: "both",
      });
      console.log(checkSam2Case(c, results, imageSizeHw, decoder.lowResSize));
    }
  } finally {
    close();
  }
});

Deno.test("sam2-tiny decoder: lowResOut (chosen tokens copied on the GPU) and reuseImage=false agree with the goldens", async () => {
  const { ctx, decoder, features, close } = await openSam2Decoder(dir, "sam2-tiny.pt");
  const { cases, imageSizeHw } = await loadSam2Cases(dir);
  try {
    // boxes_batch: single-mask outputs, two of which fall back to a multimask token.
    const c = cases.find((x) => x.name === "boxes_batch")!;
    const low = decoder.lowResSize;
    const out = emptyTensor(ctx, [3, 1, low, low], "test.low_res_out");
    try {
      const results = await decoder.predict(features, c.prompts, {
        originalSize: imageSizeHw,
        output: "none",
        lowResOut: out,
        reuseImage: false,
      });
      assert.deepEqual(results.map((r) => r.tokens[0] !== 0), c.fallback);
      // lowResOut holds the unclamped logits: clamped, they are the predictor's low_res.
      const got = (await out.read()).map((v) => Math.min(32, Math.max(-32, v)));
      assertClose(got, c.lowRes!, { atol: 2e-4, rtol: 1e-5, label: "boxes_batch lowResOut" });
      assert.ok(results.every((r) => r.lowRes.length === 0), "results carry no low-res copy");
    } finally {
      out.destroy();
    }
  } finally {
    close();
  }
});
