/**
 * `deno task weights <name>...`: downloads Meta's SAM checkpoints (vit_b, vit_l, vit_h) with
 * resume, verifies size and MD5, converts them to wgsam safetensors; `--list` shows what is
 * installed. Exit status: 0 done, 1 a download or conversion failed, 2 bad usage. Expected
 * failures print one clear message, no stack trace ($WGSAM_DEBUG=1 adds it).
 */
import { parseFlags, runCli, UsageError, wantsHelp } from "../cli/args.ts";
import { downloadModel, progressBar } from "./download.ts";
import {
  checkpointPath,
  convertedPath,
  findModel,
  formatBytes,
  listModels,
  type ModelEntry,
  parseRegistry,
  weightsDirFrom,
} from "./registry.ts";
import {
  findManualModel,
  installManualModel,
  MANUAL_MODELS,
  resolveManualModel,
} from "./manual_models.ts";

export const USAGE = `Usage: deno task weights [options] <model>...
       deno task weights --list [options]

Downloads, verifies (size and MD5) and converts SAM checkpoints into the weights folder:
<dir>/<file>.pth as published, <dir>/<model>.safetensors for wgsam. Interrupted downloads
resume where they stopped; finished steps are skipped.

models: vit_b (375 MB), vit_l (1.25 GB), vit_h (2.56 GB), mobile_sam (40.7 MB);
        slimsam_77, slimsam_50: no verifiable download; the command prints where to get the
        file by hand, and converts it once it is in the weights folder

options:
  -l, --list        show the models and what is installed
  --dir <path>      weights folder (default $WGSAM_WEIGHTS_DIR, else ./weights)
  --url <base>      mirror holding the .pth files (default $WGSAM_WEIGHTS_URL, else Meta's)
  --registry <json> extra models: {"models": [{"name", "fileName", "bytes", "md5", "url"?}]}
  -h, --help        this text

Exit status: 0 done, 1 a download or conversion failed (the message gives the cause and how to
install the file by hand), 2 a bad argument (unknown flag or model name).`;

interface Args {
  list: boolean;
  dir?: string;
  url?: string;
  registry?: string;
  names: string[];
}

export function parseWeightsArgs(argv: readonly string[]): Args {
  const { values, positionals } = parseFlags(argv, {
    list: { type: "boolean", short: "l" },
    dir: { type: "string" },
    url: { type: "string" },
    registry: { type: "string" },
  });
  for (const flag of ["dir", "url", "registry"] as const) {
    if (values[flag] === "") throw new UsageError(`--${flag} needs a value`);
  }
  return {
    list: values.list ?? false,
    dir: values.dir,
    url: values.url,
    registry: values.registry,
    names: positionals,
  };
}

async function sizeOf(path: string): Promise<number | null> {
  try {
    return (await Deno.stat(path)).size;
  } catch {
    return null;
  }
}

async function status(entry: ModelEntry, dir: string): Promise<string> {
  if (entry.bundledPath !== undefined) return `bundled (${entry.bundledPath})`;
  const converted = convertedPath(entry, dir);
  if ((await sizeOf(converted)) !== null) return `installed (${converted})`;
  const checkpoint = checkpointPath(entry, dir);
  const size = await sizeOf(checkpoint);
  if (size !== null) return `downloaded, not converted (${checkpoint})`;
  const partial = await sizeOf(`${checkpoint}.partial`);
  if (partial !== null) {
    return entry.bytes
      ? `partial: ${Math.floor((100 * partial) / entry.bytes)}% (run again to resume)`
      : `partial: ${formatBytes(partial)} (run again to resume)`;
  }
  return "not installed";
}

async function list(entries: ModelEntry[], dir: string) {
  const width = Math.max(...entries.map((e) => e.name.length));
  for (const e of entries) {
    console.log(`${e.name.padEnd(width)}  ${formatBytes(e.bytes).padStart(9)}  ${e.description}`);
    console.log(`${"".padEnd(width)}  ${"".padStart(9)}  ${await status(e, dir)}`);
    if (e.url) {
      console.log(
        `${"".padEnd(width)}  ${"".padStart(9)}  ${e.url} md5 ${e.md5 ?? "(none published)"}`,
      );
    }
  }
  for (const m of MANUAL_MODELS) {
    const installed = await resolveManualModel(m, dir).catch(() => null);
    console.log(`${m.name.padEnd(width)}  ${"by hand".padStart(9)}  ${m.description}`);
    console.log(
      `${"".padEnd(width)}  ${"".padStart(9)}  ${
        installed ? `present (${installed})` : "not installed"
      }`,
    );
  }
}

async function main(argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    console.log(USAGE);
    return 0;
  }
  const args = parseWeightsArgs(argv);
  const extra = args.registry
    ? parseRegistry(await Deno.readTextFile(args.registry), args.registry)
    : [];
  const lookup = (name: string) => extra.find((e) => e.name === name) ?? findModel(name);
  const entries = [...listModels().filter((e) => !extra.some((x) => x.name === e.name)), ...extra];
  const dir = weightsDirFrom(args.dir);
  if (args.list) {
    await list(entries, dir);
    if (args.names.length === 0) return 0;
  }
  if (args.names.length === 0) throw new UsageError("name at least one model, or --list");
  const unknown = args.names.filter((n) => !lookup(n) && !findManualModel(n));
  if (unknown.length > 0) {
    throw new UsageError(
      `unknown model${unknown.length > 1 ? "s" : ""} ${unknown.map((n) => `'${n}'`).join(", ")}` +
        `; known: ${[...entries, ...MANUAL_MODELS].map((e) => e.name).join(", ")}`,
    );
  }
  const bar = progressBar();
  for (const name of args.names) {
    const manual = lookup(name) ? undefined : findManualModel(name);
    if (manual) {
      const { safetensors, source } = await installManualModel(manual, dir);
      console.error(
        source
          ? `weights: ${name} ready: ${safetensors} (converted from ${source})`
          : `weights: ${name} already installed: ${safetensors}`,
      );
      continue;
    }
    const entry = lookup(name)!;
    if (entry.bundledPath !== undefined) {
      console.error(`weights: ${name} is bundled at ${entry.bundledPath}; nothing to download`);
      continue;
    }
    const started = performance.now();
    try {
      const result = await downloadModel(entry, {
        weightsDir: dir,
        baseUrl: args.url,
        onProgress: bar.update,
        onNote: (message) => bar.note(`weights: ${name}: ${message}`),
      });
      bar.finish();
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      console.error(
        result.converted
          ? `weights: ${name} ready: ${result.safetensors} (checked ${result.checkpoint}, ` +
            `${seconds} s)`
          : `weights: ${name} already installed: ${result.safetensors}`,
      );
    } finally {
      bar.finish();
    }
  }
  return 0;
}

if (import.meta.main) {
  await runCli("weights", () => main(Deno.args));
}
