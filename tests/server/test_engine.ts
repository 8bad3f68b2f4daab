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

/** Runs `fn` on a fresh sam-tiny engine and disposes of it; skips, saying so, without one. */
export async function withTestEngine(fn: (engine: SamEngine) => Promise<void>): Promise<void> {
  const engine = await loadTestEngine();
  if (!engine) {
    console.warn("SKIP: src/predictor.ts is not there yet");
    return;
  }
  try {
    await fn(engine);
  } finally {
    engine.dispose();
  }
}
