/**
 * The AMG group: the automatic mask generator over the model (32x32 points on a photo), ours
 * only (onnxruntime-web has none). On a software adapter it runs only when the decoder
 * group's per-prompt time says 1024 prompts fit the budget.
 */
import { readImageFile } from "../../src/image.ts";
import { OFFICIAL_ARCHS } from "../../src/weights/arch.ts";
import { loadSam } from "../../src/weights/load.ts";
import { fixturePath, LABELS } from "./cases.ts";
import { log } from "./env.ts";
import { flopsAmg } from "./flops.ts";
import { formatMs } from "./format.ts";
import { firstLine, type Measure, notMeasured, type Row } from "./measure.ts";
import { importAmg, measureOursAmg, randomStateDict } from "./ours.ts";
import type { RunContext } from "./run_context.ts";

/** The AMG row; `decoderPerPromptMs` from the decoder group (null when it did not run). */
export async function amgRows(rc: RunContext, decoderPerPromptMs: number | null): Promise<Row[]> {
  const { ctx, opts, software } = rc;
  const rows: Row[] = [];
  // A hardware adapter: ViT-B shapes with random weights (timing only). A software one:
  // sam-mini, when its estimate fits the budget (it never does on llvmpipe: 1024 prompts).
  const arch = software ? null : OFFICIAL_ARCHS.vit_b;
  const miniPth = fixturePath("sam-mini/sam-mini.pth");
  const photo = fixturePath("sam-mini/resize_down_input.png"); // 1800 x 1200
  const mods = await importAmg();
  let oursM: Measure;
  let flops: number | null = arch ? flopsAmg(arch, 32) : null;
  const perPrompt = decoderPerPromptMs;
  if (typeof mods === "string") oursM = notMeasured(`ours: ${mods}`);
  else if (!photo || (software && !miniPth)) {
    oursM = notMeasured("ours: the sam-mini fixture is missing");
  } else if (software && perPrompt === null) {
    oursM = notMeasured(
      "ours: not run on a software adapter without a decoder measurement to estimate it from " +
        "(run with the decoder group)",
    );
  } else if (software && perPrompt! * 1024 > opts.budgetMs) {
    oursM = notMeasured(
      `ours: skipped: estimated over ${(perPrompt! * 1024 / 1000).toFixed(0)} s ` +
        `(1024 prompts at the decoder's ${formatMs(perPrompt!)} ms a prompt, low-res only) ` +
        `exceeds the per-case budget of ${opts.budgetMs / 1000} s`,
    );
  } else {
    try {
      const loaded = arch
        ? { sd: randomStateDict(arch, () => true), arch }
        : await loadSam(miniPth!);
      flops = flopsAmg(loaded.arch, 32);
      log(`ours: AMG 32x32 (${arch ? "ViT-B random weights" : "sam-mini"})`);
      oursM = await measureOursAmg(
        ctx,
        mods,
        loaded.sd,
        loaded.arch,
        await readImageFile(photo),
        32,
        opts.warmup,
        opts.encoderRuns,
      );
      if (oursM.status === "ok") {
        oursM.detail = { ...oursM.detail, model: arch ? "vit_b random weights" : "sam-mini" };
      }
    } catch (e) {
      oursM = notMeasured(`ours: failed: ${firstLine(e)}`);
    }
  }
  const peerNa = notMeasured("peer: onnxruntime-web has no automatic mask generator");
  rows.push({
    id: "amg_32",
    group: "amg",
    label: `${LABELS.amg_32}${arch ? " (ViT-B, random weights)" : " (sam-mini)"}`,
    flops, // encoder + 1024 decoder passes
    ours: oursM,
    peerWasm: peerNa,
    peerWebgpu: peerNa,
  });
  return rows;
}
