/**
 * One report: the environment, then each section asked for (--only), in the order decoder,
 * encoder, edge, sam2, AMG (the AMG's estimate uses the decoder's time a prompt; the edge
 * encoders' uses sam-mini's), then the variants and page sections. Ours and the peer never run
 * at the same time.
 */
import { getContext } from "../../src/gpu/context.ts";
import { peerGraphs } from "../peer/ort_peer.ts";
import { amgRows } from "./amg_rows.ts";
import { decoderRows } from "./decoder_rows.ts";
import { encoderRows } from "./encoder_rows.ts";
import { type Env, gitState, loadavg, log, peerPackage } from "./env.ts";
import { edgeRows } from "./edge_rows.ts";
import { gflops, isSoftwareAdapter, type Row } from "./measure.ts";
import { type PageResult, pageSection } from "./page_rows.ts";
import { sam2DecoderRows, sam2EncoderRows } from "./sam2_rows.ts";
import { type VariantRow, variantRows } from "./variants_rows.ts";
import type { ReportOptions } from "./options.ts";
import { PeerRunner } from "./peer.ts";
import type { RunContext } from "./run_context.ts";

/** Everything one report measured. */
export interface Report {
  env: Env;
  /** The main table's rows (encoders, decoders, AMG). */
  rows: Row[];
  /** The variants section, where asked for. */
  variants: VariantRow[] | null;
  /** The page section, where asked for. */
  page: PageResult | null;
}

export async function runReport(opts: ReportOptions): Promise<Report> {
  const ctx = await getContext();
  const adapter = ctx.gpu.description;
  const software = isSoftwareAdapter(adapter);
  const env: Env = {
    adapter,
    software,
    hasTimestamps: ctx.gpu.hasTimestamps,
    date: new Date().toISOString(),
    deno: Deno.version,
    cpus: navigator.hardwareConcurrency,
    loadavgStart: loadavg(),
    os: `${Deno.build.os} ${Deno.build.arch}`,
    git: await gitState(),
    peer: await peerPackage(),
  };
  log(`adapter: ${adapter}${software ? " (software)" : ""}; load ${env.loadavgStart.join(" ")}`);
  const rc: RunContext = {
    ctx,
    opts,
    adapter,
    software,
    graphs: new Map(peerGraphs().map((g) => [g.id, g])),
    peer: new PeerRunner(opts),
  };
  const rows: Row[] = [];
  /** Ours' decoder ms per prompt (low-res only), for the AMG's estimate. */
  let decoderPerPromptMs: number | null = null;
  if (opts.only.has("decoder")) {
    const dec = await decoderRows(rc);
    rows.push(...dec.rows);
    decoderPerPromptMs = dec.perPromptMs;
  }
  if (opts.only.has("encoder")) rows.push(...await encoderRows(rc));
  if (opts.only.has("edge")) {
    // sam-mini's throughput, when the encoder section measured it: the estimate on a CPU.
    const mini = rows.find((r) => r.id === "encoder_sam_mini");
    const miniGflops = mini?.ours.status === "ok" ? gflops(mini.flops, mini.ours.ms) : null;
    rows.push(...await edgeRows(rc, miniGflops));
  }
  if (opts.only.has("sam2")) {
    rows.push(...await sam2EncoderRows(ctx, opts, software));
    rows.push(...await sam2DecoderRows(ctx, opts));
  }
  if (opts.only.has("amg")) rows.push(...await amgRows(rc, decoderPerPromptMs));
  const variants = opts.only.has("variants")
    ? await variantRows(rc, opts.models, { enabled: opts.tune, minMs: opts.tuneMinMs })
    : null;
  const page = opts.only.has("page") ? await pageSection(opts) : null;
  env.loadavgEnd = loadavg();
  return { env, rows, variants, page };
}
