/**
 * The report's SAM 2.1 encoder measurement runs on sam2-tiny (seconds on llvmpipe), and the
 * official-FLOP count puts Hiera-T at about a third of ViT-B, as SAM 2's authors state.
 */
import assert from "node:assert/strict";
import { flopsEncoder } from "../../bench/report/flops.ts";
import { measureOursSam2Encoder } from "../../bench/report/ours.ts";
import { flopsSam2Encoder } from "../../bench/encoder/sam2_flops.ts";
import { getContext } from "../../src/gpu/context.ts";
import { officialSam2Arch } from "../../src/sam2/arch.ts";
import { OFFICIAL_ARCHS } from "../../src/weights/arch.ts";
import { loadSam2Fixture, sam2Files } from "../sam2/fixture_files.ts";

Deno.test({
  name: "report: ours on sam2-tiny's encoder gives an ok measure with the runs asked for",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    if (!sam2Files("sam2-tiny", ["sam2-tiny.pt", "fixture.json"], "report sam2")) return;
    const ctx = await getContext();
    const { sd, arch } = await loadSam2Fixture("sam2-tiny");
    const m = await measureOursSam2Encoder(ctx, sd, arch, 1, 2);
    assert.equal(m.status, "ok", m.status === "ok" ? "" : m.reason);
    if (m.status !== "ok") return;
    assert.equal(m.runsMs.length, 2);
    assert.equal(m.warmupMs.length, 1);
    assert.ok(m.ms > 0);
  },
});

Deno.test("flopsSam2Encoder: Hiera-T about a third of ViT-B, B+ between T and ViT-B", () => {
  const vitB = flopsEncoder(OFFICIAL_ARCHS.vit_b);
  const t = flopsSam2Encoder(officialSam2Arch("hiera_t"));
  const bPlus = flopsSam2Encoder(officialSam2Arch("hiera_b_plus"));
  assert.ok(t / vitB > 0.25 && t / vitB < 0.4, `Hiera-T / ViT-B = ${t / vitB}`);
  assert.ok(bPlus > t && bPlus < vitB, `B+ ${bPlus / 1e9} GFLOP`);
});
