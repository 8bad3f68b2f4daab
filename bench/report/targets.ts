/**
 * The project's targets, judged on the rows as measured (never on estimates); on a software
 * adapter they are reported as "not measured here" with what was measured.
 */
import { formatMs, formatRatio } from "./format.ts";
import { isSoftwareAdapter, type Measure, ratio, type Row } from "./measure.ts";

export interface Target {
  name: string;
  verdict: "met" | "not met" | "not measured here";
  detail: string;
}

/**
 * The project's targets, judged on the measurements as they are: decoder <= 2 ms per prompt;
 * ViT-B encoder <= 40 ms on an H100-class GPU; ours >= 2x onnxruntime-web's WebGPU EP.
 */
export function judgeTargets(rows: readonly Row[], adapter: string): Target[] {
  const verdicts = judgeMeasured(rows, adapter);
  if (!isSoftwareAdapter(adapter)) return verdicts;
  // The targets are for GPUs: a CPU-emulated adapter's numbers are reported, never judged.
  return verdicts.map((t) => ({
    name: t.name,
    verdict: "not measured here",
    detail: `a software adapter (${adapter}), the targets are for a GPU; measured: ${t.detail}`,
  }));
}

function judgeMeasured(rows: readonly Row[], adapter: string): Target[] {
  const out: Target[] = [];
  const find = (id: string) => rows.find((r) => r.id === id);
  // Decoder: the best per-prompt figure we have for a full upscaled prediction.
  const dec = ["decoder_64p_upscaled", "decoder_1p_upscaled"].map(find)
    .filter((r): r is Row => !!r && r.ours.status === "ok");
  if (dec.length === 0) {
    out.push({
      name: "decoder <= 2 ms per prompt",
      verdict: "not measured here",
      detail: "ours: no decoder case ran",
    });
  } else {
    const per = Math.min(
      ...dec.map((r) => {
        const m = r.ours as Measure & { status: "ok" };
        return m.perPromptMs ?? m.ms;
      }),
    );
    out.push({
      name: "decoder <= 2 ms per prompt",
      verdict: per <= 2 ? "met" : "not met",
      detail: `ours ${formatMs(per)} ms per prompt on ${adapter}`,
    });
  }
  const vitb = find("encoder_vit_b");
  const h100Class = /h100|h200|b200|gh200/i.test(adapter);
  if (!vitb || vitb.ours.status !== "ok") {
    out.push({
      name: "ViT-B encoder <= 40 ms (H100-class GPU)",
      verdict: "not measured here",
      detail: vitb?.ours.status === "not measured" ? vitb.ours.reason : "no ViT-B case",
    });
  } else {
    const ms = vitb.ours.gpuMs ?? vitb.ours.ms;
    out.push({
      name: "ViT-B encoder <= 40 ms (H100-class GPU)",
      verdict: !h100Class ? "not measured here" : ms <= 40 ? "met" : "not met",
      detail: `ours ${formatMs(ms)} ms on ${adapter}${h100Class ? "" : " (not H100-class)"}`,
    });
  }
  const pairs = rows.map((r) => ({ r, x: ratio(r.peerWebgpu, r.ours) }))
    .filter((p): p is { r: Row; x: number } => p.x !== null);
  if (pairs.length === 0) {
    out.push({
      name: ">= 2x onnxruntime-web WebGPU EP",
      verdict: "not measured here",
      detail: "no case ran on both ours and the WebGPU EP",
    });
  } else {
    const worst = pairs.reduce((a, b) => (b.x < a.x ? b : a));
    out.push({
      name: ">= 2x onnxruntime-web WebGPU EP",
      verdict: worst.x >= 2 ? "met" : "not met",
      detail: pairs.map((p) => `${p.r.label}: ${formatRatio(p.x)}`).join("; "),
    });
  }
  return out;
}
