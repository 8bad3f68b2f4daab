import { fixtureDir, skipIfMissing } from "../util/fixtures.ts";
import {
  checkFixtureCases,
  checkPromptEncoderGoldens,
  openDecoder,
} from "./decoder_fixture_check.ts";

const dir = fixtureDir("sam-mini");

Deno.test("sam-mini decoder (width 256, as the real models): prompt encoder goldens and every fixture.json prompt case", async () => {
  if (skipIfMissing(dir, "sam-mini decoder")) return;
  const { decoder, embedding } = await openDecoder(dir!, "sam-mini");
  try {
    await checkPromptEncoderGoldens(dir!, decoder, [600, 900]);
  } finally {
    decoder.dispose();
    embedding.destroy();
  }
  await checkFixtureCases(dir!, "sam-mini");
});
