/**
 * What one cell of the report holds (a Measure: a time, or "not measured" with the reason),
 * a row of cells, and the small pure rules every group shares: how many runs a case gets on a
 * software adapter, the ratio of two cells, GFLOP/s. No GPU here.
 */
import { isSoftwareAdapter as isSoftwareDevice } from "../../src/gpu/device.ts";

export type Measure =
  | {
    status: "ok";
    /** Median wall ms of the timed runs. */
    ms: number;
    runsMs: number[];
    warmupMs: number[];
    /** Ours: median GPU ms from timestamp queries; null where the adapter has none. */
    gpuMs?: number | null;
    /** Peer: session creation ms. */
    createMs?: number;
    /** Decoder batches: ms / prompts. */
    perPromptMs?: number;
    timing: "wall+readback" | "peer session.run";
    detail?: Record<string, unknown>;
  }
  | { status: "not measured"; reason: string };

export type Group = "encoder" | "decoder" | "amg";

export interface Row {
  id: string;
  group: Group;
  /** What the case is, for the table. */
  label: string;
  /** FLOPs of one timed iteration (see the flops functions), or null. */
  flops: number | null;
  ours: Measure;
  peerWasm: Measure;
  peerWebgpu: Measure;
}

export const notMeasured = (reason: string): Measure => ({ status: "not measured", reason });

/** On a software adapter, a case whose one run is estimated over this runs once, with no
 * warm-up: the smaller case before it compiled the same kernel variants, and a warm-up would
 * double a wait of many minutes. Its table cell says so. */
export const SOFTWARE_SINGLE_RUN_MS = 60_000;

export interface RunPlan {
  warmup: number;
  runs: number;
  /** Estimated wall ms of warm-up + runs. */
  totalMs: number;
  /** One cold run instead of the configured warm-up and runs. */
  single: boolean;
}

/** How many warm-up and timed runs a case gets, given one run's estimated ms. */
export function planRuns(
  software: boolean,
  oneRunMs: number,
  warmup: number,
  runs: number,
): RunPlan {
  if (software && oneRunMs > SOFTWARE_SINGLE_RUN_MS) {
    return { warmup: 0, runs: 1, totalMs: oneRunMs, single: true };
  }
  return { warmup, runs, totalMs: oneRunMs * (warmup + runs), single: false };
}

/** Marks a measurement taken by a single-run plan, for the table and the JSON. */
export function markSingle(m: Measure, plan: RunPlan): Measure {
  if (m.status === "ok" && plan.single) m.detail = { ...m.detail, singleColdRun: true };
  return m;
}

/** True for CPU-emulated WebGPU adapters, from the adapter's description. */
export function isSoftwareAdapter(description: string): boolean {
  return isSoftwareDevice({ description });
}

/** How many times faster ours is than the peer (peer ms / ours ms); null unless both ran. */
export function ratio(peer: Measure, ours: Measure): number | null {
  if (peer.status !== "ok" || ours.status !== "ok" || !(ours.ms > 0)) return null;
  return peer.ms / ours.ms;
}

export function gflops(flops: number | null, ms: number): number | null {
  return flops === null || !(ms > 0) ? null : flops / ms / 1e6;
}

/** The first line of an error's message, bounded, for a "not measured" reason. */
export function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0].slice(0, 200);
}
