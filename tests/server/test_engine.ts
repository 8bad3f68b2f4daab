/** The sam-tiny engine for end-to-end tests, or null while src/predictor.ts does not exist. */
import { loadSamEngine, type SamEngine } from "../../src/server/sam_engine.ts";

export async function loadTestEngine(): Promise<SamEngine | null> {
  try {
    Deno.statSync(new URL("../../src/predictor.ts", import.meta.url));
  } catch {
    return null;
  }
  return await loadSamEngine("sam-tiny", { cacheBytes: 64 * 1024 * 1024, quiet: true });
}
