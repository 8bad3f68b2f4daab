/**
 * `--gpu auto|deno|dawn` for the server and every CLI. Imported for its effect by each entry
 * point: it takes the flag (`--gpu X` or `--gpu=X`) out of `Deno.args` before the program's
 * own argument parser runs, and makes it the process's default provider (over $WGSAM_GPU).
 * A bad value exits with status 2 and says what is allowed.
 */
import { GPU_CHOICES, type GpuChoice, parseGpuChoice, setDefaultGpuChoice } from "./device.ts";

/** Removes every `--gpu` flag from `args` (in place); returns the last value, checked. */
export function takeGpuFlag(args: string[]): GpuChoice | undefined {
  let choice: GpuChoice | undefined;
  for (let i = 0; i < args.length;) {
    const a = args[i];
    if (a === "--") break;
    if (a === "--gpu" || a.startsWith("--gpu=")) {
      const value = a === "--gpu" ? args[i + 1] : a.slice("--gpu=".length);
      if (value === undefined || value.startsWith("--")) {
        throw new Error(`--gpu needs a value (${GPU_CHOICES.join(", ")})`);
      }
      choice = parseGpuChoice(value, "--gpu");
      args.splice(i, a === "--gpu" ? 2 : 1);
      continue;
    }
    i++;
  }
  return choice;
}

if (typeof Deno !== "undefined" && Array.isArray(Deno.args)) {
  try {
    const choice = takeGpuFlag(Deno.args);
    if (choice) setDefaultGpuChoice(choice);
  } catch (err) {
    console.error(`error: ${(err as Error).message}`);
    Deno.exit(2);
  }
}
