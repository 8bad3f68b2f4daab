/**
 * Where the reference fixtures live. sam-tiny ships in tests/fixtures; the larger ones are
 * read from ../shared/fixtures (beside the checkout) and their tests skip, saying so, when
 * that folder is absent.
 */
import { readNpy } from "../../src/util/npy.ts";

const here = new URL(".", import.meta.url);
/** tests/fixtures/ inside the repository. */
export const LOCAL_FIXTURES = new URL("../fixtures/", here);
/** ../shared/fixtures/ beside the repository root. */
export const SHARED_FIXTURES = new URL("../../../shared/fixtures/", here);

function exists(url: URL): boolean {
  try {
    Deno.statSync(url);
    return true;
  } catch {
    return false;
  }
}

/** The folder of a fixture model ("sam-tiny" is always local), or null when absent. */
export function fixtureDir(name: string): URL | null {
  const local = new URL(`${name}/`, LOCAL_FIXTURES);
  if (exists(local)) return local;
  const shared = new URL(`${name}/`, SHARED_FIXTURES);
  return exists(shared) ? shared : null;
}

/** A file under ../shared/fixtures, or null when absent. */
export function sharedFixture(path: string): URL | null {
  const url = new URL(path, SHARED_FIXTURES);
  return exists(url) ? url : null;
}

/** Prints a clear skip line; returns true when the fixture is missing. */
export function skipIfMissing(what: URL | null, name: string): boolean {
  if (what) return false;
  console.warn(`SKIP: ${name}: ../shared/fixtures is not present beside this checkout`);
  return true;
}

export async function loadGolden(dir: URL, name: string) {
  return await readNpy(new URL(name, dir));
}

export async function fixtureJson(dir: URL) {
  return JSON.parse(await Deno.readTextFile(new URL("fixture.json", dir)));
}
