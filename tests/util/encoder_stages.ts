/**
 * Per-stage checks of an encoder run through the public API: a spy on a loaded model's
 * encoder keeps a copy of every stage the predictor's one pass reports, and the edge-pack
 * fixtures' channel-subset goldens (fixture.json `stages`: module output, full shape, layout,
 * channels kept) are compared with the matching channels of our [H, W, C] outputs.
 */
import assert from "node:assert/strict";
import type { SamModel } from "../../src/predictor.ts";
import { cloneTensor } from "../../src/encoder/image_encoder.ts";
import type { Tensor } from "../../src/gpu/tensor.ts";
import type { RgbImage } from "../../src/types.ts";
import { assertClose, type CloseReport } from "./compare.ts";
import { fixtureJson, loadGolden } from "./fixtures.ts";

/** SAM's encoder test's per-stage bound. */
export const STAGE_TOL = { atol: 1e-3, nmse: 1e-6 };

/** Wraps `model.encoder.encode` so every later pass keeps copies of its stages in the map. */
export function spyStages(model: SamModel): Map<string, Tensor> {
  const kept = new Map<string, Tensor>();
  const encoder = model.encoder;
  const encode = encoder.encode.bind(encoder);
  Object.assign(encoder, {
    encode: (image: RgbImage) =>
      encode(image, { onStage: (stage, x) => kept.set(stage, cloneTensor(model.ctx, x)) }),
  });
  return kept;
}

interface StageInfo {
  full_shape: number[];
  channels: number[];
  layout: string;
}

/** The golden's channels picked out of our [H, W, C] stage output, in the golden's layout. */
export function pickChannels(ours: Float32Array, C: number, channels: number[], nchw: boolean) {
  const pixels = ours.length / C;
  const out = new Float32Array(pixels * channels.length);
  channels.forEach((c, k) => {
    for (let p = 0; p < pixels; p++) {
      // NCHW golden: [k][p]; channels-last golden (tokens or B, H, W, C): [p][k].
      out[nchw ? k * pixels + p : p * channels.length + k] = ours[p * C + c];
    }
  });
  return out;
}

/** The fixture.json `stages` entries: name -> description. */
export async function fixtureStages(dir: URL): Promise<Record<string, StageInfo>> {
  return (await fixtureJson(dir)).stages as Record<string, StageInfo>;
}

/** Checks one stage kept by spyStages against its golden; returns the comparison. */
export async function checkStage(
  dir: URL,
  name: string,
  s: StageInfo,
  kept: Map<string, Tensor>,
): Promise<CloseReport> {
  const ours = kept.get(name);
  assert.ok(ours, `the encoder reported no stage ${name}`);
  const nchw = s.layout === "NCHW";
  const C = nchw ? s.full_shape[1] : s.full_shape[s.full_shape.length - 1];
  assert.equal(ours.size, s.full_shape.reduce((a, b) => a * b, 1), `${name} size`);
  const golden = await loadGolden(dir, `${name}.npy`);
  const got = pickChannels(await ours.read(), C, s.channels, nchw);
  return assertClose(got, golden.data as Float32Array, {
    ...STAGE_TOL,
    shape: golden.shape,
    label: name,
  });
}
