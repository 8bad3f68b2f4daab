/**
 * SAM 2.1 prompt encoder on sam2-mini (real decoder width 256, 1024 input): its kept
 * features are stored only as probes, so the prompt cases run end to end (through our
 * encoder) in sam2_e2e_test.ts; here the prompt-side goldens, read from ../shared/fixtures.
 */
import assert from "node:assert/strict";
import { getContext } from "../../src/gpu/context.ts";
import { Sam2Decoder } from "../../src/sam2/mask_decoder.ts";
import { sam2HintsFromFixture } from "../../src/sam2/arch.ts";
import { loadSam2 } from "../../src/sam2/load.ts";
import { assertClose } from "../util/compare.ts";
import { fixtureJson, loadGolden, sharedFixture, skipIfMissing } from "../util/fixtures.ts";
import { loadSam2Cases } from "./sam2_cases.ts";
import { checkProbe, loadProbes } from "./probes.ts";

const dir = sharedFixture("sam2-mini/");

Deno.test("sam2-mini prompt encoder: arch, image_pe and point1 embeddings (probes)", async () => {
  if (skipIfMissing(dir, "sam2-mini prompt encoder")) return;
  const ctx = await getContext();
  const hints = sam2HintsFromFixture((await fixtureJson(dir!)).architecture);
  const { sd, arch } = await loadSam2(new URL("sam2-mini.pt", dir!), hints);
  const { cases, imageSizeHw } = await loadSam2Cases(dir!);
  const decoder = Sam2Decoder.create(ctx, sd, arch);
  try {
    assert.deepEqual(
      [decoder.arch.imgSize, decoder.dim, decoder.lowResSize, decoder.arch.decoder.mlpDim],
      [1024, 256, 256, 2048],
    );
    const probes = await loadProbes(dir!);
    checkProbe(decoder.promptEncoder.densePe(), probes.image_pe, { atol: 1e-5, label: "image_pe" });
    const point1 = cases.find((c) => c.name === "point1_multi")!.prompts[0];
    const sparse = await loadGolden(dir!, "point1_sparse_embeddings.npy");
    assertClose(decoder.sparseEmbeddings(point1, imageSizeHw), sparse.data as Float32Array, {
      atol: 1e-5,
      shape: sparse.shape,
      label: "point1_sparse_embeddings",
    });
    const D = decoder.dim, s = decoder.embedSize;
    const dense = new Float32Array(D * s * s);
    for (let c = 0; c < D; c++) {
      dense.fill(decoder.promptEncoder.noMaskEmbed[c], c * s * s, (c + 1) * s * s);
    }
    checkProbe(dense, probes.point1_dense_embeddings, { atol: 0, label: "point1_dense" });
  } finally {
    decoder.dispose();
  }
});
