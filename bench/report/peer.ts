/**
 * The peer (onnxruntime-web on the real models' graphs, bench/peer/) as the report drives it:
 * each session runs in a child process with a hard time limit, its results are kept by
 * "backend/case", and a result becomes a table cell (Measure) on request.
 */
import type { PeerBackend, PeerGraph, PeerResult } from "../peer/ort_peer.ts";
import { runPeerInChild } from "../peer/peer_cli.ts";
import { log } from "./env.ts";
import { formatMs } from "./format.ts";
import { type Measure, notMeasured } from "./measure.ts";
import type { ReportOptions } from "./options.ts";

/** A peer result as a table cell. */
export function peerMeasure(r: PeerResult | undefined): Measure {
  if (!r) return notMeasured("peer: no result");
  if (r.status !== "ok") return notMeasured(`onnxruntime-web ${r.backend}: ${r.reason}`);
  return {
    status: "ok",
    ms: r.medianMs,
    runsMs: r.runsMs,
    warmupMs: r.warmupMs,
    createMs: r.createMs,
    ...(r.perPromptMs !== undefined ? { perPromptMs: r.perPromptMs } : {}),
    timing: "peer session.run",
    detail: { threads: r.threads, outputs: r.outputs },
  };
}

/** Runs peer sessions for one report and keeps their results. */
export class PeerRunner {
  /** Results keyed "backend/case". */
  readonly results = new Map<string, PeerResult>();
  /** Peer cases run by a single-run plan (planRuns). */
  readonly singleRuns = new Set<string>();
  /** The cell of every peer case under --no-peer. */
  readonly noPeer = notMeasured("--no-peer");
  /** A hard stop for hung or hopeless cases only: predictable ones are skipped by the budget. */
  private readonly timeoutMs: number;

  constructor(private readonly opts: ReportOptions) {
    this.timeoutMs = Math.max(5 * opts.budgetMs, 1_800_000);
  }

  /** Runs the peer on `graph` for `cases` on `backend`, in a child process. */
  async run(
    backend: PeerBackend,
    graph: PeerGraph,
    cases: Parameters<typeof runPeerInChild>[0]["cases"],
  ): Promise<void> {
    if (cases.length === 0) return;
    log(`peer ${backend} ${graph.id}: ${cases.map((c) => c.name).join(", ")}`);
    const res = await runPeerInChild({ backend, graph, cases }, this.timeoutMs);
    for (const r of res) {
      this.results.set(`${backend}/${r.case}`, r);
      log(
        `  ${backend} ${r.case}: ${
          r.status === "ok"
            ? `${formatMs(r.medianMs)} ms (create ${formatMs(r.createMs)} ms)`
            : r.reason
        }`,
      );
    }
  }

  /** The cell of a case (--no-peer, not run, failed or measured). */
  of(backend: PeerBackend, id: string): Measure {
    if (!this.opts.peer) return this.noPeer;
    const key = `${backend}/${id}`;
    const m = peerMeasure(this.results.get(key));
    if (m.status === "ok" && this.singleRuns.has(key)) {
      m.detail = { ...m.detail, singleColdRun: true };
    }
    return m;
  }

  /** The median ms of a case that ran, else null. */
  okMs(backend: PeerBackend, id: string): number | null {
    const r = this.results.get(`${backend}/${id}`);
    return r?.status === "ok" ? r.medianMs : null;
  }
}
