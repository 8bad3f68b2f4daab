/** `family` of a loaded model, and as GET /api/info shows it (the engine's arch summary). */
import assert from "node:assert/strict";
import { loadSamEngine } from "../../src/server/sam_engine.ts";
import { fixtureDir } from "../util/fixtures.ts";

Deno.test("family: sam-tiny 'sam', mobilesam 'mobile_sam', slimsam 'slimsam' in the engine info", async () => {
  const cases: [string, string | null][] = [["sam-tiny", "sam"]];
  const mobile = fixtureDir("mobilesam"), slim = fixtureDir("slimsam");
  if (mobile) cases.push([new URL("mobilesam.pth", mobile).pathname, "mobile_sam"]);
  if (slim) cases.push([new URL("slimsam.pth", slim).pathname, "slimsam"]);
  if (!mobile || !slim) console.warn("SKIP: mobilesam / slimsam: ../shared/fixtures is absent");
  for (const [source, family] of cases) {
    const engine = await loadSamEngine(source, { cacheBytes: 1 << 20, quiet: true });
    try {
      const arch = engine.info.arch as { family: string; img_size: number };
      assert.equal(arch.family, family, source);
      assert.equal(engine.info.imgSize, family === "sam" ? 256 : 1024);
    } finally {
      engine.dispose();
    }
  }
});
