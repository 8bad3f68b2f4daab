import { fixtureDir, skipIfMissing } from "../util/fixtures.ts";
import {
  checkFixtureCases,
  checkPromptEncoderGoldens,
  openDecoder,
} from "./decoder_fixture_check.ts";

const dir = fixtureDir("sam-mini");

/**
 * sam-mini's decoder (width 256, as the real models) against its goldens: the prompt encoder,
 * then each fixture.json prompt case as its own test, so that a run can pick some
 * (tests/gpu/dawn_suite_test.ts runs them on Dawn + SwiftShader, where each costs ~7-22 s).
 */
const caseNames: string[] = dir
  ? Object.keys(JSON.parse(Deno.readTextFileSync(new URL("fixture.json", dir))).prompts)
  : [];

Deno.test("sam-mini decoder: prompt encoder goldens", async () => {
  if (skipIfMissing(dir, "sam-mini decoder")) return;
  const { decoder, embedding } = await openDecoder(dir!, "sam-mini");
  try {
    await checkPromptEncoderGoldens(dir!, decoder, [600, 900]);
  } finally {
    decoder.dispose();
    embedding.destroy();
  }
});

for (const name of caseNames) {
  Deno.test(`sam-mini decoder case ${name}`, async () => {
    await checkFixtureCases(dir!, "sam-mini", [name]);
  });
}
