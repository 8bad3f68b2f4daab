/**
 * The report as a markdown page: where it ran, the settings, the table, the targets and the
 * peer's session-creation times. Pure.
 */
import type { Env } from "./env.ts";
import { formatMs, formatTable } from "./format.ts";
import type { Group, Row } from "./measure.ts";
import type { ReportOptions } from "./options.ts";
import { judgeTargets } from "./targets.ts";

const GROUP_ORDER: Group[] = ["encoder", "decoder", "amg"];

/** The markdown page of one report. */
export function formatReport(
  env: Env,
  rows: readonly Row[],
  opts: Pick<ReportOptions, "quick" | "encoderRuns" | "decoderRuns" | "warmup" | "budgetMs">,
): string {
  const sorted = [...rows].sort((a, b) =>
    GROUP_ORDER.indexOf(a.group) - GROUP_ORDER.indexOf(b.group)
  );
  const targets = judgeTargets(rows, env.adapter);
  const creates = rows.flatMap((r) =>
    (["peerWasm", "peerWebgpu"] as const).flatMap((k) => {
      const m = r[k];
      return m.status === "ok" && m.createMs !== undefined
        ? [`${r.label}, ${k === "peerWasm" ? "wasm" : "WebGPU"}: ${formatMs(m.createMs)} ms`]
        : [];
    })
  );
  const lines = [
    `# wgsam vs onnxruntime-web on ${env.adapter}`,
    "",
    `- date: ${env.date}`,
    `- Deno ${env.deno.deno} (V8 ${env.deno.v8}), ${env.os}, ${env.cpus} CPUs`,
    `- source: ${
      env.git
        ? `git ${env.git.head}${
          env.git.uncommitted.length
            ? ` with uncommitted changes in ${env.git.uncommitted.join(", ")}`
            : ""
        }`
        : "not a git checkout"
    }`,
    `- load average at start ${env.loadavgStart.join(" / ")}, at end ${
      (env.loadavgEnd ?? []).join(" / ")
    } (1 / 5 / 15 min)${
      env.loadavgStart[0] > env.cpus
        ? `: the machine was shared and busy (load above its ${env.cpus} CPUs), so every number here is slower than on an idle machine`
        : ""
    }`,
    `- adapter: ${env.adapter}${env.software ? " (software: CPU-emulated WebGPU)" : ""}; ` +
    `GPU timestamps: ${env.hasTimestamps ? "yes" : "no (ours: wall time around a readback)"}`,
    `- settings: ${
      opts.quick ? "--quick, " : ""
    }warm-up ${opts.warmup}, timed runs: encoders ${opts.encoderRuns}, decoder ${opts.decoderRuns} (medians); per-case budget ${
      opts.budgetMs / 1000
    } s`,
    `- peer: ${env.peer} on the real models' shape-only graphs ` +
    "(wasm: all CPU threads; WebGPU EP: wasm side single-threaded)",
    "",
    "ms: median wall time per iteration including the readback of the outputs. GFLOP/s: the " +
    "official computation's FLOPs (bench/report/flops.ts flopsEncoder / flopsDecoder: matrix " +
    "products only, mask resampling not counted) per second. 'ours vs X': X ms / ours ms " +
    "(> 1: ours is faster). Ours keeps an image embedding's prompt-independent decoder work " +
    "(src and layer 0's image projections, about a fifth of a prompt's FLOPs) from its first " +
    "prompt, so the timed decoder runs after the warm-up reuse it, as an interactive session " +
    "does; the official export recomputes it every run.",
    "",
    ...(rows.length
      ? [
        formatTable(sorted),
        "",
        "## Targets (on a GPU; judged as measured)",
        "",
        ...targets.map((t) => `- ${t.name}: **${t.verdict}** (${t.detail})`),
      ]
      : ["No encoder, decoder or AMG case in this run (--only)."]),
  ];
  if (creates.length) {
    lines.push("", "## Peer session creation", "", ...creates.map((c) => `- ${c}`));
  }
  return lines.join("\n") + "\n";
}
