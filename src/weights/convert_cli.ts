/**
 * `deno task convert <in.pth> <out.safetensors>`: converts an official SAM checkpoint to
 * wgsam safetensors (float32, validated, architecture in the metadata), showing progress on
 * stderr. `--help` prints the usage; a wrong argument count exits 2; any other error exits 1
 * with a message.
 */
import { convertCheckpoint } from "./load.ts";

/** Bytes in MB below a gigabyte, else GB. */
function size(bytes: number, total: number): string {
  return total >= 1e9 ? `${(bytes / 1e9).toFixed(2)} GB` : `${(bytes / 1e6).toFixed(1)} MB`;
}

async function main(args: string[]): Promise<number> {
  const usage = "usage: deno task convert <in.pth> <out.safetensors>";
  if (args.some((a) => a === "-h" || a === "--help")) {
    console.log(usage);
    return 0;
  }
  if (args.length !== 2) {
    console.error(usage);
    return 2;
  }
  const [inPath, outPath] = args;
  const encoder = new TextEncoder();
  const started = performance.now();
  let lastShown = -1;
  const arch = await convertCheckpoint(inPath, outPath, (p) => {
    const percent = Math.floor((100 * p.bytesDone) / Math.max(1, p.bytesTotal));
    if (percent === lastShown && p.tensorsDone !== p.tensorsTotal) return;
    lastShown = percent;
    Deno.stderr.writeSync(encoder.encode(
      `\rconvert: ${percent}% (${p.tensorsDone}/${p.tensorsTotal} tensors, ` +
        `${size(p.bytesDone, p.bytesTotal)} of ${size(p.bytesTotal, p.bytesTotal)})`,
    ));
  });
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.error(
    `\nconvert: wrote ${outPath} in ${seconds} s: ViT ${arch.embedDim} wide, ${arch.depth} ` +
      `blocks, ${arch.numHeads} heads, global blocks [${arch.globalAttnIndexes}], ` +
      `image ${arch.imgSize}`,
  );
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    console.error(`\nconvert: error: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
