/**
 * Side-by-side benchmark: wgsam (our WGSL kernels on WebGPU) against onnxruntime-web (wasm and
 * its WebGPU execution provider) on the same machine, the same inputs and the same shapes.
 *
 *   deno task bench:report [--quick] [--only SECTIONS] [--runs N] [--budget SECONDS]
 *                          [--no-peer] [--out DIR] [--tag TAG] [--models LIST] [--tune]
 *                          [--page-model M]
 *
 * Writes bench/results/<adapter-slug>[-TAG].json (every measurement, with the adapter, date,
 * Deno version, CPU count and load) and bench/results/<adapter-slug>[-TAG].md (the tables). See
 * bench/README.md for what each case is and how time is taken.
 *
 * Timing. Ours: wall time from recording the work to the result read back on the CPU (the
 * peer returns CPU tensors, so both sides include the readback); where the adapter has
 * timestamp queries, the GPU time of the same run too. Peer: wall time of session.run,
 * session creation timed apart. Every case: warm-up run(s), then N timed runs, median.
 * The peer runs in a child process (bench/peer/peer_cli.ts) so that a case can be stopped at
 * a time limit; the two sides never run at the same time.
 *
 * Cases that cannot run here, or whose module has not landed, are written as "not measured"
 * with the reason; no number is ever estimated into the table. Where a case's time is
 * predictable from an earlier one (a 64-prompt batch from one prompt; ViT-L from ViT-B) and
 * exceeds the per-case budget, it is skipped with the estimate as the reason. On a software
 * adapter such a case estimated over a minute a run runs once without warm-up (planRuns), so
 * `--budget` alone decides how far a CPU-emulated run goes.
 *
 * This file is the command; the report itself is in bench/report/, read in this order:
 *   options.ts       the flags
 *   measure.ts       a cell (Measure), a row, run plans, ratios
 *   flops.ts         FLOP counts of every case
 *   cases.ts         labels, prompts, inputs, fixtures
 *   ours.ts          how ours is imported, timed and fed random weights
 *   peer.ts          how onnxruntime-web is run (in a child process) and read
 *   run.ts           one report: the sections in order, each in its *_rows.ts file
 *                    (encoder, edge + edge_models.ts, sam2, decoder, amg, variants, page)
 *   format.ts, targets.ts, markdown.ts   the table, the target verdicts, the page
 */
import { UsageError, wantsHelp } from "../src/cli/args.ts";
import { log } from "./report/env.ts";
import { adapterSlug } from "./report/format.ts";
import { formatReport } from "./report/markdown.ts";
import { gflops, ratio } from "./report/measure.ts";
import { parseArgs, type ReportOptions, USAGE } from "./report/options.ts";
import { formatPageSection } from "./report/page_rows.ts";
import { runReport } from "./report/run.ts";
import { formatVariants } from "./report/variants_rows.ts";
import { judgeTargets } from "./report/targets.ts";

if (import.meta.main) {
  if (wantsHelp(Deno.args)) {
    console.log(USAGE);
    Deno.exit(0);
  }
  let opts: ReportOptions;
  try {
    opts = parseArgs(Deno.args);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(
      `bench:report: error: ${e.message}\nRun 'deno task bench:report --help' for usage.`,
    );
    Deno.exit(2);
  }
  const t0 = performance.now();
  const { env, rows, variants, page } = await runReport(opts);
  const slug = adapterSlug(env.adapter) + (opts.tag ? `-${opts.tag}` : "");
  await Deno.mkdir(opts.outDir, { recursive: true });
  const base = opts.outDir.replace(/\/?$/, "/") + slug;
  const json = {
    args: Deno.args,
    env,
    settings: opts && { ...opts, only: [...opts.only] },
    totalSeconds: Math.round((performance.now() - t0) / 1000),
    flopsNote: "see bench/report/flops.ts flopsEncoder / flopsDecoder",
    targets: judgeTargets(rows, env.adapter),
    rows: rows.map((r) => ({
      ...r,
      gflops: {
        ours: r.ours.status === "ok" ? gflops(r.flops, r.ours.ms) : null,
        peerWasm: r.peerWasm.status === "ok" ? gflops(r.flops, r.peerWasm.ms) : null,
        peerWebgpu: r.peerWebgpu.status === "ok" ? gflops(r.flops, r.peerWebgpu.ms) : null,
      },
      ratioVsWasm: ratio(r.peerWasm, r.ours),
      ratioVsWebgpu: ratio(r.peerWebgpu, r.ours),
    })),
    variants,
    page,
  };
  await Deno.writeTextFile(`${base}.json`, JSON.stringify(json, null, 2) + "\n");
  let md = formatReport(env, rows, opts);
  if (variants) md += "\n" + formatVariants(variants, env.adapter);
  if (page) md += "\n" + formatPageSection(page);
  if (opts.only.has("decoder")) {
    // Click latency on each WebGPU provider, in this run (bench/click_latency.ts).
    const click = await import("./click_latency.ts");
    const clickRows = await click.measureClickLatency(opts.quick ? 3 : 10);
    md += "\n" + click.formatClickLatency(clickRows);
    await Deno.writeTextFile(`${base}.click.json`, JSON.stringify(clickRows, null, 2) + "\n");
  }
  await Deno.writeTextFile(`${base}.md`, md);
  console.log(md);
  log(`wrote ${base}.json and ${base}.md in ${json.totalSeconds} s`);
  // onnxruntime-web is not loaded here, but GPU handles can keep the loop alive.
  Deno.exit(0);
}
