/**
 * precision "f16" end to end against the official float32 goldens, through the public API
 * (SamModel.load(..., { precision: "f16" }) + SamPredictor, from image.png).
 *
 * f16 is not float32: its 11-bit significand rounds every stored weight and every stored
 * GEMM-to-GEMM activation by up to 2^-11 relative, so the goldens are not met to 1e-5 as by
 * the f32 path. What must hold is what a user sees (issue #15):
 * - every mask: IoU >= 0.99 with the golden mask (logits > 0), and
 * - every predicted IoU score within 0.02 of the golden.
 * Every stage on the way (patch embed, each block, the embeddings, low-res logits) is
 * reported with its worst element, max abs error and NMSE, and bounded by STAGE_NMSE: an
 * NMSE of 1e-4 is a relative RMS error of 1%, about 20 f16 half-ulps; far above what
 * rounding gives (measured below 1e-5) and far below what a wrong kernel gives (O(1)).
 */
import assert from "node:assert/strict";
import { readImageFile } from "../../src/image.ts";
import { SamModel, SamPredictor } from "../../src/predictor.ts";
import {
  encoderBufferPlan,
  encoderGeometry,
  ImageEncoder,
} from "../../src/encoder/image_encoder.ts";
import { getContext } from "../../src/gpu/context.ts";
import { loadSam } from "../../src/weights/load.ts";
import { OFFICIAL_ARCHS } from "../../src/weights/arch.ts";
import { loadFixtureCases } from "../decoder/fixture_cases.ts";
import { compareClose, multiIndex } from "../util/compare.ts";
import { fixtureStages, pickChannels, spyStages } from "../util/encoder_stages.ts";
import { fixtureDir, fixtureJson, loadGolden, skipIfMissing } from "../util/fixtures.ts";

/** Bound on every stage's NMSE against its golden (see the header). */
const STAGE_NMSE = 1e-4;
const MIN_MASK_IOU = 0.99;
const MAX_SCORE_ERROR = 0.02;

/** Prints one stage's comparison (worst element, max abs, NMSE) and bounds its NMSE. */
function reportStage(
  label: string,
  got: ArrayLike<number>,
  ref: ArrayLike<number>,
  shape?: readonly number[],
): void {
  const r = compareClose(got, ref, { atol: 0 });
  const w = r.worstIndex;
  console.log(
    `  ${label}: max abs ${r.maxAbs.toExponential(2)} at ${multiIndex(w, shape)} ` +
      `(got ${got[w]}, golden ${ref[w]}), NMSE ${r.nmse.toExponential(2)}`,
  );
  assert.ok(r.nmse <= STAGE_NMSE, `${label}: NMSE ${r.nmse} > ${STAGE_NMSE}`);
}

function maskIou(mask: Uint8Array, golden: Float32Array): number {
  let inter = 0, union = 0;
  for (let i = 0; i < mask.length; i++) {
    const a = mask[i] !== 0, b = golden[i] > 0;
    if (a && b) inter++;
    if (a || b) union++;
  }
  return union === 0 ? 1 : inter / union;
}

