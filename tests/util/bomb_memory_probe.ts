/**
 * Child process of inflate_memory_test.ts: puts one hostile file through the loader and prints,
 * as JSON, the error it gave and how far its peak resident memory (Linux VmHWM) grew meanwhile.
 * A process of its own, so that no earlier test's allocations hide the peak.
 */
import { decodeImage } from "../../src/image.ts";
import { PthArchive } from "../../src/weights/pth.ts";

function peakRss(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

const [kind, path] = Deno.args;
const bytes = await Deno.readFile(path);
const before = peakRss();
let error = "";
try {
  if (kind === "png") {
    await decodeImage(bytes);
  } else {
    (await PthArchive.open(path)).close();
  }
} catch (e) {
  error = (e as Error).message;
}
console.log(JSON.stringify({ error, grewBytes: peakRss() - before }));
