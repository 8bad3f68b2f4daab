/**
 * One report: the environment, then each group asked for (--only), in the order decoder,
 * encoder, AMG (the AMG's estimate uses the decoder's time a prompt). Ours and the peer never
 * run at the same time.
 */
import { getContext } from "../../src/gpu/context.ts";
import { peerGraphs } from "../peer/ort_peer.ts";
import { amgRows } from "./amg_rows.ts";
import { decoderRows } from "./decoder_rows.ts";
import { encoderRows } from "./encoder_rows.ts";
import { type Env, gitState, loadavg, log, peerPackage } from "./env.ts";
import { isSoftwareAdapter, type Row } from "./measure.ts";
import type { ReportOptions } from "./options.ts";
import { PeerRunner } from "./peer.ts";
import type { RunContext } from "./run_context.ts";

export async function runReport(opts: ReportOptions): Promise<{ env: Env; rows: Row[] }> {
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
  if (opts.only.has("amg")) rows.push(...await amgRows(rc, decoderPerPromptMs));
  env.loadavgEnd = loadavg();
  return { env, rows };
}
