/**
 * `deno task convert <in.pth> <out.safetensors>`: converts an official SAM or SAM 2.1 checkpoint to
 * wgsam safetensors (float32, validated, architecture in the metadata), showing progress on
 * stderr. Exit status: 0 done, 1 a runtime failure, 2 a bad argument (see USAGE).
 */
import { parseFlags, requireInputFile, runCli, UsageError, wantsHelp } from "../cli/args.ts";
import { checkOutputFiles } from "../cli/output.ts";
import { checkpointFamily, convertSam2Checkpoint } from "../sam2/load.ts";
import { convertCheckpoint } from "./load.ts";
import type { WriteProgress } from "./safetensors.ts";

export const USAGE = `Usage: deno task convert <in.pth|in.safetensors> <out.safetensors> [options]

Converts a Segment Anything checkpoint (Meta's sam_vit_{b,l,h}_*.pth or sam2.1_hiera_*.pt, or a
safetensors file of the same tensors) into wgsam's safetensors: float32, official tensor names,
every shape checked against the architecture read from the checkpoint, which is stored in the
file's metadata. The output appears only once complete (written to <out>.partial, then renamed).
No pickle code is ever executed.

Options:
  --overwrite   replace an existing <out.safetensors> (default: refuse)
  -h, --help    this text

Progress goes to stderr: one updating line on a terminal, a line per quarter otherwise.
Exit status: 0 done, 1 the conversion failed (the message says why: not a SAM checkpoint, a
damaged file, ...), 2 a bad argument (unknown flag, missing input, output folder missing,
output that exists).`;

/** Bytes in MB below a gigabyte, else GB. */
function size(bytes: number, total: number): string {
  return total >= 1e9 ? `${(bytes / 1e9).toFixed(2)} GB` : `${(bytes / 1e6).toFixed(1)} MB`;
}

/**
 * Progress lines: on a terminal one line rewritten in place (`\r`); otherwise (a log file, a
 * pipe) a plain line at each quarter, so the output stays readable.
 */
export function progressPrinter(
  tty: boolean,
  write: (text: string) => void,
): { update(p: WriteProgress): void; end(): void } {
  let lastShown = -1;
  return {
    update(p) {
      const percent = Math.floor((100 * p.bytesDone) / Math.max(1, p.bytesTotal));
      const step = tty ? percent : Math.floor(percent / 25) * 25;
      if (step === lastShown) return;
      lastShown = step;
      const text = `convert: ${percent}% (${p.tensorsDone}/${p.tensorsTotal} tensors, ` +
        `${size(p.bytesDone, p.bytesTotal)} of ${size(p.bytesTotal, p.bytesTotal)})`;
      write(tty ? `\r${text}\x1b[K` : `${text}\n`);
    },
    end() {
      if (tty && lastShown >= 0) write("\n");
    },
  };
}

/** Checks the arguments and the paths; returns [input, output]. */
export async function checkConvertArgs(argv: readonly string[]): Promise<{
  input: string;
  output: string;
  overwrite: boolean;
}> {
  const { values, positionals } = parseFlags(argv, { overwrite: { type: "boolean" } });
  if (positionals.length !== 2) {
    throw new UsageError(
      `expected an input checkpoint and an output path, got ${positionals.length} argument(s)`,
    );
  }
  const [input, output] = positionals;
  await requireInputFile(input, "input checkpoint");
  const slash = output.lastIndexOf("/");
  const folder = slash < 0 ? "." : output.slice(0, slash) || "/";
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(folder);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    throw new UsageError(`the output folder ${folder} does not exist; create it first`);
  }
  if (!info.isDirectory) throw new UsageError(`the output folder ${folder} is not a folder`);
  const overwrite = values.overwrite ?? false;
  // The output, and the .partial written before it, are never written through a link.
  await checkOutputFiles([output], overwrite);
  await checkOutputFiles([`${output}.partial`], true);
  return { input, output, overwrite };
}

export async function main(argv: readonly string[]): Promise<number> {
  if (wantsHelp(argv)) {
    console.log(USAGE);
    return 0;
  }
  const { input, output } = await checkConvertArgs(argv);
  const encoder = new TextEncoder();
  const started = performance.now();
  const progress = progressPrinter(
    Deno.stderr.isTerminal(),
    (text) => Deno.stderr.writeSync(encoder.encode(text)),
  );
  let summary: string;
  try {
    if (await checkpointFamily(input) === "sam2") {
      // SAM 2.1: the official sizes need no hints (their configs are known by shape).
      const a = await convertSam2Checkpoint(input, output, {}, progress.update);
      summary = `SAM 2 Hiera ${a.trunk.embedDim} wide, stages [${a.trunk.stages}], ` +
        `${a.trunk.numHeads} heads, image ${a.imgSize}`;
    } else {
      const arch = await convertCheckpoint(input, output, progress.update);
      summary = `ViT ${arch.embedDim} wide, ${arch.depth} blocks, ${arch.numHeads} heads, ` +
        `global blocks [${arch.globalAttnIndexes}], image ${arch.imgSize}`;
    }
  } finally {
    progress.end();
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.error(`convert: wrote ${output} in ${seconds} s: ${summary}`);
  return 0;
}

if (import.meta.main) {
  await runCli("convert", () => main(Deno.args));
}
