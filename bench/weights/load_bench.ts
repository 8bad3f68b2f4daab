/**
 * Checkpoint loading speed: the sam-mini .pth (24.6 MB, as torch.save writes it) and the
 * same weights converted to wgsam safetensors. Skips sam-mini when ../shared is absent.
 */
import { convertCheckpoint, loadSam } from "../../src/weights/load.ts";
import { fixtureDir, sharedFixture } from "../../tests/util/fixtures.ts";

const sources: [string, URL | null][] = [
  ["sam-tiny", new URL("sam-tiny.pth", fixtureDir("sam-tiny")!)],
  ["sam-mini", sharedFixture("sam-mini/sam-mini.pth")],
];
const dir = await Deno.makeTempDir({ prefix: "wgsam-load-bench-" });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

for (const [name, pth] of sources) {
  if (!pth) {
    console.warn(`SKIP: ${name}: ../shared/fixtures is not present beside this checkout`);
    continue;
  }
  const converted = `${dir}/${name}.safetensors`;
  await convertCheckpoint(pth.pathname, converted);
  Deno.bench({ name: `${name} .pth load + validate`, group: name, baseline: true }, async () => {
    await loadSam(pth);
  });
  Deno.bench({ name: `${name} safetensors load + validate`, group: name }, async () => {
    await loadSam(converted);
  });
  Deno.bench({ name: `${name} .pth -> safetensors convert`, group: name }, async () => {
    await convertCheckpoint(pth.pathname, `${dir}/${name}.again.safetensors`);
  });
}
