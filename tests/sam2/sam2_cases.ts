/**
 * SAM 2.1 fixture prompt cases (fixture.json `prompts`: the keyword arguments of
 * SAM2ImagePredictor.predict, original-image pixels) as decoder prompts, the goldens of
 * each, and the checks shared by the decoder test (features fed from the goldens) and the
 * end-to-end test (features from our encoder).
 *
 * Tolerances, and why: the goldens are float32 torch at 2 threads; torch at 1 thread moves
 * mask logits (|logit| <= 45) by 3e-5, object scores by 1.5e-6 and IoUs by 6e-8, only from
 * the order of float32 sums. Our GPU sums in yet another order (tiled GEMMs, one-pass
 * attention softmax, a 2048-wide MLP in each transformer layer): fed the official features,
 * we measure up to 2.3e-5 on low-res logits, 7e-5 on full-size logits (bilinear from them),
 * 1.4e-6 on object scores, 6e-8 on IoUs. `DECODER_TOL` allows a few times that (logits
 * 2e-4 + 1e-5 |ref|, IoU 1e-5, object score 1e-4); `ENCODER_TOL` is for features from our
 * own encoder, whose float32 error (1e-5 relative, see the encoder tests) the decoder
 * carries into logits of magnitude up to 45. At most 0.1% of the binary mask pixels may flip
 * (logits within tolerance of 0). The single-mask token choice (stability vs 0.98) must
 * match the fixture's exactly: its margins are >= 1.3e-3, several low-res pixels.
 */
import assert from "node:assert/strict";
import type { DecoderPrompt } from "../../src/decoder/transforms.ts";
import type { Sam2DecoderResult } from "../../src/sam2/mask_decoder.ts";
import { assertClose } from "../util/compare.ts";
import { fixtureJson, loadGolden } from "../util/fixtures.ts";

export interface Sam2Case {
  name: string;
  prompts: DecoderPrompt[];
  multimask: boolean;
  /** Per prompt, fixture's dynamic_multimask_fallback (single-mask cases). */
  fallback?: boolean[];
  masks: Float32Array;
  iou: Float32Array;
  lowRes: Float32Array;
  objScore: Float32Array;
}

interface JsonCase {
  point_coords?: [number, number][];
  point_labels?: number[];
  box?: [number, number, number, number] | [number, number, number, number][];
  mask_input?: string;
  multimask_output: boolean;
  dynamic_multimask_fallback?: boolean[];
}

export async function loadSam2Cases(dir: URL): Promise<{
  cases: Sam2Case[];
  imageSizeHw: [number, number];
  imgSize: number;
}> {
  const json = await fixtureJson(dir);
  const cases: Sam2Case[] = [];
  for (const [name, c] of Object.entries(json.prompts as Record<string, JsonCase>)) {
    let prompts: DecoderPrompt[];
    if (c.box && Array.isArray(c.box[0])) {
      // boxes_batch: box of shape (3, 4), one prompt per box.
      prompts = (c.box as [number, number, number, number][]).map((box) => ({ box }));
    } else {
      const p: DecoderPrompt = {};
      if (c.point_coords) {
        p.points = c.point_coords;
        p.labels = c.point_labels;
      }
      if (c.box) p.box = c.box as [number, number, number, number];
      if (c.mask_input) p.maskInput = (await loadGolden(dir, c.mask_input)).data as Float32Array;
      prompts = [p];
    }
    const g = async (suffix: string) =>
      (await loadGolden(dir, `${name}_${suffix}.npy`)).data as Float32Array;
    cases.push({
      name,
      prompts: prompts.map((p) => ({ ...p, multimask: c.multimask_output })),
      multimask: c.multimask_output,
      fallback: c.dynamic_multimask_fallback,
      masks: await g("masks"),
      iou: await g("iou"),
      lowRes: await g("low_res"),
      objScore: await g("obj_score"),
    });
  }
  return { cases, imageSizeHw: json.image_size_hw, imgSize: json.architecture.image_size };
}

export interface Sam2Tolerance {
  logitAtol: number;
  logitRtol: number;
  iou: number;
  obj: number;
}
export const DECODER_TOL: Sam2Tolerance = {
  logitAtol: 2e-4,
  logitRtol: 1e-5,
  iou: 1e-5,
  obj: 1e-4,
};
export const ENCODER_TOL: Sam2Tolerance = {
  logitAtol: 2e-3,
  logitRtol: 1e-4,
  iou: 1e-4,
  obj: 1e-3,
};

/** One prompt's result against its case's goldens (prompt `b`); returns a one-line report. */
export function checkSam2Result(
  label: string,
  r: Sam2DecoderResult,
  c: Sam2Case,
  b: number,
  hw: readonly [number, number],
  low: number,
  tol: Sam2Tolerance = DECODER_TOL,
): string {
  const [h, w] = hw;
  const C = c.multimask ? 3 : 1;
  assert.equal(r.count, C, `${label}: mask count`);
  if (c.fallback) {
    assert.equal(r.tokens[0] !== 0, c.fallback[b], `${label}: dynamic multimask fallback`);
  }
  const lowRep = assertClose(
    r.lowRes,
    c.lowRes.subarray(b * C * low * low, (b + 1) * C * low * low),
    {
      atol: tol.logitAtol,
      rtol: tol.logitRtol,
      shape: [C, low, low],
      label: `${label} low-res logits`,
    },
  );
  const iouRep = assertClose(r.iou, c.iou.subarray(b * C, (b + 1) * C), {
    atol: tol.iou,
    label: `${label} IoU`,
  });
  const objRep = assertClose([r.objScore], [c.objScore[b]], {
    atol: tol.obj,
    label: `${label} object score`,
  });
  const ref = c.masks.subarray(b * C * h * w, (b + 1) * C * h * w);
  const logitRep = assertClose(r.logits!, ref, {
    atol: tol.logitAtol,
    rtol: tol.logitRtol,
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
  }, obj ${objRep.maxAbs.toExponential(1)}, logits ${
    logitRep.maxAbs.toExponential(1)
  }; ${differ} mask pixels differ; tokens ${r.tokens}`;
}
