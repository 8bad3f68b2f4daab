/**
 * What every group of a report shares: the GPU context, the options, the adapter, the peer's
 * graphs and its runner.
 */
import type { GpuContext } from "../../src/gpu/context.ts";
import type { PeerGraph, PeerGraphId } from "../peer/ort_peer.ts";
import type { ReportOptions } from "./options.ts";
import type { PeerRunner } from "./peer.ts";

export interface RunContext {
  ctx: GpuContext;
  opts: ReportOptions;
  /** The adapter's description. */
  adapter: string;
  /** A CPU-emulated adapter (big cases estimated first, targets not judged). */
  software: boolean;
  /** The peer's graphs present on this machine. */
  graphs: Map<PeerGraphId, PeerGraph>;
  peer: PeerRunner;
}
