/**
 * Files of the SAM 2 fixtures, one by one: tests/fixtures/<model>/<file> when the checkout has
 * it, else ../shared/fixtures/<model>/<file>, else null (the caller SKIPs, saying so). The
 * project's copy of sam2-tiny holds the files its tests read; a file not copied is read from
 * the shared folder.
 */
import { LOCAL_FIXTURES, SHARED_FIXTURES } from "../util/fixtures.ts";
import { readNpy } from "../../src/util/npy.ts";
import { loadSam2 } from "../../src/sam2/load.ts";
import { sam2HintsFromFixture } from "../../src/sam2/arch.ts";

function exists(url: URL): boolean {
  try {
    Deno.statSync(url);
    return true;
  } catch {
    return false;
  }
}

export function sam2File(model: string, file: string): URL | null {
  for (const root of [LOCAL_FIXTURES, SHARED_FIXTURES]) {
    const url = new URL(`${model}/${file}`, root);
    if (exists(url)) return url;
  }
  return null;
}

/** Null (and a SKIP line) when any of `files` is missing. */
export function sam2Files(model: string, files: string[], test: string): URL[] | null {
  const urls = files.map((f) => sam2File(model, f));
  const missing = files.filter((_, i) => !urls[i]);
  if (missing.length > 0) {
    console.warn(
      `SKIP: ${test}: ${model}/${missing.join(", ")} not in tests/fixtures or ../shared/fixtures`,
    );
    return null;
  }
  return urls as URL[];
}

export async function sam2Npy(model: string, file: string) {
  const url = sam2File(model, file);
  if (!url) throw new Error(`fixture ${model}/${file} is missing`);
  return await readNpy(url);
}

// deno-lint-ignore no-explicit-any
export async function sam2FixtureJson(model: string): Promise<any> {
  const url = sam2File(model, "fixture.json");
  if (!url) throw new Error(`fixture ${model}/fixture.json is missing`);
  return JSON.parse(await Deno.readTextFile(url));
}

/** The fixture model, loaded with the hints its fixture.json records (see arch.ts). */
export async function loadSam2Fixture(model: string) {
  const fixture = await sam2FixtureJson(model);
  const pt = sam2File(model, `${model}.pt`);
  if (!pt) throw new Error(`fixture ${model}/${model}.pt is missing`);
  return { ...(await loadSam2(pt, sam2HintsFromFixture(fixture.architecture))), fixture };
}

/** [H, W, C] token-major values -> C-order (C, H, W), as the NCHW goldens (batch 1). */
export function hwcToChw(x: Float32Array, h: number, w: number, c: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let p = 0; p < h * w; p++) {
    for (let k = 0; k < c; k++) out[k * h * w + p] = x[p * c + k];
  }
  return out;
}
