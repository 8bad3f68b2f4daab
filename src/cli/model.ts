/**
 * The model a command line uses when given none: what `deno task serve` does. The first model
 * installed by `deno task weights` in the weights folder ($WGSAM_WEIGHTS_DIR, else weights/),
 * else the bundled sam-tiny test model, with the server's warning that its masks are
 * meaningless.
 */
import { findDefaultModel } from "../server/config.ts";
import { weightsDirFrom } from "../weights/registry.ts";

/** The server's warning, word for word (src/server/app.ts). */
export const MEANINGLESS_WARNING =
  "Running on the bundled sam-tiny test model (random weights): its masks are meaningless. " +
  "Get a real model with `deno task weights vit_b` and restart.";

/** `--model` help text shared by the commands. */
export const MODEL_HELP = "vit_b, vit_l, vit_h, sam2.1_hiera_tiny (_small, _base_plus, " +
  "_large), mobile_sam, slimsam_77, slimsam_50, sam-tiny or sam2-tiny (bundled test models, " +
  "random weights) or a .pth / .pt / .safetensors path; default: the first model in the " +
  "weights folder " +
  "($WGSAM_WEIGHTS_DIR, else weights/), else sam-tiny";

/** The `--model` value to load: the given one, else the installed one, else sam-tiny. */
export function chooseModel(given: string | undefined, log: (line: string) => void): string {
  if (given) return given;
  const dir = weightsDirFrom();
  const found = findDefaultModel(dir);
  if (found) {
    log(`model: ${found} (found in ${dir}/)`);
    return found;
  }
  log(
    `No --model given and none in ${dir}/. Get one with: deno task weights vit_b\n` +
      "Falling back to the bundled sam-tiny test model.",
  );
  return "sam-tiny";
}

/** Prints the warning when the loaded model is the random-weight test model. */
export function warnIfMeaningless(modelName: string, log: (line: string) => void): void {
  if (modelName === "sam-tiny" || modelName === "sam2-tiny") {
    log(`WARNING: ${MEANINGLESS_WARNING.replace("sam-tiny", modelName)}`);
  }
}
