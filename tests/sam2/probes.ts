/** sam2-mini's probes.json: values of large goldens at fixed flat indices, with summaries. */
import { assertClose, type CloseOptions } from "../util/compare.ts";

export interface Probe {
  shape: number[];
  sum: number;
  abs_sum: number;
  min: number;
  max: number;
  idx: number[];
  val: number[];
}

export async function loadProbes(dir: URL): Promise<Record<string, Probe>> {
  return JSON.parse(await Deno.readTextFile(new URL("probes.json", dir)));
}

/**
 * Checks `got` (the whole tensor, C order) at the probe's indices within `opts`, and its
 * length against the probe's shape; returns the max abs difference.
 */
export function checkProbe(got: ArrayLike<number>, probe: Probe, opts: CloseOptions): number {
  const n = probe.shape.reduce((a, b) => a * b, 1);
  if (got.length !== n) {
    throw new Error(
      `${opts.label}: ${got.length} values, the probe's shape [${probe.shape}] has ${n}`,
    );
  }
  const picked = probe.idx.map((i) => got[i]);
  return assertClose(picked, probe.val, opts).maxAbs;
}
