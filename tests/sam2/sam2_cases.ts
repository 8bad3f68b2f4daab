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
 * 2e-4 + 1e-5 |ref|, IoU 1e-5, object score 1e-4). `ENCODER_TOL` is for features from our
 * own encoder (end to end from the photo), whose float32 error the decoder carries into
 * logits of magnitude up to 45: measured 3.4e-5 (low-res) / 7e-5 (full size) on sam2-tiny,
 * 4.7e-5 / 1.7e-4 on sam2-mini (1024 input, 256-wide decoder), object scores 2.3e-6; we
 * allow 2e-3 + 1e-4 |ref| on logits, 1e-4 on IoU, 1e-3 on object scores. At most 0.1% of the binary mask pixels may flip
 * (logits within tolerance of 0). The single-mask token choice (stability vs 0.98) must
 * match the fixture's exactly: its margins are >= 1.3e-3, several low-res pixels.
 * (The masks must also agree exactly with our own logits > 0.)
 */
import assert from "node:assert/strict";
import type { DecoderPrompt } from "../../src/decoder/transforms.ts";
import type { Sam2DecoderResult } from "../../src/sam2/mask_decoder.ts";
import { assertClose } from "../util/compare.ts";
import { fixtureJson, loadGolden } from "../util/fixtures.ts";
import { checkProbe, type Probe } from "./probes.ts";

export interface Sam2Case {
  name: string;
  prompts: DecoderPrompt[];
  multimask: boolean;
  /** Per prompt, fixture's dynamic_multimask_fallback (single-mask cases). */
  fallback?: boolean[];
  /** Null where the fixture keeps only probes. */
  masks: Float32Array | null;
  iou: Float32Array;
  lowRes: Float32Array | null;
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
    // sam2-mini stores large goldens as probes only: null here.
    const g = async (suffix: string) => {
      try {
        return (await loadGolden(dir, `${name}_${suffix}.npy`)).data as Float32Array;
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) return null;
        throw e;
      }
    };
    cases.push({
      name,
      prompts: prompts.map((p) => ({ ...p, multimask: c.multimask_output })),
      multimask: c.multimask_output,
      fallback: c.dynamic_multimask_fallback,
      masks: await g("masks"),
      iou: (await g("iou"))!,
      lowRes: await g("low_res"),
      objScore: (await g("obj_score"))!,
    });
  }
  return { cases, imageSizeHw: json.image_size_hw, imgSize: json.architecture.image_size };
}

/** A decoder result, or a predictor's Prediction in the same terms (tokens unknown). */
export type CaseResult = Omit<Sam2DecoderResult, "tokens"> & { tokens?: number[] };

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

/**
 * One case's results (one per prompt) against its goldens: stored tensors where the fixture
 * has them, else `probes` (sam2-mini's probes.json) at their indices. Returns a report line.
 */
export function checkSam2Case(
  c: Sam2Case,
  results: CaseResult[],
  hw: readonly [number, number],
  low: number,
  tol: Sam2Tolerance = DECODER_TOL,
  probes?: Record<string, Probe>,
): string {
  const [h, w] = hw;
  const C = c.multimask ? 3 : 1, B = c.prompts.length;
  assert.equal(results.length, B, `${c.name}: results`);
  results.forEach((r, b) => {
    assert.equal(r.count, C, `${c.name}[${b}]: mask count`);
    if (c.fallback && r.tokens) {
      assert.equal(r.tokens[0] !== 0, c.fallback[b], `${c.name}[${b}]: dynamic multimask fallback`);
    }
  });
  const cat = (parts: Float32Array[]) => {
    const out = new Float32Array(parts.reduce((a, x) => a + x.length, 0));
    let at = 0;
    for (const x of parts) (out.set(x, at), at += x.length);
    return out;
  };
  const logitTol = { atol: tol.logitAtol, rtol: tol.logitRtol };
  const compare = (got: Float32Array, ref: Float32Array | null, key: string, shape: number[]) => {
    const label = `${c.name} ${key}`;
    if (ref) return assertClose(got, ref, { ...logitTol, shape, label }).maxAbs;
    const probe = probes?.[`${c.name}_${key}`];
    if (!probe) throw new Error(`${label}: neither a stored golden nor a probe`);
    return checkProbe(got, probe, { ...logitTol, label: `${label} (probes)` });
  };
  const lowMax = compare(cat(results.map((r) => r.lowRes)), c.lowRes, "low_res", [B, C, low, low]);
  const logits = cat(results.map((r) => r.logits!));
  const logitMax = compare(logits, c.masks, "masks", [B, C, h, w]);
  const iouMax = assertClose(cat(results.map((r) => r.iou)), c.iou, {
    atol: tol.iou,
    label: `${c.name} IoU`,
  }).maxAbs;
  const objMax = assertClose(results.map((r) => r.objScore), c.objScore, {
    atol: tol.obj,
    label: `${c.name} object score`,
  }).maxAbs;
  let differ = 0;
  const masks = results.flatMap((r) => r.masks!);
  masks.forEach((m, k) => {
    for (let q = 0; q < h * w; q++) if (m[q] !== (logits[k * h * w + q] > 0 ? 1 : 0)) differ++;
  });
  // The masks are the logits > 0 (checked against the goldens above).
  assert.equal(differ, 0, `${c.name}: ${differ} mask pixels disagree with their logits`);
  if (c.masks) {
    let flips = 0;
    for (let q = 0; q < c.masks.length; q++) {
      if ((logits[q] > 0) !== (c.masks[q] > 0)) flips++;
    }
    assert.ok(flips <= 0.001 * c.masks.length, `${c.name}: ${flips} mask pixels differ`);
  }
  return `${c.name}: max abs low-res ${lowMax.toExponential(1)}, logits ${
    logitMax.toExponential(1)
  }, IoU ${iouMax.toExponential(1)}, obj ${objMax.toExponential(1)}; tokens ${
    results.map((r) => r.tokens?.join(",") ?? "?").join(" | ")
  }`;
}
