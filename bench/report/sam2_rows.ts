/**
 * SAM 2.1 rows, ours only (the peer has no ONNX graph of SAM 2): the encoder (Hiera trunk,
 * FPN neck) on sam2-mini and at Hiera-T / Hiera-B+ official shapes with random weights, and the
 * mask decoder at its real sizes.
 */
import { officialSam2Arch, sam2HintsFromFixture } from "../../src/sam2/arch.ts";
import { disposeSam2Features } from "../../src/sam2/image_encoder.ts";
import { Sam2Decoder } from "../../src/sam2/mask_decoder.ts";
import { loadSam2 } from "../../src/sam2/load.ts";
import type { GpuContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { flopsSam2Encoder } from "../encoder/sam2_flops.ts";
import { fixturePath, LABELS, ORIG_HW, oursPrompt } from "./cases.ts";
import { log } from "./env.ts";
import { flopsSam2Decoder } from "./flops.ts";
import {
  firstLine,
  gflops,
  markSingle,
  type Measure,
  notMeasured,
  planRuns,
  type Row,
} from "./measure.ts";
import type { ReportOptions } from "./options.ts";
import { measureOursSam2Encoder, randomSam2EncoderWeights, timeOurs } from "./ours.ts";

/**
 * SAM 2.1 encoder rows (Hiera trunk, FPN neck, conv_s0 / conv_s1): ours only, the peer has no
 * ONNX graph of SAM 2's encoder. sam2-mini (fixture weights) first; Hiera-T and B+ in their
 * official shapes with random weights, on a software adapter only when the estimate from the
 * last measured throughput fits the budget.
 */
export async function sam2EncoderRows(
  ctx: GpuContext,
  opts: ReportOptions,
  software: boolean,
): Promise<Row[]> {
  const rows: Row[] = [];
  const peerNa = notMeasured("peer: no ONNX graph of the SAM 2 image encoder");
  const row = (id: string, flops: number | null, ours: Measure): Row => ({
    id,
    group: "encoder",
    label: LABELS[id],
    flops,
    ours,
    peerWasm: peerNa,
    peerWebgpu: peerNa,
  });
  let oursGflops: number | null = null;
  const pt = fixturePath("sam2-mini/sam2-mini.pt");
  const fixture = fixturePath("sam2-mini/fixture.json");
  if (!pt || !fixture) {
    rows.push(
      row("encoder_sam2_mini", null, notMeasured("ours: the sam2-mini fixture is missing")),
    );
  } else {
    try {
      const hints = sam2HintsFromFixture(JSON.parse(Deno.readTextFileSync(fixture)).architecture);
      const { sd, arch } = await loadSam2(pt, hints);
      log("ours: encoder sam2-mini");
      const m = await measureOursSam2Encoder(ctx, sd, arch, opts.warmup, opts.encoderRuns);
      const flops = flopsSam2Encoder(arch);
      if (m.status === "ok") oursGflops = gflops(flops, m.ms);
      rows.push(row("encoder_sam2_mini", flops, m));
    } catch (e) {
      rows.push(row("encoder_sam2_mini", null, notMeasured(`ours: failed: ${firstLine(e)}`)));
    }
  }
  for (const id of ["hiera_t", "hiera_b_plus"] as const) {
    const arch = officialSam2Arch(id);
    const flops = flopsSam2Encoder(arch);
    const caseId = `encoder_sam2_${id}`;
    if (software && oursGflops === null) {
      rows.push(row(
        caseId,
        flops,
        notMeasured(
          `ours: not run on a software adapter without a smaller encoder's throughput to ` +
            `estimate its ${(flops / 1e9).toFixed(0)} GFLOP from`,
        ),
      ));
      continue;
    }
    const plan = software
      ? planRuns(true, flops / (oursGflops! * 1e6), opts.warmup, opts.encoderRuns)
      : { warmup: opts.warmup, runs: opts.encoderRuns, totalMs: 0, single: false };
    if (plan.totalMs > opts.budgetMs) {
      rows.push(row(
        caseId,
        flops,
        notMeasured(
          `ours: skipped: estimated ${(plan.totalMs / 1000).toFixed(0)} s at the smaller ` +
            `encoder's ${oursGflops!.toFixed(2)} GFLOP/s exceeds the per-case budget of ` +
            `${opts.budgetMs / 1000} s`,
        ),
      ));
      continue;
    }
    try {
      log(`ours: encoder SAM 2.1 ${id} (random weights)`);
      const m = markSingle(
        await measureOursSam2Encoder(
          ctx,
          randomSam2EncoderWeights(arch),
          arch,
          plan.warmup,
          plan.runs,
        ),
        plan,
      );
      if (m.status === "ok") oursGflops = gflops(flops, m.ms);
      rows.push(row(caseId, flops, m));
    } catch (e) {
      rows.push(row(caseId, flops, notMeasured(`ours: failed: ${firstLine(e)}`)));
    }
  }
  return rows;
}

/**
 * SAM 2.1 decoder rows: ours only (the peer has no SAM 2 decoder graph). sam2-mini's decoder
 * has the real sizes (256 wide, MLP 2048); its kept features are stored only as probes, so it
 * decodes deterministic features of the right shapes (timing only), all 4 mask tokens.
 */
export async function sam2DecoderRows(ctx: GpuContext, opts: ReportOptions): Promise<Row[]> {
  const peerNa = notMeasured("peer: no ONNX graph of the SAM 2 mask decoder");
  const ids = ["decoder_sam2_1p_upscaled", "decoder_sam2_1p_lowres"] as const;
  const pt = fixturePath("sam2-mini/sam2-mini.pt");
  const fixture = fixturePath("sam2-mini/fixture.json");
  const ours = new Map<string, Measure>();
  let flops: number | null = null;
  if (!pt || !fixture) {
    for (const id of ids) ours.set(id, notMeasured("ours: the sam2-mini fixture is missing"));
  } else {
    try {
      const hints = sam2HintsFromFixture(JSON.parse(Deno.readTextFileSync(fixture)).architecture);
      const { sd, arch } = await loadSam2(pt, hints);
      flops = flopsSam2Decoder(arch, { prompts: 1, sparseTokens: 3 });
      const decoder = Sam2Decoder.create(ctx, sd, arch);
      const C = arch.dModel, s = arch.imgSize / arch.backboneStride;
      const feature = (c: number, side: number, name: string) => {
        const a = new Float32Array(c * side * side);
        for (let i = 0; i < a.length; i++) a[i] = ((i * 2654435761) % 1000) / 500 - 1;
        return tensorFrom(ctx, a, [1, c, side, side], name);
      };
      const features = {
        imageEmbed: feature(C, s, "image_embed"),
        highRes0: feature(C / 8, 4 * s, "high_res_feats_0"),
        highRes1: feature(C / 4, 2 * s, "high_res_feats_1"),
      };
      try {
        for (const upscaled of [true, false]) {
          const id = upscaled ? ids[0] : ids[1];
          log(`ours: decoder SAM 2.1, 1 prompt, ${upscaled ? "upscaled" : "lowres"}`);
          const work = async () => {
            await decoder.predict(features, [oursPrompt()], {
              originalSize: ORIG_HW,
              output: upscaled ? "logits" : "none",
              allTokens: true,
            });
          };
          ours.set(id, await timeOurs(ctx, work, upscaled ? opts.warmup : 0, opts.decoderRuns));
        }
      } finally {
        decoder.dispose();
        disposeSam2Features(features);
      }
    } catch (e) {
      for (const id of ids) {
        if (!ours.has(id)) ours.set(id, notMeasured(`ours: failed: ${firstLine(e)}`));
      }
    }
  }
  return ids.map((id) => ({
    id,
    group: "decoder" as const,
    label: LABELS[id],
    flops,
    ours: ours.get(id)!,
    peerWasm: peerNa,
    peerWebgpu: peerNa,
  }));
}
