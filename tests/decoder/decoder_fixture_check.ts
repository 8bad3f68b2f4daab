/**
 * Shared checks of the decoder against a fixture (sam-tiny, sam-mini): the prompt encoder's
 * goldens and every prompt case of fixture.json.
 */
import assert from "node:assert/strict";
import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { type DecoderResult, SamDecoder } from "../../src/decoder/mask_decoder.ts";
import { loadSam } from "../../src/weights/load.ts";
import { assertClose } from "../util/compare.ts";
import { loadGolden } from "../util/fixtures.ts";
import { toFramePrompt } from "../../src/decoder/transforms.ts";
import { type FixtureCase, loadFixtureCases } from "./fixture_cases.ts";

export async function openDecoder(dir: URL, name: string) {
  const ctx = await getContext();
  const { sd, arch } = await loadSam(new URL(`${name}.pth`, dir));
  const decoder = SamDecoder.create(ctx, sd, arch);
  const emb = await loadGolden(dir, "image_embeddings.npy");
  const embedding = tensorFrom(ctx, emb.data as Float32Array, emb.shape, "image_embeddings");
  return { ctx, decoder, embedding, arch };
}

export async function checkPromptEncoderGoldens(
  dir: URL,
  decoder: SamDecoder,
  hw: [number, number],
) {
  const pe = await loadGolden(dir, "image_pe.npy");
  assertClose(decoder.promptEncoder.densePe(), pe.data as Float32Array, {
    atol: 1e-4,
    shape: pe.shape,
    label: "image_pe",
  });
  // point1_multi: its point and the padding point.
  const { cases } = await loadFixtureCases(dir);
  const point1 = cases.find((c) => c.name === "point1_multi")!.prompts[0];
  const frame = toFramePrompt(point1, hw, decoder.arch.imgSize, decoder.lowResSize);
  const sparse = await loadGolden(dir, "point1_sparse_embeddings.npy");
  assertClose(decoder.promptEncoder.sparse(frame), sparse.data as Float32Array, {
    atol: 1e-4,
    shape: sparse.shape,
    label: "point1_sparse_embeddings",
  });
  const dense = await loadGolden(dir, "point1_dense_embeddings.npy");
  const [, D, s] = dense.shape;
  const noMask = decoder.promptEncoder.noMaskEmbed;
  const expanded = new Float32Array(D * s * s);
  for (let c = 0; c < D; c++) expanded.fill(noMask[c], c * s * s, (c + 1) * s * s);
  assertClose(expanded, dense.data as Float32Array, { atol: 1e-4, label: "point1_dense" });
}

/**
 * One prompt's result against its case's goldens (prompt `b` of the case): low-res logits,
 * IoU (1e-3), logits (5e-3), masks (0.1%). Returns a one-line report.
 */
export function checkCaseResult(
  label: string,
  r: DecoderResult,
  c: FixtureCase,
  b: number,
  hw: readonly [number, number],
  low: number,
): string {
  const [h, w] = hw;
  const C = c.multimask ? 3 : 1;
  assert.equal(r.count, C, `${label}: mask count`);
  const lowRep = assertClose(
    r.lowRes,
    c.lowRes.subarray(b * C * low * low, (b + 1) * C * low * low),
    {
      atol: 1e-3,
      shape: [C, low, low],
      label: `${label} low-res logits`,
    },
  );
  const iouRep = assertClose(r.iou, c.iou.subarray(b * C, (b + 1) * C), {
    atol: 1e-3,
    label: `${label} IoU`,
  });
  const ref = c.masks.subarray(b * C * h * w, (b + 1) * C * h * w);
  const logitRep = assertClose(r.logits!, ref, {
    atol: 5e-3,
    shape: [C, h, w],
    label: `${label} logits`,
  });
  let differ = 0;
  r.masks!.forEach((m, k) => {
    for (let q = 0; q < h * w; q++) if (m[q] !== (ref[k * h * w + q] > 0 ? 1 : 0)) differ++;
  });
  assert.ok(differ <= 0.001 * C * h * w, `${label}: ${differ} mask pixels differ`);
  return `${label}: max abs low-res ${lowRep.maxAbs.toExponential(1)}, IoU ${
    iouRep.maxAbs.toExponential(1)
  }, logits ${logitRep.maxAbs.toExponential(1)}; ${differ} mask pixels differ`;
}

/**
 * Every fixture.json prompt case (or those named in `only`): low-res logits, IoU (1e-3),
 * logits (5e-3), masks (0.1%).
 */
export async function checkFixtureCases(dir: URL, name: string, only?: readonly string[]) {
  const { decoder, embedding } = await openDecoder(dir, name);
  const { cases: all, imageSizeHw } = await loadFixtureCases(dir);
  const cases = only ? all.filter((c) => only.includes(c.name)) : all;
  const [h, w] = imageSizeHw;
  try {
    assert.equal(
      cases.length,
      only?.length ?? all.length,
      `${name}: cases ${only} in fixture.json`,
    );
    for (const c of cases) {
      const t0 = performance.now();
      const results = await decoder.predict(embedding, c.prompts, {
        multimask: c.multimask,
        originalSize: [h, w],
        output: "both",
      });
      results.forEach((r, b) => {
        const label = `${name} ${c.name}[${b}]`;
        console.log(checkCaseResult(label, r, c, b, imageSizeHw, decoder.lowResSize));
      });
      console.log(`${name} ${c.name}: ok (${(performance.now() - t0).toFixed(0)} ms)`);
    }
  } finally {
    decoder.dispose();
    embedding.destroy();
  }
}