async function checkF16(name: string, caseNames: string[] | null): Promise<void> {
  const dir = fixtureDir(name);
  if (skipIfMissing(dir, `${name} f16`)) return;
  const model = await SamModel.load(new URL(`${name}.pth`, dir!).pathname, {
    precision: "f16",
  });
  const predictor = new SamPredictor(model);
  try {
    assert.equal(model.precision, "f16");
    const kept = spyStages(model);
    const info = await predictor.setImage(await readImageFile(new URL("image.png", dir!)));
    // The pass ran the f16 variants: f16 weights (f16 out where a GEMM feeds another GEMM or
    // attention, f16 in where it reads one), attention from f16 q, k, v to an f16 output.
    const names = model.ctx.pipelineNames;
    for (const variant of [/_f16w_/, /_f16wo_/, /_f16aw_/, /^attention.*_f16qkv_f16o$/]) {
      assert.ok(names.some((n) => variant.test(n)), `no kernel ${variant} ran`);
    }
    console.log(`${name} (precision f16), per stage vs the float32 goldens:`);
    // Every stage the encoder reported, in order. The light models' fixtures (MobileSAM,
    // SlimSAM) keep some channels of the inner stages (fixture.json `stages`): those are
    // compared on those channels.
    assert.ok(kept.has("image_embeddings"));
    const subsets = (await fixtureJson(dir!)).stages ? await fixtureStages(dir!) : {};
    for (const [stage, ours] of kept) {
      const golden = await loadGolden(dir!, `${stage}.npy`);
      let got = await ours.read();
      const subset = subsets[stage];
      if (golden.data.length !== ours.size) {
        assert.ok(subset, `${stage}: golden of another size and no channel list`);
        const nchw = subset.layout === "NCHW";
        const C = nchw ? subset.full_shape[1] : subset.full_shape[subset.full_shape.length - 1];
        got = pickChannels(got, C, subset.channels, nchw);
      }
      const what = golden.data.length !== ours.size
        ? `${stage} (channels ${subset.channels.join(",")})`
        : stage;
      reportStage(what, got, golden.data as Float32Array, golden.shape);
    }
    const { cases } = await loadFixtureCases(dir!);
    const chosen = caseNames ? cases.filter((c) => caseNames.includes(c.name)) : cases;
    assert.equal(chosen.length, caseNames?.length ?? cases.length);
    let worstIou = 1, worstScore = 0;
    for (const c of chosen) {
      const predictions = await predictor.predictBatch(
        c.prompts.map((p) => ({ ...p, multimask: c.multimask })),
        { returnLogits: true },
      );
      const C = c.multimask ? 3 : 1;
      const plane = info.width * info.height;
      const lowPlane = predictions[0].lowResSize ** 2;
      predictions.forEach((p, b) => {
        const label = `${c.name}[${b}]`;
        reportStage(
          `${label} low-res logits`,
          p.lowResLogits,
          c.lowRes.subarray(b * C * lowPlane, (b + 1) * C * lowPlane),
        );
        p.scores.forEach((score, k) => {
          const err = Math.abs(score - c.iou[b * C + k]);
          worstScore = Math.max(worstScore, err);
          assert.ok(err <= MAX_SCORE_ERROR, `${label} mask ${k}: IoU score off by ${err}`);
        });
        // Full-size masks where the fixture has them, else (MobileSAM) the low-res ones.
        const full = c.masks.length > 0;
        for (let k = 0; k < C; k++) {
          const [mask, ref] = full
            ? [p.masks[k], c.masks.subarray((b * C + k) * plane, (b * C + k + 1) * plane)]
            : [
              Uint8Array.from(
                p.lowResLogits.subarray(k * lowPlane, (k + 1) * lowPlane),
                (v) => v > 0 ? 1 : 0,
              ),
              c.lowRes.subarray((b * C + k) * lowPlane, (b * C + k + 1) * lowPlane),
            ];
          const iou = maskIou(mask, ref);
          worstIou = Math.min(worstIou, iou);
          assert.ok(iou >= MIN_MASK_IOU, `${label} mask ${k}: IoU ${iou} < ${MIN_MASK_IOU}`);
        }
      });
    }
    console.log(
      `  masks: worst IoU with the golden ${worstIou.toFixed(5)} (>= ${MIN_MASK_IOU}); ` +
        `worst IoU-score error ${worstScore.toExponential(2)} (<= ${MAX_SCORE_ERROR})`,
    );
    for (const t of kept.values()) t.destroy();
  } finally {
    predictor.dispose();
    model.dispose();
  }
}

Deno.test("f16 on sam-tiny: every stage reported, every case's masks and IoU scores", async () => {
  await checkF16("sam-tiny", null);
});

