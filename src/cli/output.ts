/**
 * How the command lines write their results: never through a symbolic link (a link planted at
 * `out/result.json` would otherwise have its target overwritten), and never over an existing
 * file unless the user passed `--overwrite`. Every destination is checked before any work, so
 * that a refusal costs nothing; the writes themselves then refuse again if something appeared
 * meanwhile (exclusive create; with --overwrite a fresh file renamed into place, which replaces
 * a link itself rather than its target).
 */
import { UsageError } from "./args.ts";

/** lstat, or null when nothing is there. */
async function lstatOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.lstat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/** The user-facing refusal for `path`, or null when it may be written. */
async function refusal(path: string, overwrite: boolean): Promise<string | null> {
  const info = await lstatOrNull(path);
  if (!info) return null;
  if (info.isSymlink) {
    return `${path} is a symbolic link; wgsam does not write through links (remove it or ` +
      `choose another output)`;
  }
  if (!info.isFile) return `${path} exists and is not a file`;
  if (!overwrite) return `${path} already exists; pass --overwrite to replace it`;
  return null;
}

/** Throws a UsageError for the first of `paths` that may not be written. */
export async function checkOutputFiles(paths: readonly string[], overwrite: boolean) {
  for (const path of paths) {
    const why = await refusal(path, overwrite);
    if (why) throw new UsageError(why);
  }
}

/**
 * Checks an output folder: an existing folder, or nothing yet (it is created once the model
 * loads). A link to a folder is the user's choice and is followed.
 */
export async function checkOutputDir(dir: string, flag: string): Promise<void> {
  let info: Deno.FileInfo | null = null;
  try {
    info = await Deno.stat(dir);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  if (info && !info.isDirectory) throw new UsageError(`${flag}: ${dir} exists and is not a folder`);
}

/** Writes `data` to `path` under the rules above. */
export async function writeOutput(
  path: string,
  data: Uint8Array | string,
  overwrite: boolean,
): Promise<void> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const why = await refusal(path, overwrite);
  if (why) throw new Error(why);
  if (!overwrite) {
    try {
      await Deno.writeFile(path, bytes, { createNew: true });
    } catch (e) {
      if (e instanceof Deno.errors.AlreadyExists) {
        throw new Error(`${path} appeared while wgsam was working; not overwritten`);
      }
      throw e;
    }
    return;
  }
  const slash = path.lastIndexOf("/");
  const temp = `${path.slice(0, slash + 1)}.${path.slice(slash + 1)}.${Deno.pid}.tmp`;
  await Deno.writeFile(temp, bytes, { createNew: true });
  try {
    await Deno.rename(temp, path);
  } catch (e) {
    await Deno.remove(temp).catch(() => {});
    throw e;
  }
}
