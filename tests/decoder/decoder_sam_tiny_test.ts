import { fixtureDir } from "../util/fixtures.ts";
import {
  checkFixtureCases,
  checkPromptEncoderGoldens,
  openDecoder,
} from "./decoder_fixture_check.ts";

const dir = fixtureDir("sam-tiny")!;

Deno.test("sam-tiny prompt encoder: image_pe, point1 sparse and dense embeddings within 1e-4", async () => {
  const { decoder, embedding } = await openDecoder(dir, "sam-tiny");
  try {
    await checkPromptEncoderGoldens(dir, decoder, [107, 160]);
  } finally {
    decoder.dispose();
    embedding.destroy();
  }
});

Deno.test("sam-tiny decoder: every fixture.json prompt case matches the goldens", async () => {
  await checkFixtureCases(dir, "sam-tiny");
});