Deno.test("f16 on sam-mini (1024 px): every stage reported, two cases", async () => {
  await checkF16("sam-mini", ["point1_multi", "box_single"]);
});

Deno.test("f16 on MobileSAM (TinyViT) and SlimSAM: the embeddings, two cases each", async () => {
  await checkF16("mobilesam", ["point1_multi", "box_single"]);
  await checkF16("slimsam", ["point1_multi", "box_single"]);
});

Deno.test("f16 halves the GEMM weights' bytes on the GPU (sam-tiny uploads; ViT-H plan)", async () => {
  const ctx = await getContext();
  const dir = fixtureDir("sam-tiny")!;
  const path = new URL("sam-tiny.pth", dir).pathname;
  const { sd, arch } = await loadSam(path);
  const uploads: Record<string, { encoder: number; model: number }> = {};
  for (const precision of ["f32", "f16"] as const) {
    // The encoder alone: the upload counter, its tensors' bytes and its plan all agree.
    let start = ctx.counters.uploadedBytes;
    const encoder = ImageEncoder.fromStateDict(ctx, sd, arch, precision);
    const encoderBytes = ctx.counters.uploadedBytes - start;
    assert.equal(encoder.weightBytes, encoderBytes);
    assert.equal(encoderBufferPlan(arch, precision).weightBytes, encoderBytes);
    encoder.dispose();
    // The whole model (encoder and decoder) through the public API.
    start = ctx.counters.uploadedBytes;
    const model = await SamModel.load(path, { precision });
    uploads[precision] = { encoder: encoderBytes, model: ctx.counters.uploadedBytes - start };
    model.dispose();
  }
  const { f32, f16 } = uploads;
  console.log(
    `sam-tiny weights uploaded: encoder f32 ${f32.encoder} -> f16 ${f16.encoder} bytes; ` +
      `whole model f32 ${f32.model} -> f16 ${f16.model} bytes ` +
      `(${(f16.model / f32.model).toFixed(3)})`,
  );
  // The GEMM weights went from 4 bytes to 2: the saving is exactly half their f32 bytes,
  // but for the neck's 3x3 conv, which f32 uploads as Winograd's [36, D, D] filter and f16
  // as the checkpoint's [D, D, 3, 3].
  const g = encoderGeometry(arch);
  const matrices = g.embedDim * g.patchCols + g.outDim * g.embedDim +
    arch.depth * (4 * g.embedDim ** 2 + 2 * g.embedDim * g.mlpDim);
  const neck3x3 = 4 * 36 * g.outDim ** 2 - 2 * 9 * g.outDim ** 2;
  assert.equal(f32.encoder - f16.encoder, 2 * matrices + neck3x3);
  assert.ok(f16.model < 0.6 * f32.model, `whole model: f16 ${f16.model} of f32 ${f32.model}`);
  // ViT-H's weights are nearly all GEMM weights (what stays f32: pos_embed, the gathered
  // rel-pos tables, norms, biases, about 1%): f16 takes half the bytes, 2.57 GB -> 1.30 GB
  // (f32 holds the neck 3x3 as a Winograd filter, 4x its im2col weight).
  // (ViT-B: 0.52, its pos_embed and rel-pos tables weigh more beside its smaller matrices.)
  for (const [name, official] of Object.entries(OFFICIAL_ARCHS)) {
    const w32 = encoderBufferPlan(official, "f32").weightBytes;
    const w16 = encoderBufferPlan(official, "f16").weightBytes;
    console.log(
      `${name} encoder weights: f32 ${(w32 / 1e9).toFixed(3)} GB, f16 ${(w16 / 1e9).toFixed(3)} ` +
        `GB (${(w16 / w32).toFixed(3)})`,
    );
    if (name !== "vit_h") continue;
    assert.ok(w16 / w32 < 0.51, `${name}: f16 weights are ${w16 / w32} of f32`);
  }
});
