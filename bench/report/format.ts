/**
 * Numbers and the results table as text: ms, ratios, GFLOP/s, the adapter's file-name slug,
 * and the markdown table with its "n/m [k]" notes. Pure.
 */
import { gflops, type Measure, ratio, type Row, SOFTWARE_SINGLE_RUN_MS } from "./measure.ts";

/**
 * A file-name-safe slug of the adapter description: lower case, runs of anything but a-z0-9
 * become one "-", trimmed, at most 64 characters.
 */
export function adapterSlug(description: string): string {
  const slug = description.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "")
    .slice(0, 64).replace(/-+$/, "");
  return slug || "unknown-adapter";
}

export function formatMs(ms: number): string {
  if (ms >= 100) return ms.toFixed(0);
  if (ms >= 10) return ms.toFixed(1);
  if (ms >= 1) return ms.toFixed(2);
  return ms.toFixed(3);
}

export function formatRatio(r: number | null): string {
  if (r === null) return "–";
  return r >= 10 ? `${r.toFixed(0)}x` : `${r.toFixed(2)}x`;
}

export function formatGflops(g: number | null): string {
  if (g === null) return "";
  return g >= 100 ? g.toFixed(0) : g >= 1 ? g.toFixed(1) : g.toFixed(3);
}

/**
 * The markdown table: case, GFLOP, ours ms (GFLOP/s), ours GPU ms, peer wasm ms, peer WebGPU
 * ms, and how many times faster ours is than each peer. Cells of cases that did not run hold a
 * note number; the notes (the reasons) follow the table.
 */
export function formatTable(rows: readonly Row[]): string {
  const notes: string[] = [];
  const note = (m: Measure & { status: "not measured" }): string => {
    let k = notes.indexOf(m.reason);
    if (k < 0) k = notes.push(m.reason) - 1;
    return `n/m [${k + 1}]`;
  };
  const cell = (m: Measure, flops: number | null): string => {
    if (m.status !== "ok") return note(m);
    const g = formatGflops(gflops(flops, m.ms));
    const per = m.perPromptMs !== undefined ? `, ${formatMs(m.perPromptMs)}/prompt` : "";
    const single = m.detail?.singleColdRun ? " ¹" : "";
    return `${formatMs(m.ms)}${
      g ? ` (${g} GFLOP/s${per})` : per ? ` (${per.slice(2)})` : ""
    }${single}`;
  };
  const lines = [
    "| case | GFLOP | ours ms | ours GPU ms | peer wasm ms | peer WebGPU ms | ours vs wasm | ours vs WebGPU |",
    "|---|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const r of rows) {
    const gpu = r.ours.status === "ok" && r.ours.gpuMs != null ? formatMs(r.ours.gpuMs) : "–";
    lines.push(
      `| ${r.label} | ${r.flops === null ? "–" : (r.flops / 1e9).toFixed(1)} | ${
        cell(r.ours, r.flops)
      } | ${gpu} | ${cell(r.peerWasm, r.flops)} | ${cell(r.peerWebgpu, r.flops)} | ${
        formatRatio(ratio(r.peerWasm, r.ours))
      } | ${formatRatio(ratio(r.peerWebgpu, r.ours))} |`,
    );
  }
  const single = (m: Measure) => m.status === "ok" && m.detail?.singleColdRun === true;
  if (rows.some((r) => single(r.ours) || single(r.peerWasm) || single(r.peerWebgpu))) {
    lines.push(
      "",
      `¹ one run, no warm-up (software adapter, a run estimated over ${
        SOFTWARE_SINGLE_RUN_MS / 1000
      } s): the kernels (ours) or the session (the peer's) were made ready by the smaller ` +
        "case before it.",
    );
  }
  if (notes.length) {
    lines.push("", "Not measured:", "");
    notes.forEach((n, i) => lines.push(`${i + 1}. ${n}`));
  }
  return lines.join("\n");
}
