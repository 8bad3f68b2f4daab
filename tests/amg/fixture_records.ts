/** The amg.json fixtures of the automatic mask generator tests. */
import { type AmgJson, parseAmgJson } from "../../src/amg/amg_json.ts";
import { fixtureDir, sharedFixture, skipIfMissing } from "../util/fixtures.ts";

/** sam-tiny/amg.json (always present in tests/fixtures). */
export async function loadSamTinyAmg(): Promise<AmgJson> {
  const dir = fixtureDir("sam-tiny");
  if (!dir) throw new Error("tests/fixtures/sam-tiny is missing");
  return parseAmgJson(await Deno.readTextFile(new URL("amg.json", dir)));
}

/**
 * ../shared/fixtures/amg-synthetic/amg.json, or null (after printing a SKIP line naming the
 * test) when that folder is absent.
 */
export async function loadSyntheticAmg(testName: string): Promise<AmgJson | null> {
  const url = sharedFixture("amg-synthetic/amg.json");
  if (skipIfMissing(url, testName)) return null;
  return parseAmgJson(await Deno.readTextFile(url!));
}
